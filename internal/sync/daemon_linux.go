package connsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Defaults of the daemon.
const (
	DefaultPort    = 8848
	DefaultRefresh = 10 * time.Second
	tickEvery      = 5 * time.Millisecond
	echoWindow     = 2 * time.Second
)

// DefaultGroup is IPVS's sync group.
var DefaultGroup = netip.MustParseAddr("224.0.0.81")

// Service is a virtual service whose flows are synced: a protocol and a
// VIP:port, or a firewall mark (the conntrack mark of its flows; Proto 0,
// Addr the family's unspecified address, port 0).
type Service struct {
	Proto uint8
	Addr  netip.AddrPort
	Mark  uint32
}

// MarkService is the Service of fwmark service mark, of the IPv6 family
// or not: both protocols.
func MarkService(mark uint32, v6 bool) Service {
	a := netip.IPv4Unspecified()
	if v6 {
		a = netip.IPv6Unspecified()
	}
	return Service{Addr: netip.AddrPortFrom(a, 0), Mark: mark}
}

// syncedFlow reports whether the flow of proto to orig dst with conntrack
// mark is one of svcs's.
func syncedFlow(svcs map[Service]bool, proto uint8, dst netip.AddrPort, mark uint32) bool {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if svcs[Service{Proto: proto, Addr: dst}] {
		return true
	}
	return mark != 0 && (proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP) && svcs[MarkService(mark, is6(dst.Addr()))]
}

// Options configure a Daemon.
type Options struct {
	Log       *slog.Logger
	Interface string       // the sync link; required for multicast
	Group     netip.Addr   // multicast group, when Peers is empty
	Peers     []netip.Addr // unicast peers
	Port      int
	SyncID    uint8
	Key       []byte
	// FlushDelay, AliveInterval, ResyncTimeout: see Config.
	FlushDelay, AliveInterval, ResyncTimeout time.Duration
	// Refresh is how often flows kept alive here are sent again before
	// they would time out on the peers.
	Refresh time.Duration
	// StartupResync asks the peers for their tables at start;
	// OnResyncDone is called (from the daemon's goroutine) when that ends.
	StartupResync bool
	OnResyncDone  func(peer string, timedOut bool)
	Services      []Service
	// Templates are the director's persistence templates, synced with
	// the flows (nil: none).
	Templates Templates
	// DR is the DR dataplane's flow map, synced too (nil: none).
	DR DRFlows
	// NoMaster and NoBackup turn a role off (IPVS's two daemons): the
	// master role sends this director's flows, the backup role installs
	// the peers'. The default is both.
	NoMaster, NoBackup bool
}

// Templates gives the sync the director's persistence templates, as
// entries of KindTemplate: Orig.Src the client group (port 0), Orig.Dst the
// service (the unspecified address for a fwmark service, whose mark is in
// Mark), Reply.Src the real server, Timeout what the template has left.
type Templates interface {
	// Templates lists the live templates; remote ones were installed
	// from a peer and not used here since (they are not sent back).
	Templates(yield func(e Entry, remote bool) bool)
	// InstallTemplate installs a peer's template.
	InstallTemplate(e Entry) error
}

// DRFlows gives the sync the DR flows (flow -> real server) of the DR
// dataplane, as entries of KindDR: Orig the client to the VIP, Reply.Src
// the real server (the VIP's port), Timeout what the flow has left. DR
// flows make no conntrack entry, so they are polled: the flows created in
// the last seconds (DRNewFlows, a read that costs what the rate of new
// flows costs) every drPollMin, or less often when that read takes long;
// the whole flow map (DRFlows, whose read grows with the square of its
// size) every drFullMin on a small map, and at most 5% of the time on a
// large one, at least every drFullMax.
type DRFlows interface {
	DRFlows(yield func(e Entry) bool) error
	// DRNewFlows lists the flows created here in the last seconds (not
	// those installed from peers).
	DRNewFlows(yield func(e Entry) bool) error
	// InstallDRFlows adds peers' flows to the flow map; a flow there
	// already keeps its real server.
	InstallDRFlows(es []Entry) error
}

