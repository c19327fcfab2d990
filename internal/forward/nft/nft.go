package nft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/sched"
)

// Options configure the kernel dataplane. The zero value is usable.
type Options struct {
	// Table is the name of govs's nftables table (family inet); default "govs".
	Table string
	// NetNS is a file descriptor of the network namespace to program;
	// 0 means the daemon's own. Tests run a dataplane for a namespace they
	// built this way, without moving the test process.
	NetNS int
	// QueueBase is the first NFQUEUE number; Queues how many (default: the
	// number of CPUs, at most 8). Queues QueueBase..QueueBase+Queues-1 must
	// not be used by anything else on the host.
	QueueBase uint16
	Queues    int
	// PollInterval is how often runtime changes (weights from health
	// checks, real servers changed by a reload) are looked for; default
	// 50ms.
	PollInterval time.Duration
	// StatsInterval is how often conntrack is read for counts and
	// statistics; default 1s.
	StatsInterval time.Duration
}

// DefaultQueueBase is the first NFQUEUE number govs uses by default.
const DefaultQueueBase = 7300

// Dataplane is the kernel NAT/FULLNAT dataplane. It implements
// director.Dataplane. It touches the kernel only once it has a service to
// serve, so a configuration without nat services needs neither root nor
// nftables.
type Dataplane struct {
	log  *slog.Logger
	opts Options

	mu         sync.Mutex
	started    bool
	closed     bool
	draining   bool
	nft        *nftables.Conn
	rules      *ruleset // what the table holds
	services   []*director.VirtualService
	marks      map[*director.RealServer]uint32
	nextMark   uint32
	programmed string // description of the rules in force
	plans      []*plan
	lastReals  map[*director.VirtualService]map[netip.AddrPort]bool
	// retired are the services a Sync removed whose grace period (their
	// VirtualService context) has not ended: their flows keep their
	// translation, a stop waits for them, and the table stays while they
	// have flows even when no service is left (see dropIdleTable).
	retired map[*director.VirtualService]vipKey
	// idle: no service is left and the table has been removed; the next
	// Sync with a service creates it again.
	idle bool

	view   atomic.Pointer[view] // read by the queue readers and stats
	queued atomic.Uint64        // packets govs was asked to schedule through NFQUEUE
	queues []*queue
	ct     *conntrack.Conn
	ctMu   sync.Mutex // serialises use of ct
	stats  *statsState

	stop    chan struct{}
	changed chan struct{} // a service's weights or set changed: update now
	reap    chan struct{} // a real server stopped taking new flows: collect now
	// DR (dr.go, dr_stats.go): the flow maps' reader and what it saw.
	drc    *nftables.Conn
	drMu   sync.Mutex
	drSeen map[string]flowCounters
	drOK   error // why the kernel cannot do DR (probed at start), or nil
	availN int   // destinations taking new flows, at the last apply
	wg     sync.WaitGroup
}

// view is what the packet path needs, swapped whole on every change.
type view struct {
	byVIP map[vipKey]*director.VirtualService
	// byMark holds the fwmark services (fwmark.go), by markKey; drRIP the
	// fwmark dr services by real server address, for the DR flow map,
	// whose keys carry no mark.
	byMark map[vipKey]*director.VirtualService
	drRIP  map[netip.Addr]*director.VirtualService
	modes  map[*director.VirtualService]mode
	marks  map[*director.RealServer]uint32
	dr     map[*director.VirtualService]bool // forwarding dr
}

// vipKey is an address service's protocol and VIP:port, or a fwmark
// service's mark and family (markKey).
type vipKey struct {
	proto uint8
	addr  netip.AddrPort
	mark  uint32
	v6    bool
}

// New returns a kernel dataplane. It does nothing to the kernel until the
// first Sync with a service.
func New(log *slog.Logger, opts Options) *Dataplane {
	if opts.Table == "" {
		opts.Table = "govs"
	}
	if opts.QueueBase == 0 {
		opts.QueueBase = DefaultQueueBase
	}
	if opts.Queues <= 0 {
		opts.Queues = min(runtime.NumCPU(), 8)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Second
	}
	d := &Dataplane{log: log, opts: opts, marks: map[*director.RealServer]uint32{},
		lastReals: map[*director.VirtualService]map[netip.AddrPort]bool{},
		retired:   map[*director.VirtualService]vipKey{},
		stop:      make(chan struct{}), changed: make(chan struct{}, 1), reap: make(chan struct{}, 1)}
	d.view.Store(&view{})
	return d
}

