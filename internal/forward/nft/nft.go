package nft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
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
	rules      *ruleset                   // what the table holds
	services   []director.ServiceSnapshot // what the last commit serves
	marks      map[realMark]uint32
	nextMark   uint32
	programmed string                             // description of the rules in force
	lastReals  map[string]map[netip.AddrPort]bool // by service key, for expire_nodest_conn
	// retired are the services a commit removed whose grace period (their
	// VirtualService context) has not ended: their flows keep their
	// translation, a stop waits for them, and the table stays while they
	// have flows even when no service is left (see dropIdleTable).
	retired map[*director.VirtualService]retiredService
	// idle: no service is left and the table has been removed; the next
	// commit with a service creates it again.
	idle bool

	view   atomic.Pointer[view] // read by the queue readers and stats
	queued atomic.Uint64        // packets govs was asked to schedule through NFQUEUE
	queues []*queue
	ct     *conntrack.Conn
	ctMu   sync.Mutex // serialises use of ct
	stats  *statsState

	stop chan struct{}
	reap chan struct{} // a real server stopped taking new flows: collect now
	// DR (dr.go, dr_stats.go, dr_dump.go): the flow maps' writer (drMu
	// guards it), their reader and last dumps, and the counters the
	// statistics saw with a spare map for the next read (drDumpMu guards
	// those). Apart, so that a long dump of a large map does not hold up
	// the installs of the sync's peers' flows. drDumpMu comes first when
	// both are held.
	drc        *nftables.Conn
	drMu       sync.Mutex
	drDumpMu   sync.Mutex
	drd        *drDumper
	drSnap     [2]drSnapshot
	drSeen     map[drFlowKey]flowCounters
	drSeenNext map[drFlowKey]flowCounters
	drStatsGen [2]uint64     // the dumps the statistics last read
	drDumps    atomic.Uint64 // dumps taken, for tests
	drOK       error         // why the kernel cannot do DR (probed at start), or nil
	availN     int           // destinations taking new flows, at the last apply
	wg         sync.WaitGroup
}

// view is what the packet path and the statistics need, swapped whole on
// every commit.
type view struct {
	byVIP map[vipKey]*director.VirtualService
	// byMark holds the fwmark services (fwmark.go), by markKey; drRIP the
	// fwmark dr services by real server address, for the DR flow map,
	// whose keys carry no mark.
	byMark map[vipKey]*director.VirtualService
	drRIP  map[netip.Addr]*director.VirtualService
	modes  map[*director.VirtualService]mode
	want   map[*director.VirtualService]*desired.Service
	marks  map[*director.VirtualService]map[netip.AddrPort]uint32 // queue-scheduled services
	dr     map[*director.VirtualService]bool                      // forwarding dr
}

// realMark names a real server (or sorry server) of a service: the packet
// mark NFQUEUE verdicts carry for it.
type realMark struct {
	service string
	addr    netip.AddrPort
}

// retiredService is a service a commit removed, in its grace period.
type retiredService struct {
	vip vipKey // its VIP, or its mark (markKey)
	dr  bool
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
// first commit with a service.
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
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Second
	}
	d := &Dataplane{log: log, opts: opts, marks: map[realMark]uint32{},
		lastReals: map[string]map[netip.AddrPort]bool{},
		retired:   map[*director.VirtualService]retiredService{},
		stop:      make(chan struct{}), reap: make(chan struct{}, 1)}
	d.view.Store(&view{})
	return d
}

// nftTx is a prepared snapshot: its rules planned, its DR real servers'
// routes checked. Nothing in the kernel has changed yet.
type nftTx struct {
	d        *Dataplane
	services []director.ServiceSnapshot
	retired  map[*director.VirtualService]retiredService
	plans    []*plan
	desc     string
	noop     bool // not started and nothing to serve
}

// Prepare implements director.Dataplane: it checks and plans s. The first
// snapshot with a service starts the dataplane (probes the kernel, creates
// the empty table, opens the queues).
func (d *Dataplane) Prepare(s *director.Snapshot) (director.Transaction, error) {
	return d.prepare(s, true)
}