// DR flow polling bounds: drPollMax stays under the time a new flow stays
// listed by DRNewFlows (3 s), so none is missed; drFullMax bounds how late
// the whole map's reads are (refreshes near the peers' copies' end, flows
// that ended here forgotten, flows that moved here from a peer).
const (
	drPollMin  = 50 * time.Millisecond
	drPollMax  = time.Second
	drFullMin  = time.Second // (the statistics read it as often: one read serves both)
	drFullMax  = 30 * time.Second
	drDutyCost = 20 // a read every 20 times its duration: 5% of the time
)

// Daemon runs a Node over UDP and the local conntrack table: it sends the
// flows of the synced services as conntrack reports them, and installs its
// peers' flows.
type Daemon struct {
	opts  Options
	log   *slog.Logger
	node  *Node
	conn  *net.UDPConn
	dests []netip.AddrPort
	addrs map[uint32]netip.AddrPort // peer node -> its address, as last heard

	events   *eventReader
	dumper   *conntrack.Conn
	sink     *sink
	services atomic.Pointer[map[Service]bool]

	// ext remembers the flows installed from peers: conntrack reports our
	// own installs as events, which must not be sent back.
	ext  map[Key]extEntry
	told map[Key]time.Time // flows sent: when the peers' copy expires
	// DR flows: the real server of each flow seen here, and those
	// installed from peers (with when their copy expires here unless
	// traffic keeps it), not to be sent back.
	drKnown map[Key]netip.AddrPort
	drExt   map[Key]drExtEntry
	drEvery time.Duration // between reads (of the new flows, or the whole map)
	// the whole map's reads: how often, and when the next is due
	drFullEvery time.Duration
	drFullNext  time.Time

	packets chan packet
	evs     chan []ctEvent
	tpls    chan Entry // templates bound here (TemplateBound)
	dumped  chan dumpResult
	drDump  chan drDumpResult
	dumpMu  sync.Mutex // one conntrack dump at a time on dumper
	status  chan chan DaemonStatus
	quit    chan struct{}
	wg      sync.WaitGroup

	master, backup atomic.Bool
	ctl            chan func(now time.Time)

	installed, installErrors, eventsLost atomic.Uint64
	installedTemplates, installedDR      atomic.Uint64
	lags                                 []time.Duration // ring of install lags
	lagNext                              int
	lastLag                              time.Duration
	resyncDone                           bool
}

type extEntry struct {
	states  uint32    // TCP states installed since at (bit per state)
	at      time.Time // first install of the echo window
	expires time.Time // when the peer's copy expires unless refreshed
	deleted bool      // a tombstone: the peer deleted it
}

type drExtEntry struct {
	rs      netip.AddrPort
	expires time.Time
}

type packet struct {
	data []byte
	from netip.AddrPort
}

// Start opens the socket and conntrack, and runs the daemon.
func Start(opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if !opts.Group.IsValid() && len(opts.Peers) == 0 {
		opts.Group = DefaultGroup
	}
	d := &Daemon{opts: opts, log: opts.Log.With("component", "sync"), addrs: map[uint32]netip.AddrPort{},
		ext: map[Key]extEntry{}, told: map[Key]time.Time{}, drKnown: map[Key]netip.AddrPort{}, drExt: map[Key]drExtEntry{}, drEvery: drPollMin, packets: make(chan packet, 1024),
		evs: make(chan []ctEvent, 1024), tpls: make(chan Entry, 4096), dumped: make(chan dumpResult), drDump: make(chan drDumpResult), status: make(chan chan DaemonStatus), quit: make(chan struct{}),
		lags: make([]time.Duration, 0, 1024), ctl: make(chan func(time.Time))}
	d.master.Store(!opts.NoMaster)
	d.backup.Store(!opts.NoBackup)
	d.SetServices(opts.Services)
	var ifi *net.Interface
	if opts.Interface != "" {
		var err error
		if ifi, err = net.InterfaceByName(opts.Interface); err != nil {
			return nil, fmt.Errorf("sync interface: %w", err)
		}
	}
	v6 := opts.Group.Is6()
	if len(opts.Peers) > 0 {
		v6 = opts.Peers[0].Is6() && !opts.Peers[0].Is4In6()
	}
	maxMsg := DefaultMaxMessage
	if ifi != nil {
		maxMsg = ifi.MTU - 28
		if v6 {
			maxMsg = ifi.MTU - 48
		}
	}
	node, err := NewNode(Config{SyncID: opts.SyncID, Node: rand.Uint32() | 1, Epoch: uint64(time.Now().UnixMilli()),
		Key: opts.Key, MaxMessage: maxMsg, FlushDelay: opts.FlushDelay, AliveInterval: opts.AliveInterval,
		ResyncTimeout: opts.ResyncTimeout})
	if err != nil {
		return nil, err
	}
	d.node = node
	if err := d.openSocket(ifi, v6); err != nil {
		return nil, err
	}
	if err := d.openConntrack(); err != nil {
		d.conn.Close()
		return nil, err
	}
	d.wg.Add(3)
	go d.readLoop()
	go d.eventLoop()
	go d.loop()
	return d, nil
}