// Sync implements director.Dataplane: the new rules are one transaction,
// so an error leaves the kernel serving what it served before.
func (d *Dataplane) Sync(services []*director.VirtualService) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.draining {
		return errors.New("nft dataplane is shutting down")
	}
	for _, vs := range services {
		if f := vs.Settings().Forwarding; f != config.NAT && f != config.FullNAT && f != config.DR {
			return fmt.Errorf("%s: forwarding %s is not served by the kernel dataplane", vs.Key, f)
		}
	}
	if !d.started {
		if len(services) == 0 {
			return nil
		}
		if err := d.start(); err != nil {
			return err
		}
	}
	if err := d.checkDR(services); err != nil {
		return err
	}
	// Retire first: a removed dr service's pinned flows keep their chain
	// in the same transaction (retiredDRPlans).
	d.retire(d.plans, services)
	if err := d.apply(services); err != nil {
		return err
	}
	d.services = services
	// Flows of real servers this change removed end now (expire_nodest_conn),
	// not at the next poll.
	d.expireNodest()
	return nil
}

// apply programs services if their rules changed and publishes the view.
// Called with d.mu held.
func (d *Dataplane) apply(services []*director.VirtualService) error {
	plans, desc, err := d.plan(services, d.draining)
	if err != nil {
		return err
	}
	if len(plans) > 0 {
		d.idle = false
	}
	if desc != d.programmed && !(d.idle && len(plans) == 0) {
		if err := d.rules.program(d.nft, plans, queueConfig{d.opts.QueueBase, uint16(d.opts.Queues)}, d.draining); err != nil {
			return fmt.Errorf("programming nftables table inet %s: %w", d.opts.Table, err)
		}
		d.programmed = desc
		d.log.Debug("nftables rules updated", "table", d.opts.Table, "services", len(plans))
	}
	d.plans = plans
	v := &view{byVIP: map[vipKey]*director.VirtualService{}, modes: map[*director.VirtualService]mode{},
		marks: map[*director.RealServer]uint32{}, dr: map[*director.VirtualService]bool{},
		byMark: map[vipKey]*director.VirtualService{}, drRIP: map[netip.Addr]*director.VirtualService{}}
	live := map[*director.RealServer]bool{}
	for _, p := range plans {
		if p.retired {
			continue // no new flows, no statistics: its pinned flows only
		}
		if p.fwmark != 0 {
			v.addFWMark(p)
		} else {
			v.byVIP[p.key()] = p.vs
		}
		v.modes[p.vs] = p.mode
		v.dr[p.vs] = p.dr
		sorry, _ := p.vs.SorryServer()
		for _, rs := range servedBy(p.vs.RealServers(), sorry) {
			live[rs] = true
			if m, ok := d.marks[rs]; ok {
				v.marks[rs] = m
			}
		}
	}
	for rs := range d.marks {
		if !live[rs] {
			delete(d.marks, rs)
		}
	}
	d.view.Store(v)
	// Fewer destinations take new flows than at the last look: the dead
	// flows of those that left go now (conntrack.go, deleteDead).
	if n := availableCount(v); n != d.availN {
		if n < d.availN {
			select {
			case d.reap <- struct{}{}:
			default:
			}
		}
		d.availN = n
	}
	return nil
}