// prepare is Prepare; checkRoutes says to check the DR real servers'
// routes, which only a reload can change (the real servers and sorry
// server a service lists are the configuration's, whatever health
// decides), so Apply skips them.
func (d *Dataplane) prepare(s *director.Snapshot, checkRoutes bool) (director.Transaction, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.draining {
		return nil, errors.New("nft dataplane is shutting down")
	}
	for _, e := range s.Services {
		if f := e.Desired.Forwarding; f != desired.NAT && f != desired.FullNAT && f != desired.DR {
			return nil, fmt.Errorf("%s: forwarding %s is not served by the kernel dataplane", e.Desired.Key, f)
		}
	}
	if !d.started {
		if len(s.Services) == 0 {
			return &nftTx{d: d, noop: true}, nil
		}
		if err := d.start(); err != nil {
			return nil, err
		}
	}
	if checkRoutes {
		if err := d.checkDR(s.Services); err != nil {
			return nil, err
		}
	}
	// Retired first: a removed dr service's pinned flows keep their chain
	// in the same transaction (retiredDRPlans).
	retired := d.retiredAfter(s.Services)
	plans, desc, err := d.plan(s.Services, retired, d.draining)
	if err != nil {
		return nil, err
	}
	return &nftTx{d: d, services: s.Services, retired: retired, plans: plans, desc: desc}, nil
}

// Commit implements director.Transaction: the new rules are one
// transaction, so an error leaves the kernel serving what it served
// before.
func (tx *nftTx) Commit() error {
	d := tx.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if tx.noop {
		return nil
	}
	if d.closed || d.draining {
		return errors.New("nft dataplane is shutting down")
	}
	if err := d.program(tx.plans, tx.desc); err != nil {
		return err
	}
	d.retired, d.services = tx.retired, tx.services
	d.publish(tx.plans, tx.services)
	// Flows of real servers this change removed end now (expire_nodest_conn).
	d.expireNodest()
	return nil
}

// Abort implements director.Transaction: nothing was changed.
func (*nftTx) Abort() {}

// Apply implements director.Dataplane: Prepare and Commit in one. After a
// health decision only the maps of the services whose weights or set
// changed differ, and a snapshot that changes no rule programs nothing.
func (d *Dataplane) Apply(s *director.Snapshot) error {
	tx, err := d.prepare(s, false)
	if err != nil {
		return err
	}
	return tx.Commit()
}

// program makes the kernel hold plans, unless it does already. Called
// with d.mu held.
func (d *Dataplane) program(plans []*plan, desc string) error {
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
	return nil
}