// syncRcvBuf is the sync socket's receive buffer.
const syncRcvBuf = 8 << 20

func (d *Daemon) openSocket(ifi *net.Interface, v6 bool) error {
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil && ifi != nil {
				serr = unix.BindToDevice(int(fd), ifi.Name)
			}
			// A bulk resync or a burst of new DR flows is thousands of
			// datagrams at once: the default buffer (about 90 of them)
			// overflows while the loop installs, and every loss costs a
			// NACK and a retransmission, or a whole resync. Past
			// rmem_max as root; best effort otherwise.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, syncRcvBuf) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, syncRcvBuf)
			}
		})
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, ":"+strconv.Itoa(d.opts.Port))
	if err != nil {
		return fmt.Errorf("sync socket: %w", err)
	}
	d.conn = pc.(*net.UDPConn)
	if len(d.opts.Peers) > 0 {
		for _, p := range d.opts.Peers {
			d.dests = append(d.dests, netip.AddrPortFrom(p, uint16(d.opts.Port)))
		}
		return nil
	}
	if ifi == nil {
		d.conn.Close()
		return errors.New("sync: multicast needs an interface")
	}
	group := &net.UDPAddr{IP: d.opts.Group.AsSlice()}
	if v6 {
		p := ipv6.NewPacketConn(d.conn)
		err = errors.Join(p.JoinGroup(ifi, group), p.SetMulticastInterface(ifi), p.SetMulticastLoopback(false), p.SetMulticastHopLimit(1))
	} else {
		p := ipv4.NewPacketConn(d.conn)
		err = errors.Join(p.JoinGroup(ifi, group), p.SetMulticastInterface(ifi), p.SetMulticastLoopback(false), p.SetMulticastTTL(1))
	}
	if err != nil {
		d.conn.Close()
		return fmt.Errorf("sync multicast group %s on %s: %w", d.opts.Group, ifi.Name, err)
	}
	d.dests = []netip.AddrPort{netip.AddrPortFrom(d.opts.Group, uint16(d.opts.Port))}
	return nil
}

func (d *Daemon) openConntrack() error {
	var err error
	if d.events, err = openEvents(); err != nil {
		return err
	}
	if d.dumper, err = conntrack.Dial(&netlink.Config{}); err != nil {
		d.events.close()
		return fmt.Errorf("conntrack: %w", err)
	}
	if d.sink, err = dialSink(0); err != nil {
		d.events.close()
		d.dumper.Close()
		return err
	}
	return nil
}

// eventLoop reads conntrack's events and passes those of synced flows on.
func (d *Daemon) eventLoop() {
	defer d.wg.Done()
	var buf []ctEvent
	for {
		select {
		case <-d.quit:
			return
		default:
		}
		var err error
		buf, err = d.events.read(buf[:0])
		if errors.Is(err, unix.ENOBUFS) {
			// Events were lost: the next refresh sends the flows the
			// peers do not know of.
			d.eventsLost.Add(1)
		}
		svcs := *d.services.Load()
		var out []ctEvent
		for _, ev := range buf {
			if ev.dstNAT && syncedFlow(svcs, ev.entry.Proto, ev.entry.Orig.Dst, ev.entry.Mark) {
				out = append(out, ev)
			}
		}
		if len(out) == 0 {
			continue
		}
		select {
		case d.evs <- out:
		case <-d.quit:
			return
		}
	}
}