// plan builds the plans of services and their description.
func (d *Dataplane) plan(services []*director.VirtualService, drain bool) ([]*plan, string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "drain=%v\n", drain)
	plans := make([]*plan, 0, len(services))
	fwmarks := fwmarksOf(services)
	for i, vs := range services {
		st := vs.Settings()
		vc := st.Config
		p := &plan{vs: vs, chain: fmt.Sprintf("s%d", i), v6: vs.Address.Addr().Is6(), vip: vs.Address,
			fullnat: st.Forwarding == config.FullNAT, dr: st.Forwarding == config.DR}
		switch vs.Protocol {
		case config.TCP:
			p.proto = 6
		case config.UDP:
			p.proto = 17
		default:
			return nil, "", fmt.Errorf("%s: protocol %s not supported by the kernel dataplane", vs.Key, vs.Protocol)
		}
		if vs.FWMark != 0 {
			// A fwmark service takes marked TCP and UDP alike: its tcp plan
			// here, its udp twin below (fwmark.go).
			p.fwmark, p.v6, p.proto = vs.FWMark, vs.IPv6, 6
		}
		reals := vs.RealServers()
		sorry, sorryActive := vs.SorryServer()
		m, kernel := kernelSchedulable(vs, vc)
		p.mode = m
		switch {
		case sorryActive:
			// The quorum is lost: every new flow goes to the sorry server,
			// as the director's scheduler (which holds it alone) would
			// send them; the real servers' established flows finish.
			p.mode, p.slots, p.sorry = modeInc, []netip.AddrPort{sorry.Addr}, true
		case m == modeMaglev:
			// The servers the director's mh scheduler holds: those in
			// service, including the ones inhibited at weight 0.
			set, ok := sched.MaglevServers(st.Scheduler)
			if !ok {
				p.mode = modeQueue
				break
			}
			var opts sched.Options
			if vc != nil {
				opts = vc.SchedOptions()
			}
			p.slots, p.port = mhSlots(set, opts.Fallback), opts.Port
		case kernel:
			slots, ok := slotsFor(m, st.SchedulerName, reals)
			if ok {
				p.slots = slots
			} else {
				p.mode = modeQueue // wrr period too long for a map
			}
		}
		if p.mode == modeQueue {
			p.slots, _ = slotsFor(modeInc, "rr", reals) // the fail-open fallback
			p.marks = map[uint32]netip.AddrPort{}
			// The sorry server has a mark too: between the quorum's loss
			// and the rules that follow it, govs's scheduler already
			// answers with it.
			for _, rs := range servedBy(reals, sorry) {
				mk, ok := d.marks[rs]
				if !ok || fwmarks[mk] { // (a fwmark service added since takes the mark over)
					// Never a fwmark service's mark: conntrack's marks tell
					// the fwmark flows apart (fwmark.go).
					for d.nextMark++; d.nextMark == 0 || fwmarks[d.nextMark]; d.nextMark++ {
					}
					mk = d.nextMark
					d.marks[rs] = mk
				}
				p.marks[mk] = rs.Addr
			}
		}
		if p.fullnat && vc != nil {
			var ranges []config.AddrRange
			for _, s := range vc.LocalAddresses {
				r, err := config.ParseAddrRange(s)
				if err != nil {
					return nil, "", fmt.Errorf("%s: %w", vs.Key, err)
				}
				ranges = append(ranges, r)
			}
			if len(ranges) == 1 {
				p.snatR = &ranges[0]
			} else {
				p.snat = expandRanges(ranges, 256)
			}
		}
		p.noPort = noPort(p)
		plans = append(plans, p)
		if p.fwmark != 0 {
			plans = append(plans, udpTwin(p))
		}
	}
	// fwmark services first: IPVS looks a packet's mark up before its
	// address (ip_vs_service_find), and so do the base chains.
	slices.SortStableFunc(plans, func(a, b *plan) int { return cmpBool(b.fwmark != 0, a.fwmark != 0) })
	for _, p := range plans {
		p.describe(&b)
	}
	plans = append(plans, d.retiredDRPlans(plans, &b)...)
	return plans, b.String(), nil
}

// servedBy lists the real servers and, if there is one, the sorry server.
func servedBy(reals []*director.RealServer, sorry *director.RealServer) []*director.RealServer {
	if sorry == nil {
		return reals
	}
	return append(reals[:len(reals):len(reals)], sorry)
}

// start probes the kernel, replaces any table left by an earlier run and
// starts the queue readers and the loops. Called with d.mu held.
func (d *Dataplane) start() error {
	rep := ProbeKernel(d.opts.NetNS)
	d.log.Info("kernel dataplane probe", "report", rep.String())
	if err := rep.Err(); err != nil {
		return err
	}
	d.drOK = rep.DRErr()
	if rep.Acct == "0" {
		if err := enableAcct(); err != nil {
			d.log.Warn("cannot enable nf_conntrack_acct: byte and packet statistics stay 0", "err", err)
		} else {
			d.log.Info("enabled net.netfilter.nf_conntrack_acct for byte and packet statistics")
		}
	}
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(d.opts.NetNS),
		nftables.WithSockOptions(bigBuffers))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	// An empty table first: replaces what a crashed run left behind (the
	// first transaction of a ruleset replaces the table; later ones keep
	// it and its base chains).
	rules := &ruleset{table: d.opts.Table}
	if err := rules.program(c, nil, queueConfig{}, false); err != nil {
		c.CloseLasting()
		return fmt.Errorf("nftables: creating table inet %s: %w", d.opts.Table, err)
	}
	ct, err := dialConntrack(d.opts.NetNS)
	if err != nil {
		removeTable(c, d.opts.Table)
		c.CloseLasting()
		return err
	}
	var queues []*queue
	for i := range d.opts.Queues {
		q, err := openQueue(d, d.opts.NetNS, d.opts.QueueBase+uint16(i))
		if err != nil {
			for _, q := range queues {
				q.close()
			}
			ct.Close()
			removeTable(c, d.opts.Table)
			c.CloseLasting()
			return fmt.Errorf("nfqueue %d: %w", d.opts.QueueBase+uint16(i), err)
		}
		queues = append(queues, q)
	}
	d.nft, d.rules, d.ct, d.queues, d.started = c, rules, ct, queues, true
	d.stats = newStatsState()
	for _, q := range queues {
		d.wg.Add(1)
		go q.run()
	}
	d.wg.Add(3)
	go d.pollLoop()
	go d.statsLoop()
	go d.accessLogLoop() // natlog.go
	return nil
}

