package director

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/persist"
	"github.com/govs-lb/govs/internal/sched"
)

// Director is a running govs director.
type Director struct {
	log *slog.Logger
	dp  Dataplane

	// admin serialises runtime changes and reloads (admin.go): each reads
	// the configuration in force, edits a copy and applies it.
	admin sync.Mutex
	// apply serialises Apply callers. The dataplane's I/O runs on the
	// reconciler goroutine (snapshot.go); mu is never held while it runs,
	// so readers of the table (the API, VRRP's track_services, health's
	// SetDrain) never wait for it.
	apply sync.Mutex
	rec   reconciler // snapshot.go

	mu       sync.Mutex
	cfg      *config.Config
	services []*VirtualService
	byKey    map[string]*VirtualService
	retiring map[string]*VirtualService // removed by a reload, connections in grace

	root   context.Context
	cancel context.CancelFunc

	hc directorHealth // health.go

	disc    discoveredSets                    // discovered.go
	fc      forecastBook                      // forecast.go
	events  atomic.Pointer[func(HealthEvent)] // events.go
	tplHook templateHook                      // synctemplates.go
}

// New returns a director that forwards with dp. It serves nothing until Apply.
func New(log *slog.Logger, dp Dataplane) *Director {
	root, cancel := context.WithCancel(context.Background())
	d := &Director{
		log: log, dp: dp,
		byKey:    map[string]*VirtualService{},
		retiring: map[string]*VirtualService{},
		root:     root, cancel: cancel,
	}
	d.hc.init()
	d.rec.init()
	go d.runReconciler()
	go d.housekeeping()
	return d
}

// housekeeping runs the director's periodic chores until shutdown.
func (d *Director) housekeeping() {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.root.Done():
			return
		case now := <-t.C:
			d.expirePersistence(now)
		}
	}
}

// Config returns the configuration in force.
func (d *Director) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Services returns the virtual services in configuration order.
func (d *Director) Services() []*VirtualService {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*VirtualService(nil), d.services...)
}

// Service returns the virtual service with the given key ("tcp/VIP:PORT").
func (d *Director) Service(key string) *VirtualService {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byKey[key]
}