// SetServices sets the services whose flows are synced.
func (d *Daemon) SetServices(svcs []Service) {
	m := make(map[Service]bool, len(svcs))
	for _, s := range svcs {
		m[Service{s.Proto, netip.AddrPortFrom(s.Addr.Addr().Unmap(), s.Addr.Port()), s.Mark}] = true
	}
	d.services.Store(&m)
}

// SetRoles turns the master role (send this director's flows) and the
// backup role (install the peers') on or off. A master role turned on
// again forgets what the peers were told, so that the next refresh sends
// them every flow here.
func (d *Daemon) SetRoles(master, backup bool) {
	select {
	case d.ctl <- func(time.Time) {
		if master && !d.master.Load() {
			clear(d.told)
		}
		d.master.Store(master)
		d.backup.Store(backup)
	}:
	case <-d.quit:
	}
}

// TemplateBound sends a persistence template just bound here. It never
// blocks: when the daemon lags, the next refresh sends it.
func (d *Daemon) TemplateBound(e Entry) {
	select {
	case d.tpls <- e:
	default:
	}
}

// Roles reports which roles run.
func (d *Daemon) Roles() (master, backup bool) { return d.master.Load(), d.backup.Load() }

// Stop ends the daemon.
func (d *Daemon) Stop() {
	select {
	case <-d.quit:
		return
	default:
	}
	close(d.quit)
	d.conn.Close()
	d.wg.Wait() // the event reader notices within its read timeout
	d.events.close()
	d.dumper.Close()
	d.sink.close()
}

func (d *Daemon) readLoop() {
	defer d.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-d.quit:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case d.packets <- packet{append([]byte(nil), buf[:n]...), from}:
		case <-d.quit:
			return
		}
	}
}

func (d *Daemon) loop() {
	defer d.wg.Done()
	if d.opts.StartupResync {
		d.log.Info("connection sync: asking peers for their flows", "timeout", d.node.Config().ResyncTimeout)
		d.node.StartResync(time.Now())
	}
	// Flows already here (from before a restart) are not sent: they may
	// be stale, and a peer that wants them asks with a resync. Only those
	// kept alive by traffic are refreshed.
	d.refresh(time.Now(), true)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	refresh := time.NewTicker(d.opts.Refresh)
	defer refresh.Stop()
	refreshing := false // a refresh dump runs (refreshDumped)
	var drTimer *time.Timer
	var drTick <-chan time.Time // nil without DR: never ready
	if d.opts.DR != nil {
		d.pollDR(time.Now(), true)
		drTimer = time.NewTimer(d.drEvery)
		defer drTimer.Stop()
		drTick = drTimer.C
	}
	for {
		select {
		case <-d.quit:
			return
		case p := <-d.packets:
			if err := d.node.Receive(time.Now(), p.data); err == nil && len(p.data) >= 12 {
				id := uint32(p.data[8])<<24 | uint32(p.data[9])<<16 | uint32(p.data[10])<<8 | uint32(p.data[11])
				d.addrs[id] = p.from
			} else if err != nil {
				d.log.Debug("sync message dropped", "from", p.from, "err", err)
			}
		case evs := <-d.evs:
			now := time.Now()
			for _, ev := range evs {
				d.event(now, ev)
			}
		case <-tick.C:
			d.node.Tick(time.Now())
		case <-refresh.C:
			if !refreshing {
				refreshing = true
				d.wg.Add(1)
				go d.refreshDumped()
			}
		case r := <-d.dumped:
			refreshing = false
			if r.err != nil {
				d.log.Warn("connection sync: conntrack dump", "err", r.err)
			} else {
				d.refreshWith(time.Now(), r.entries, false)
			}
		case <-drTick:
			d.wg.Add(1)
			go d.drDumped(!time.Now().Before(d.drFullNext))
		case r := <-d.drDump:
			if r.full {
				d.pollDRWith(time.Now(), r.flows, r.took, false)
			} else {
				d.pollDRNew(time.Now(), r.flows, r.took)
			}
			drTimer.Reset(d.drEvery)
		case reply := <-d.status:
			reply <- d.snapshot(time.Now())
		case f := <-d.ctl:
			f(time.Now())
		case e := <-d.tpls:
			now := time.Now()
			d.told[e.Key()] = now.Add(time.Duration(e.Timeout) * time.Second)
			if d.master.Load() {
				d.node.Add(now, e)
			}
		}
		d.perform()
	}
}