// QueuedPackets is how many packets govs has scheduled through NFQUEUE
// since New: the first packets of the flows of services whose scheduler
// the kernel does not run. Kernel-scheduled services (rr, wrr, random, sh,
// mh, and every service while its sorry server stands in) add nothing.
func (d *Dataplane) QueuedPackets() uint64 { return d.queued.Load() }

// ServiceChanged implements director.ChangeNotifier: health checks, an
// agent, a drain or slow start changed weights; the maps follow at once
// instead of at the next poll.
func (d *Dataplane) ServiceChanged(*director.VirtualService) {
	select {
	case d.changed <- struct{}{}:
	default: // an update is already due
	}
}

// pollLoop follows runtime changes the director makes without a Sync or a
// ServiceChanged (overload by connection thresholds), as a safety net:
// effective weights, and the real servers and settings of a kept service,
// which a reload changes right after Sync.
func (d *Dataplane) pollLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		case <-d.changed:
		}
		d.mu.Lock()
		if !d.closed {
			if err := d.apply(d.services); err != nil {
				d.log.Error("kernel dataplane update failed, rules kept", "err", err)
			}
			d.expireNodest()
		}
		d.mu.Unlock()
	}
}

// expireNodest ends the flows of real servers removed since the last look,
// for services with expire_nodest_conn. Called with d.mu held.
func (d *Dataplane) expireNodest() {
	next := make(map[*director.VirtualService]map[netip.AddrPort]bool, len(d.services))
	for _, vs := range d.services {
		now := map[netip.AddrPort]bool{}
		for _, rs := range vs.RealServers() {
			now[rs.Addr] = true
		}
		// The sorry server is a destination while it stands in for the
		// real servers (keepalived adds it to IPVS then, and removes it
		// when the quorum is back): with expire_nodest_conn its flows end
		// when the real servers take over again.
		if sorry, active := vs.SorryServer(); active {
			now[sorry.Addr] = true
		}
		next[vs] = now
		if vc := vs.Settings().Config; vc == nil || !vc.ExpireNodestConn {
			continue
		}
		for addr := range d.lastReals[vs] {
			if !now[addr] {
				del := d.deleteFlows
				if vs.Settings().Forwarding == config.DR {
					del = d.deleteDRFlows
				}
				n, err := del(vs, addr)
				d.log.Info("expire_nodest_conn: flows of a removed real server ended", "service", vs.Settings().Name,
					"backend", addr.String(), "flows", n, "err", err)
			}
		}
	}
	d.lastReals = next
}

// Shutdown implements director.Dataplane: the VIPs drop new flows at once;
// it returns when conntrack holds no flow of the services any more, nor of
// the services a reload removed whose grace period runs. Until Close, the
// table (and the rule that keeps conntrack on, holdConntrack) stays: the
// established flows keep their translation both ways.
func (d *Dataplane) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	if !d.started || d.closed {
		d.mu.Unlock()
		return nil
	}
	d.draining = true
	err := d.apply(d.services)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		d.mu.Lock()
		retired := d.retiredVIPs()
		d.mu.Unlock()
		if n, err := d.liveFlows(retired); err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close implements director.Dataplane: it removes the table (flows still
// established stop being translated) and stops the queue readers.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	if d.closed || !d.started {
		d.closed = true
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	// Remove the rules first: a queue rule with bypass lets flows through
	// while the readers stop, and then there is no rule at all.
	err := removeTable(d.nft, d.opts.Table)
	d.nft.CloseLasting()
	for _, q := range d.queues {
		q.close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.ctMu.Lock()
	d.ct.Close()
	d.ctMu.Unlock()
	d.drMu.Lock()
	if d.drc != nil {
		d.drc.CloseLasting()
	}
	d.drMu.Unlock()
	if err != nil {
		return fmt.Errorf("removing nftables table inet %s: %w", d.opts.Table, err)
	}
	return nil
}
