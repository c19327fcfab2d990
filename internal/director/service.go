package director

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/persist"
	"github.com/govs-lb/govs/internal/sched"
)

// Settings are the director's own parts of a virtual service that a
// reload may change in place: its name and its scheduler. What a dataplane
// needs (timeouts, limits, addresses) is in the service's desired.Service
// (snapshot.go), handed to it in each Snapshot.
type Settings struct {
	Name          string
	SchedulerName string
	Scheduler     sched.Scheduler
	Forwarding    config.Forwarding

	schedOpts sched.Options
	// cfg is the configuration these settings were built from, for the
	// director's own use (forecast.go); dataplanes read the snapshot.
	cfg *config.VirtualServer
}

// VirtualService is a running virtual service. Its identity (protocol and
// address) never changes; everything else can change on reload.
type VirtualService struct {
	Key      string
	Protocol config.Protocol
	Address  netip.AddrPort // invalid for a fwmark service
	// FWMark is a firewall-mark service's packet mark (0: an address
	// service), IPv6 its family (a fwmark service has no address to tell).
	FWMark uint32
	IPv6   bool
	Stats  Stats
	// Flows is the number of UDP flows in the proxy's flow table, which
	// max_flows bounds.
	Flows atomic.Int64

	fallback atomic.Uint32 // rotates the start of Schedule's fallback scan
	settings atomic.Pointer[Settings]
	reals    atomic.Pointer[[]*RealServer] // in service, in configuration order
	persist  atomic.Pointer[persistence]   // nil: not persistent

	mu       sync.Mutex // guards retiring, spec and updates
	retiring map[netip.AddrPort]*RealServer
	// spec is the desired state of the configuration in force, before
	// health fills in weights and the set; want is the last one filled in,
	// what the dataplanes are asked to serve (snapshot.go).
	spec *desired.Service
	want atomic.Pointer[desired.Service]

	ctx    context.Context // ends when the service's connections must end
	cancel context.CancelFunc
	retire *time.Timer

	health svcHealth // quorum, sorry server (health.go); guarded by mu
	// firstDiscovery says the service's discovery block has not delivered
	// a set yet since the service started (with govs, or added by a
	// reload): that set's servers start at full weight as the written ones
	// did, not slow-started as later additions. Guarded by mu.
	firstDiscovery bool

	tplHook *templateHook // the director's (synctemplates.go)
}

// Settings returns the current settings.
func (vs *VirtualService) Settings() *Settings { return vs.settings.Load() }

// RealServers returns the real servers in service, in configuration order.
// The slice must not be modified.
func (vs *VirtualService) RealServers() []*RealServer {
	if p := vs.reals.Load(); p != nil {
		return *p
	}
	return nil
}

// Retiring returns real servers removed by a reload whose connections may
// still run until the grace period ends.
func (vs *VirtualService) Retiring() []*RealServer {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	out := make([]*RealServer, 0, len(vs.retiring))
	for _, rs := range vs.retiring {
		out = append(out, rs)
	}
	return out
}

// Context ends when the service's connections must be closed: after
// shutdown or after its removal, once the grace period has passed.
func (vs *VirtualService) Context() context.Context { return vs.ctx }

// persistence is a service's persistence policy and its templates.
type persistence struct {
	cfg   persist.Config
	table *persist.Table[netip.AddrPort]
}

// Binding is a new connection's real server and the persistence template it
// holds, if any. Release it when the connection ends.
type Binding struct {
	RealServer *RealServer
	template   *persist.Template
}

// Schedule chooses a real server for a new connection from client, skipping
// those in exclude (real servers that already failed this connection). A
// persistent service sends a client (or its netmask group) to the real
// server of its template while the template lives, as IPVS does, even when
// that server is quiesced or overloaded. RealServer is nil when no real
// server is available.
func (vs *VirtualService) Schedule(client netip.AddrPort, exclude []*RealServer) Binding {
	p := vs.persist.Load()
	if p == nil {
		return Binding{RealServer: vs.schedule(client, exclude)}
	}
	if tp := p.table.Lookup(vs.Address, client.Addr()); tp != nil {
		if rs := tp.Dest().Owner.(*RealServer); !contains(exclude, rs) {
			return Binding{rs, tp}
		}
		p.table.Release(tp)
	}
	rs := vs.schedule(client, exclude)
	if rs == nil {
		return Binding{}
	}
	// A full table (ErrFull) leaves this connection unpersisted rather than
	// evicting another client's affinity early.
	tp, err := p.table.Bind(vs.Address, client.Addr(), rs.Dest)
	if err == nil {
		vs.bound(p, client.Addr(), rs)
	}
	return Binding{rs, tp}
}

// Observe hands a measurement of rs to the service's scheduler, if it is one
// that learns from them (pewma, prequal, adaptive-weights); the IPVS
// schedulers ignore it at the cost of one type check. Connect times and
// durations also go to rs's histograms.
func (vs *VirtualService) Observe(rs *RealServer, sig sched.Signal) {
	rs.Latency.observe(sig) // the metrics' histograms, whatever the scheduler
	if o, ok := vs.Settings().Scheduler.(sched.SignalObserver); ok {
		o.Observe(rs.Dest, sig)
	}
}

// Release ends the binding's hold on its persistence template: the template
// then lives for the persistence timeout.
func (vs *VirtualService) Release(b Binding) {
	if b.template == nil {
		return
	}
	if p := vs.persist.Load(); p != nil {
		p.table.Release(b.template)
	}
}

func (vs *VirtualService) schedule(client netip.AddrPort, exclude []*RealServer) *RealServer {
	k := sched.Key{Client: client, VIP: vs.Address}
	st := vs.Settings()
	d := st.Scheduler.Pick(&k)
	// A reload that replaced the scheduler detaches the old one, which then
	// answers nil: ask the new one instead of refusing the connection.
	for i := 0; d == nil && i < 3; i++ {
		cur := vs.Settings()
		if cur == st {
			break
		}
		st = cur
		d = st.Scheduler.Pick(&k)
	}
	if d != nil {
		rs := d.Owner.(*RealServer)
		if !contains(exclude, rs) {
			return rs
		}
	}
	if len(exclude) == 0 {
		return nil
	}
	// The scheduler's choice already failed this connection (a hashing
	// scheduler keeps choosing it): try the others, from a rotating start so
	// that the retries of many connections spread instead of all landing on
	// the first real server in the list.
	reals := vs.RealServers()
	start := int(vs.fallback.Add(1))
	for i := range reals {
		rs := reals[(start+i)%len(reals)]
		if rs.Dest.Available() && !contains(exclude, rs) {
			return rs
		}
	}
	return nil
}

func contains(list []*RealServer, rs *RealServer) bool {
	for _, x := range list {
		if x == rs {
			return true
		}
	}
	return false
}

// RealServer is a running real server of a virtual service.
type RealServer struct {
	Addr  netip.AddrPort
	Dest  *sched.Dest // scheduler state: effective weight, connection counts
	Stats Stats
	// Latency holds the connect and duration histograms the proxy's
	// timing signals feed (through VirtualService.Observe).
	Latency Latency

	cfg    atomic.Pointer[config.RealServer]
	ctx    context.Context
	cancel context.CancelFunc
	retire *time.Timer

	health rsHealth // state, checks (health.go); guarded by its service's mu
}

// Config returns the real server's current configuration.
func (rs *RealServer) Config() *config.RealServer { return rs.cfg.Load() }

// Context ends when the real server's connections must be closed: after
// shutdown or after its removal, once the grace period has passed.
func (rs *RealServer) Context() context.Context { return rs.ctx }