func (d *Daemon) synced(f *conntrack.Flow) bool {
	if f == nil || !f.Status.DstNAT() {
		return false
	}
	o := f.TupleOrig
	return syncedFlow(*d.services.Load(), o.Proto.Protocol, netip.AddrPortFrom(o.IP.DestinationAddress, o.Proto.DestinationPort), f.Mark)
}

func (d *Daemon) event(now time.Time, ev ctEvent) {
	e := ev.entry
	e.Orig.Src, e.Orig.Dst = unmap(e.Orig.Src), unmap(e.Orig.Dst)
	e.Reply.Src, e.Reply.Dst = unmap(e.Reply.Src), unmap(e.Reply.Dst)
	if e.Proto == unix.IPPROTO_TCP && e.State == 0 && ev.kind != evDestroy {
		// An update without the TCP state (a status or mark change):
		// nothing the peers need, and state 0 is no state.
		return
	}
	destroy := ev.kind == evDestroy
	k := e.Key()
	if x, ok := d.ext[k]; ok {
		// Conntrack reports our own installs as events, late: after
		// several installs of one flow its events still come, one by one,
		// and none of them must go back to the peer (it would set the
		// peer's live flow back to an old state).
		recent := now.Sub(x.at) < echoWindow
		switch {
		case x.deleted && recent:
			return
		case x.deleted:
			delete(d.ext, k)
		case destroy:
			// Our copy of a peer's flow ended (timed out as it does
			// there): nothing to tell.
			delete(d.ext, k)
			return
		case recent && x.states&(1<<e.State) != 0:
			return
		default:
			// It moves here (traffic after a failover): ours from now on.
			delete(d.ext, k)
		}
	}
	if destroy {
		e = Entry{Delete: true, Proto: e.Proto, Orig: e.Orig, Reply: Tuple{e.Orig.Dst, e.Orig.Src}} // 15 bytes
		delete(d.told, k)
	} else {
		d.told[k] = now.Add(time.Duration(e.Timeout) * time.Second)
	}
	if d.master.Load() {
		d.node.Add(now, e)
	}
}

// refresh dumps the table: flows kept alive here whose peers' copies would
// expire before the next refresh are sent again. With seed it only records
// the flows as known to the peers.
func (d *Daemon) refresh(now time.Time, seed bool) {
	entries, err := d.dump()
	if err != nil {
		d.log.Warn("connection sync: conntrack dump", "err", err)
		return
	}
	d.refreshWith(now, append(entries, d.templates(false)...), seed)
}

// refreshDumped is the refresh's dump and template listing, run apart
// from the daemon's loop: a dump of a large table (tens of thousands of
// TIME_WAIT flows at a few hundred connections a second) takes a long
// time, and the loop must go on sending and installing meanwhile.
func (d *Daemon) refreshDumped() {
	defer d.wg.Done()
	entries, err := d.dump()
	if err == nil {
		entries = append(entries, d.templates(false)...)
	}
	select {
	case d.dumped <- dumpResult{entries, err}:
	case <-d.quit:
	}
}

type dumpResult struct {
	entries []Entry
	err     error
}