// Apply makes cfg the desired state: new services start, removed ones stop
// taking connections (established ones run on until they end or the grace
// period passes), and kept ones take their new settings and real servers for
// every new connection at once. cfg must have been validated.
//
// The dataplanes are prepared and committed with a preview of the new
// state (the health machines' decisions on clones) before the director
// changes anything; only then does the director commit its own table. On
// error, the dataplane's included, nothing has changed: the previous
// state keeps serving.
func (d *Director) Apply(cfg *config.Config) (err error) {
	d.apply.Lock()
	defer d.apply.Unlock()
	grace := cfg.GracePeriod.D()
	// Notify commands run during and after Apply run as the new
	// configuration says; a failed Apply keeps the old policy.
	newRunAs := cfg.ScriptPolicy()
	if old := d.hc.runAs.Swap(&newRunAs); old != nil {
		defer func() {
			if err != nil {
				d.hc.runAs.Store(old)
			}
		}()
	}
	now := d.hc.now()

	type plan struct {
		vs       *VirtualService
		cfg      *config.VirtualServer
		settings *Settings
		persist  *persistence
		spec     *desired.Service
	}
	plans := make([]plan, 0, len(cfg.VirtualServers))
	var created []*VirtualService
	next := &Snapshot{Services: make([]ServiceSnapshot, 0, len(cfg.VirtualServers))}
	fail := func(err error) error {
		for _, c := range created {
			c.cancel()
		}
		return err
	}
	for _, vc := range cfg.VirtualServers {
		key := vc.Key()
		d.mu.Lock()
		vs := d.byKey[key]
		if vs == nil {
			vs = d.retiring[key]
		}
		d.mu.Unlock()
		var old *Settings
		if vs != nil {
			old = vs.Settings()
		}
		st, err := newSettings(vc, old)
		var pers *persistence
		if err == nil {
			var oldPers *persistence
			if vs != nil {
				oldPers = vs.persist.Load()
			}
			pers, err = newPersistence(vc, oldPers)
		}
		var spec *desired.Service
		if err == nil {
			spec, err = serviceSpec(vc, cfg)
		}
		if err != nil {
			return fail(fmt.Errorf("virtual server %s: %w", vc.Name, err))
		}
		var want *desired.Service
		if vs == nil {
			vs = d.newService(vc)
			// A new service is complete before the dataplane sees it.
			vs.update(d.log, vc, st, pers, spec, grace, now)
			created = append(created, vs)
			want = vs.want.Load()
		} else {
			want = vs.preview(now, vc, spec)
		}
		plans = append(plans, plan{vs, vc, st, pers, spec})
		next.Services = append(next.Services, ServiceSnapshot{Desired: want, Live: vs})
		if old != nil && old.Forwarding != st.Forwarding {
			// Connections move between dataplanes: worth a line of its own.
			d.log.Warn("virtual service forwarding changed", "service", vc.Name, "address", key,
				"from", string(old.Forwarding), "to", string(st.Forwarding))
		}
	}
	// The director's own commit, once the dataplanes have committed. It
	// runs on the reconciler goroutine (snapshot.go): no Apply of the old
	// table can come between the dataplanes' commit and this one.
	commit := func() {
		kept := make(map[*VirtualService]bool, len(plans))
		d.mu.Lock()
		for _, p := range plans {
			kept[p.vs] = true
			if d.retiring[p.vs.Key] == p.vs {
				// Removed by an earlier reload and back within its grace period.
				p.vs.retire.Stop()
				delete(d.retiring, p.vs.Key)
			}
		}
		d.mu.Unlock()
		isNew := make(map[*VirtualService]bool, len(created))
		for _, vs := range created {
			isNew[vs] = true
		}
		for _, p := range plans {
			if !isNew[p.vs] {
				p.vs.update(d.log, p.cfg, p.settings, p.persist, p.spec, grace, now)
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, vs := range d.services {
			if kept[vs] {
				continue
			}
			d.log.Info("virtual service removed", "service", vs.Settings().Name, "address", vs.Key, "grace", grace)
			d.retiring[vs.Key] = vs
			vs.stopHealth() // a removed service is not checked
			vs.retire = time.AfterFunc(grace, func() {
				vs.cancel()
				d.mu.Lock()
				if d.retiring[vs.Key] == vs {
					delete(d.retiring, vs.Key)
				}
				d.mu.Unlock()
			})
		}
		for _, vs := range created {
			d.log.Info("virtual service added", "service", vs.Settings().Name, "address", vs.Key,
				"forwarding", string(vs.Settings().Forwarding), "scheduler", vs.Settings().SchedulerName,
				"real_servers", len(vs.RealServers()))
		}
		d.services = make([]*VirtualService, len(plans))
		d.byKey = make(map[string]*VirtualService, len(plans))
		for i, p := range plans {
			d.services[i] = p.vs
			d.byKey[p.vs.Key] = p.vs
		}
		d.cfg = cfg
	}
	if err := d.reloadDataplane(next, commit); err != nil {
		return fail(err)
	}
	return nil
}

// Shutdown stops taking connections, lets established ones finish for up to
// grace, then closes what is left and returns when the dataplane is idle.
func (d *Director) Shutdown(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	d.stopHealthChecks(d.Services())
	// The reconciler ends first: from here on only the stop calls the
	// dataplane.
	d.stopReconciler()
	err := d.dp.Shutdown(ctx)
	if err != nil {
		d.log.Warn("grace period over, closing remaining connections", "grace", grace)
	}
	d.cancel()
	d.mu.Lock()
	for _, vs := range d.retiring {
		vs.retire.Stop()
	}
	d.mu.Unlock()
	d.waitNotifies(10 * time.Second)
	return d.dp.Close()
}

func (d *Director) newService(vc *config.VirtualServer) *VirtualService {
	ctx, cancel := context.WithCancel(d.root)
	vs := &VirtualService{
		Key:      vc.Key(),
		Protocol: vc.Protocol,
		Address:  vc.Address.AddrPort(),
		FWMark:   vc.FWMark,
		IPv6:     vc.IsIPv6(),
		retiring: map[netip.AddrPort]*RealServer{},
		ctx:      ctx,
		cancel:   cancel,
		tplHook:  &d.tplHook,
	}
	vs.firstDiscovery = vc.Discovery != nil
	vs.initHealth(d)
	return vs
}

// newSettings builds the settings of vc, keeping the running scheduler (and
// so its position and state) when neither its name nor its options changed.
func newSettings(vc *config.VirtualServer, old *Settings) (*Settings, error) {
	st := &Settings{
		cfg:           vc,
		Name:          vc.Name,
		SchedulerName: vc.Scheduler,
		Forwarding:    vc.Forwarding,
	}
	opts := vc.SchedOptions()
	opts.Prober = agentProber{} // prequal probes the real servers' agents (prober.go)
	if old != nil && old.SchedulerName == vc.Scheduler && sameOptions(old.schedOpts, opts) {
		st.Scheduler, st.schedOpts = old.Scheduler, opts
		return st, nil
	}
	s, err := sched.New(vc.Scheduler, opts)
	if err != nil {
		return nil, err
	}
	st.Scheduler, st.schedOpts = s, opts
	return st, nil
}

// newPersistence builds a service's persistence policy, keeping the running
// templates when the policy did not change, so a reload that does not touch
// it keeps every client's affinity.
func newPersistence(vc *config.VirtualServer, old *persistence) (*persistence, error) {
	if vc.PersistenceTimeout == 0 {
		return nil, nil
	}
	pc := persist.Config{Timeout: vc.PersistenceTimeout.D(), ExpireQuiescent: vc.ExpireQuiescentTemplate}
	if vc.PersistenceNetmask != "" {
		m, err := persist.ParseNetmask(vc.PersistenceNetmask)
		if err != nil {
			return nil, err
		}
		pc.Netmask = m
	}
	if old != nil && old.cfg.Timeout == pc.Timeout && old.cfg.ExpireQuiescent == pc.ExpireQuiescent &&
		old.cfg.Netmask == pc.Netmask {
		return old, nil
	}
	t, err := persist.New[netip.AddrPort](pc)
	if err != nil {
		return nil, err
	}
	return &persistence{cfg: pc, table: t}, nil
}

// update applies a virtual server's configuration to a running service.
func (vs *VirtualService) update(log *slog.Logger, vc *config.VirtualServer, st *Settings, pers *persistence,
	spec *desired.Service, grace time.Duration, now time.Time) {
	var acts healthActions
	defer acts.run() // after the unlock: logs and notify commands
	vs.mu.Lock()
	defer vs.mu.Unlock()
	running := vs.reals.Load() != nil // real servers added to a running service slow-start
	old := map[netip.AddrPort]*RealServer{}
	for _, rs := range vs.RealServers() {
		old[rs.Addr] = rs
	}
	reals := make([]*RealServer, 0, len(vc.RealServers))
	servers := make([]health.ServerConfig, 0, len(vc.RealServers))
	for _, rc := range vc.RealServers {
		addr := rc.Address.AddrPort()
		rs := old[addr]
		delete(old, addr)
		if rs == nil {
			if rs = vs.retiring[addr]; rs != nil {
				rs.retire.Stop()
				delete(vs.retiring, addr)
			}
		}
		if rs == nil {
			ctx, cancel := context.WithCancel(vs.ctx)
			rs = &RealServer{Addr: addr, Dest: sched.NewDest(addr, *rc.Weight), Latency: newLatency(), ctx: ctx, cancel: cancel}
			rs.Dest.Owner = rs
		}
		rs.cfg.Store(rc)
		// Its check, started again only if it changed (health.go).
		sc := vs.configureCheckLocked(rs, rc, vc)
		sc.Warm = vs.warmLocked(rc)
		servers = append(servers, sc)
		reals = append(reals, rs)
	}
	for addr, rs := range old {
		vs.stopRealHealthLocked(rs)
		log.Info("real server removed", "service", st.Name, "backend", addr.String(), "grace", grace)
		if p := vs.persist.Load(); p != nil {
			p.table.Forget(rs.Dest) // its clients are scheduled afresh
		}
		vs.retiring[addr] = rs
		rs.retire = time.AfterFunc(grace, func() {
			rs.cancel()
			vs.mu.Lock()
			if vs.retiring[addr] == rs {
				delete(vs.retiring, addr)
				vs.health.m.Forget(addr) // its health state, kept in case it came back
			}
			vs.mu.Unlock()
		})
	}
	// The health machine decides weights and the set, keeping each real
	// server's state; the scheduler learns the new set (the real servers in
	// service, or the sorry server) before the settings that point at it are
	// published, so no pick sees a scheduler without real servers.
	vs.configureSorryLocked(vc, grace)
	vs.spec = spec
	dec := vs.health.m.Configure(now, running, serviceHealthConfig(vc), servers)
	vs.applyLocked(st.Scheduler, reals, dec, true, &acts)
	vs.reals.Store(&reals)
	if was := vs.persist.Swap(pers); was != nil && was != pers {
		was.table.Clear() // a new policy starts afresh; the real servers' PersistConns drop
	}
	prev := vs.settings.Swap(st)
	if prev != nil && prev.Scheduler != st.Scheduler {
		prev.Scheduler.Update(nil) // detach the old scheduler's index from the real servers
	}
}

// expirePersistence drops expired persistence templates, giving their
// memory back; lookups never use an expired template anyway.
func (d *Director) expirePersistence(now time.Time) {
	for _, vs := range d.Services() {
		if p := vs.persist.Load(); p != nil {
			p.table.Expire(now)
		}
	}
}

// sameOptions reports whether two scheduler configurations are the same.
func sameOptions(a, b sched.Options) bool {
	return a.Fallback == b.Fallback && a.Port == b.Port && a.TableSize == b.TableSize && a.Expiration == b.Expiration
}