// publish makes plans the view of the packet path and the statistics.
// Called with d.mu held.
func (d *Dataplane) publish(plans []*plan, services []director.ServiceSnapshot) {
	byKey := make(map[string]director.ServiceSnapshot, len(services))
	for _, e := range services {
		byKey[e.Desired.Key] = e
	}
	v := &view{byVIP: map[vipKey]*director.VirtualService{}, modes: map[*director.VirtualService]mode{},
		want: map[*director.VirtualService]*desired.Service{}, marks: map[*director.VirtualService]map[netip.AddrPort]uint32{},
		dr: map[*director.VirtualService]bool{}, byMark: map[vipKey]*director.VirtualService{},
		drRIP: map[netip.Addr]*director.VirtualService{}}
	live := map[realMark]bool{}
	for _, p := range plans {
		e, ok := byKey[p.svc]
		if p.retired || !ok {
			continue // no new flows, no statistics: its pinned flows only
		}
		vs := e.Live
		if p.fwmark != 0 {
			v.addFWMark(p, e)
		} else {
			v.byVIP[p.key()] = vs
		}
		v.modes[vs], v.want[vs], v.dr[vs] = p.mode, e.Desired, p.dr
		marks := map[netip.AddrPort]uint32{}
		for _, r := range e.Desired.Served() {
			k := realMark{p.svc, r.Addr}
			live[k] = true
			if m, ok := d.marks[k]; ok {
				marks[r.Addr] = m
			}
		}
		v.marks[vs] = marks
	}
	for k := range d.marks {
		if !live[k] {
			delete(d.marks, k)
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
}

// plan builds the plans of services (and of the retired dr services whose
// pinned flows still need a chain) and their description. Called with d.mu
// held.
func (d *Dataplane) plan(services []director.ServiceSnapshot, retired map[*director.VirtualService]retiredService,
	drain bool) ([]*plan, string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "drain=%v\n", drain)
	want := make([]*desired.Service, len(services))
	for i, e := range services {
		want[i] = e.Desired
	}
	fwmarks := fwmarksOf(want)
	plans, err := planAll(want, func(key string, a netip.AddrPort) uint32 { return d.mark(key, a, fwmarks) })
	if err != nil {
		return nil, "", err
	}
	for _, p := range plans {
		p.describe(&b)
	}
	plans = append(plans, retiredDRPlans(plans, retired, &b)...)
	return plans, b.String(), nil
}

// mark is the packet mark of the real server at addr of service key,
// given on first use and kept while the server is served, never one of
// fwmarks. Called with d.mu held.
func (d *Dataplane) mark(key string, addr netip.AddrPort, fwmarks map[uint32]bool) uint32 {
	k := realMark{key, addr}
	mk, ok := d.marks[k]
	if !ok || fwmarks[mk] { // (a fwmark service added since takes the mark over)
		// Never a fwmark service's mark: conntrack's marks tell the fwmark
		// flows apart (fwmark.go).
		for d.nextMark++; d.nextMark == 0 || fwmarks[d.nextMark]; d.nextMark++ {
		}
		mk = d.nextMark
		d.marks[k] = mk
	}
	return mk
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
	d.wg.Add(2)
	go d.statsLoop()
	go d.accessLogLoop() // natlog.go
	return nil
}

// QueuedPackets is how many packets govs has scheduled through NFQUEUE
// since New: the first packets of the flows of services whose scheduler
// the kernel does not run. Kernel-scheduled services (rr, wrr, random, sh,
// mh, and every service while its sorry server stands in) add nothing.
func (d *Dataplane) QueuedPackets() uint64 { return d.queued.Load() }

// expireNodest ends the flows of real servers removed since the last
// commit, for services with expire_nodest_conn. Called with d.mu held.
func (d *Dataplane) expireNodest() {
	next := make(map[string]map[netip.AddrPort]bool, len(d.services))
	for _, e := range d.services {
		want := e.Desired
		now := map[netip.AddrPort]bool{}
		for _, r := range want.Reals {
			now[r.Addr] = true
		}
		// The sorry server is a destination while it stands in for the
		// real servers (keepalived adds it to IPVS then, and removes it
		// when the quorum is back): with expire_nodest_conn its flows end
		// when the real servers take over again.
		if want.SorryActive && want.Sorry != nil {
			now[want.Sorry.Addr] = true
		}
		next[want.Key] = now
		if !want.ExpireNodestConn {
			continue
		}
		for addr := range d.lastReals[want.Key] {
			if !now[addr] {
				del := d.deleteFlows
				if want.Forwarding == desired.DR {
					del = d.deleteDRFlows
				}
				n, err := del(e.Live, addr)
				d.log.Info("expire_nodest_conn: flows of a removed real server ended", "service", want.Name,
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
	d.pruneRetired()
	plans, desc, err := d.plan(d.services, d.retired, true)
	if err == nil {
		if err = d.program(plans, desc); err == nil {
			d.publish(plans, d.services)
		}
	}
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
	d.drDumpMu.Lock()
	d.drd.close()
	d.drd = nil
	d.drDumpMu.Unlock()
	if err != nil {
		return fmt.Errorf("removing nftables table inet %s: %w", d.opts.Table, err)
	}
	return nil
}