// refreshWith is refresh on the entries of a dump.
func (d *Daemon) refreshWith(now time.Time, entries []Entry, seed bool) {
	seen := make(map[Key]bool, len(entries))
	for i := range entries {
		e := &entries[i]
		k := e.Key()
		seen[k] = true
		local := now.Add(time.Duration(e.Timeout) * time.Second)
		peer, ok := d.told[k]
		if x, isExt := d.ext[k]; !ok && isExt {
			// A peer's flow: it has it until then, unless traffic here
			// (after a failover) keeps it alive longer.
			peer = x.expires
		}
		if seed {
			d.told[k] = local
			continue
		}
		if d.master.Load() && peer.Sub(now) < 2*d.opts.Refresh && local.Sub(peer) > d.opts.Refresh/2 {
			d.told[k] = local
			d.node.Add(now, *e)
		}
	}
	for k := range d.told {
		if !seen[k] && k.Kind != KindDR { // DR flows are pollDR's
			delete(d.told, k)
		}
	}
	for k, x := range d.ext {
		if (x.deleted && now.Sub(x.at) >= echoWindow) || (!seen[k] && now.Sub(x.at) >= echoWindow) {
			delete(d.ext, k)
		}
	}
}

func (d *Daemon) dump() ([]Entry, error) {
	d.dumpMu.Lock()
	flows, err := d.dumper.Dump(nil)
	d.dumpMu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for i := range flows {
		if d.synced(&flows[i]) {
			out = append(out, flowEntry(&flows[i]))
		}
	}
	return out, nil
}

func (d *Daemon) perform() {
	for {
		acts := d.node.Ready()
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			switch a.Kind {
			case ActSend:
				d.send(a)
			case ActInstall:
				if !d.backup.Load() {
					continue // the backup role is off: the peers' flows are not taken
				}
				now := time.Now()
				var drs []Entry
				for i := range a.Entries {
					e := &a.Entries[i]
					if e.Kind == KindTemplate {
						d.installTemplate(e)
						continue
					}
					if e.Kind == KindDR {
						drs = append(drs, *e)
						continue
					}
					if err := d.sink.apply(e); err != nil {
						d.installErrors.Add(1)
						d.log.Debug("connection sync: install", "flow", e.Orig, "err", err)
						continue
					}
					d.installed.Add(1)
					d.installedExt(now, e)
				}
				d.installDR(now, drs)
				d.lag(time.Since(a.Sent))
			case ActDump:
				if !d.master.Load() {
					// Not sending our flows: an empty table, so that the
					// peer's resync completes instead of waiting.
					d.node.Resync(time.Now(), a.Peer, a.ReqID, nil)
					continue
				}
				entries, err := d.dump()
				if err != nil {
					d.log.Warn("connection sync: conntrack dump for a resync", "err", err)
					continue
				}
				entries = append(entries, d.drFlows(false)...)
				tpls := d.templates(true)
				d.log.Info("connection sync: sending the table to a peer", "peer", d.peerName(a.Peer), "flows", len(entries), "templates", len(tpls))
				entries = append(entries, tpls...)
				d.node.Resync(time.Now(), a.Peer, a.ReqID, entries)
			case ActResyncDone:
				d.resyncDone = true
				if a.TimedOut {
					d.log.Warn("connection sync: no complete table from any peer within the resync timeout; going on without",
						"timeout", d.node.Config().ResyncTimeout)
				} else {
					d.log.Info("connection sync: bulk resync complete", "peer", d.peerName(a.Peer))
				}
				if d.opts.OnResyncDone != nil {
					d.opts.OnResyncDone(d.peerName(a.Peer), a.TimedOut)
				}
			}
		}
	}
}

// drFlows lists the DR flows here (nil without DR): the whole map, or
// only the flows created in the last seconds.
func (d *Daemon) drFlows(onlyNew bool) []Entry {
	if d.opts.DR == nil {
		return nil
	}
	var out []Entry
	list := d.opts.DR.DRFlows
	if onlyNew {
		list = d.opts.DR.DRNewFlows
	}
	if err := list(func(e Entry) bool { out = append(out, e); return true }); err != nil {
		d.log.Warn("connection sync: listing the DR flows", "err", err)
	}
	return out
}

// pollDR reads the whole DR flow map and sends what the peers lack: new
// flows, flows whose real server changed, and flows kept alive here whose
// peers' copies would expire before the next refresh. With seed it only
// records the flows as known to the peers (at start: a peer that wants
// them asks with a resync). Flows installed from peers are not sent back
// until traffic here keeps them alive longer than their peers' copy (they
// moved here). Between two reads of the whole map, the new flows are read
// (pollDRNew) and sent at once.
func (d *Daemon) pollDR(now time.Time, seed bool) {
	start := time.Now()
	flows := d.drFlows(false)
	d.pollDRWith(now, flows, time.Since(start), seed)
}

// drDumped lists the DR flows apart from the loop (as refreshDumped): the
// whole map when full, else the new flows.
func (d *Daemon) drDumped(full bool) {
	defer d.wg.Done()
	start := time.Now()
	flows := d.drFlows(!full)
	select {
	case d.drDump <- drDumpResult{flows, time.Since(start), full}:
	case <-d.quit:
	}
}

type drDumpResult struct {
	flows []Entry
	took  time.Duration
	full  bool
}

// pollDRWith is pollDR on a read of the whole map that took took. The
// whole map is read again after twenty times that, within drFullMin and
// drFullMax: the new flows come from pollDRNew meanwhile.
func (d *Daemon) pollDRWith(now time.Time, flows []Entry, took time.Duration, seed bool) {
	d.drFullEvery = min(max(drDutyCost*took, drFullMin), drFullMax)
	d.drFullNext = now.Add(d.drFullEvery)
	d.drEvery = min(d.drEvery, d.drFullEvery)
	if d.drEvery <= 0 {
		d.drEvery = d.drFullEvery
	}
	// A flow kept alive here is sent again when its peers' copy would
	// expire before the next two refreshes, or two reads of the whole map.
	margin := 2 * max(d.opts.Refresh, d.drFullEvery)
	seen := make(map[Key]bool, len(flows))
	for i := range flows {
		e := &flows[i]
		k := e.Key()
		seen[k] = true
		local := now.Add(time.Duration(e.Timeout) * time.Second)
		if x, ok := d.drExt[k]; ok {
			if x.rs == e.Reply.Src && !local.After(x.expires.Add(2*time.Second)) {
				continue // a peer's flow, idle here
			}
			delete(d.drExt, k) // it moved here: ours from now on
			d.told[k] = x.expires
			d.drKnown[k] = x.rs
		}
		rs, known := d.drKnown[k]
		d.drKnown[k] = e.Reply.Src
		if seed {
			d.told[k] = local
			continue
		}
		peer := d.told[k]
		if !known || rs != e.Reply.Src || (peer.Sub(now) < margin && local.Sub(peer) > d.opts.Refresh/2) {
			d.told[k] = local
			if d.master.Load() {
				d.node.Add(now, *e)
			}
		}
	}
	for k := range d.drKnown {
		if !seen[k] {
			delete(d.drKnown, k)
			delete(d.told, k)
		}
	}
	for k, x := range d.drExt {
		if !seen[k] && now.After(x.expires) {
			delete(d.drExt, k)
		}
	}
}

// pollDRNew sends the new flows of a read that took took (DRNewFlows)
// that the peers lack: a flow not sent yet, or sent with another real
// server. The new flows are read again after twenty times that, within
// drPollMin and drPollMax.
func (d *Daemon) pollDRNew(now time.Time, flows []Entry, took time.Duration) {
	d.drEvery = min(max(drDutyCost*took, drPollMin), drPollMax)
	for i := range flows {
		e := &flows[i]
		k := e.Key()
		// Scheduled here (a peer's install is never new here): ours,
		// whatever a peer had for it.
		delete(d.drExt, k)
		if rs, known := d.drKnown[k]; known && rs == e.Reply.Src {
			continue
		}
		d.drKnown[k] = e.Reply.Src
		d.told[k] = now.Add(time.Duration(e.Timeout) * time.Second)
		if d.master.Load() {
			d.node.Add(now, *e)
		}
	}
}

// installDR installs peers' DR flows.
func (d *Daemon) installDR(now time.Time, es []Entry) {
	if len(es) == 0 {
		return
	}
	var add []Entry
	for _, e := range es {
		if e.Delete {
			continue // DR flows time out on each director
		}
		add = append(add, e)
	}
	if d.opts.DR == nil || len(add) == 0 {
		return
	}
	if err := d.opts.DR.InstallDRFlows(add); err != nil {
		d.installErrors.Add(uint64(len(add)))
		d.log.Debug("connection sync: DR flows", "n", len(add), "err", err)
		return
	}
	d.installed.Add(uint64(len(add)))
	d.installedDR.Add(uint64(len(add)))
	for _, e := range add {
		d.drExt[e.Key()] = drExtEntry{rs: e.Reply.Src, expires: now.Add(time.Duration(e.Timeout) * time.Second)}
	}
}

// templates lists the director's templates, the remote ones too when all.
func (d *Daemon) templates(all bool) []Entry {
	if d.opts.Templates == nil {
		return nil
	}
	var out []Entry
	d.opts.Templates.Templates(func(e Entry, remote bool) bool {
		if all || !remote {
			out = append(out, e)
		}
		return true
	})
	return out
}

// installTemplate installs a peer's persistence template; deletions are
// not sent (templates expire on both sides).
func (d *Daemon) installTemplate(e *Entry) {
	if d.opts.Templates == nil || e.Delete {
		return
	}
	if err := d.opts.Templates.InstallTemplate(*e); err != nil {
		d.installErrors.Add(1)
		d.log.Debug("connection sync: template", "client", e.Orig.Src.Addr(), "err", err)
		return
	}
	d.installed.Add(1)
	d.installedTemplates.Add(1)
}

// installedExt records an install from a peer, for the echo suppression.
func (d *Daemon) installedExt(now time.Time, e *Entry) {
	k := e.Key()
	x := d.ext[k]
	if now.Sub(x.at) >= echoWindow || x.deleted != e.Delete {
		x = extEntry{at: now}
	}
	x.deleted = e.Delete
	x.states |= 1 << (e.State & 31)
	x.expires = now.Add(time.Duration(e.Timeout) * time.Second)
	d.ext[k] = x
}

func (d *Daemon) peerName(id uint32) string {
	if a, ok := d.addrs[id]; ok {
		return a.Addr().String()
	}
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("node %08x", id)
}

func (d *Daemon) send(a Action) {
	if a.To != 0 {
		if addr, ok := d.addrs[a.To]; ok {
			d.conn.WriteToUDPAddrPort(a.Data, addr)
			return
		}
	}
	for _, dst := range d.dests {
		d.conn.WriteToUDPAddrPort(a.Data, dst)
	}
}

func (d *Daemon) lag(l time.Duration) {
	d.lastLag = l
	if len(d.lags) < cap(d.lags) {
		d.lags = append(d.lags, l)
	} else {
		d.lags[d.lagNext] = l
		d.lagNext = (d.lagNext + 1) % len(d.lags)
	}
}

// Status returns the daemon's state.
func (d *Daemon) Status() DaemonStatus {
	reply := make(chan DaemonStatus, 1)
	select {
	case d.status <- reply:
		return <-reply
	case <-d.quit:
		return DaemonStatus{State: "stopped"}
	}
}

func (d *Daemon) snapshot(now time.Time) DaemonStatus {
	s := DaemonStatus{Mode: "unicast", Interface: d.opts.Interface, Port: d.opts.Port, SyncID: d.opts.SyncID,
		State: "running", Node: d.node.Status(now), PeerAddrs: map[uint32]string{},
		Installed: d.installed.Load(), InstallErrors: d.installErrors.Load(), EventsLost: d.eventsLost.Load(),
		Templates: d.installedTemplates.Load(), DRFlows: d.installedDR.Load(), Flows: len(d.told), LagLast: d.lastLag, Master: d.master.Load(), Backup: d.backup.Load()}
	for _, x := range d.ext {
		if !x.deleted {
			s.PeerFlows++
		}
	}
	if len(d.opts.Peers) == 0 {
		s.Mode, s.Group = "multicast", d.opts.Group.String()
	}
	for _, p := range d.opts.Peers {
		s.Peers = append(s.Peers, p.String())
	}
	if s.Node.Resyncing {
		s.State = "resyncing"
	}
	for id, a := range d.addrs {
		s.PeerAddrs[id] = a.String()
	}
	if len(d.lags) > 0 {
		l := slices.Clone(d.lags)
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		s.LagMedian, s.LagP99 = l[len(l)/2], l[len(l)*99/100]
	}
	return s
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
