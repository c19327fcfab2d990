package nft

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/sched"
)

// TCP conntrack states (TCP_CONNTRACK_*).
const (
	tcpSynSent     = 1
	tcpEstablished = 3
	tcpLastAck     = 6
	tcpClose       = 8
)

func dialConntrack(netns int) (*conntrack.Conn, error) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	return c, nil
}

// statsState remembers the counters of each flow at the last dump, so
// that each dump adds only what moved since.
type statsState struct {
	seen map[uint32]flowCounters
}

type flowCounters struct {
	inPkts, inBytes, outPkts, outBytes uint64
}

func newStatsState() *statsState { return &statsState{seen: map[uint32]flowCounters{}} }

// dump reads the flows of the services in view v, by service.
func (d *Dataplane) dump() ([]conntrack.Flow, error) {
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	return d.ct.Dump(nil)
}

// statsDutyCycle bounds the share of time the statistics spend dumping
// conntrack: a dump of a large table takes long (about 1 s at 94k flows
// here), so the interval stretches to at least this many times the last
// dump's duration instead of dumping back to back.
const statsDutyCycle = 10

func (d *Dataplane) statsLoop() {
	defer d.wg.Done()
	t := time.NewTimer(d.opts.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		case <-d.reap:
			// A real server stopped taking new flows: reap its dead
			// flows now (collect), not at the next interval. (Stop
			// leaves no stale tick behind since Go 1.23: Reset below
			// rearms it.)
			t.Stop()
		}
		start := time.Now()
		if err := d.collect(); err != nil {
			d.log.Warn("conntrack statistics", "err", err)
		}
		d.dropIdleTable()
		t.Reset(statsInterval(d.opts.StatsInterval, time.Since(start)))
	}
}

// statsInterval is the wait before the next conntrack dump.
func statsInterval(base, lastDump time.Duration) time.Duration {
	return max(base, statsDutyCycle*lastDump)
}

// origVIP is the protocol and the original destination of a flow.
func origVIP(f *conntrack.Flow) vipKey {
	o := f.TupleOrig
	return vipKey{proto: o.Proto.Protocol, addr: netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort)}
}

// flowService finds the service and real server of a flow: a fwmark
// service's by the flow's conntrack mark, first, as IPVS looks marks up
// first (fwmark.go), or an address service's by its original VIP:port.
func flowService(v *view, f *conntrack.Flow) (*director.VirtualService, netip.AddrPort, bool) {
	if vs, rs, ok := flowMarkService(v, f); ok {
		return vs, rs, true
	}
	vs := v.byVIP[origVIP(f)]
	if vs == nil {
		return nil, netip.AddrPort{}, false
	}
	r := f.TupleReply
	return vs, netip.AddrPortFrom(r.IP.SourceAddress.Unmap(), r.Proto.SourcePort), true
}

// collect reads conntrack once: IPVS counts into each real server's Dest,
// bytes and packets into Stats.
func (d *Dataplane) collect() error {
	flows, err := d.dump()
	if err != nil {
		return err
	}
	v := d.view.Load()
	type counts struct{ active, inactive int }
	byRS := map[*director.RealServer]*counts{}
	reals := map[*director.VirtualService]map[netip.AddrPort]*director.RealServer{}
	for vs := range v.modes {
		if v.dr[vs] {
			continue // dr_stats.go
		}
		m := map[netip.AddrPort]*director.RealServer{}
		for _, rs := range vs.Retiring() {
			m[rs.Addr] = rs
		}
		sorry, _ := vs.SorryServer()
		for _, rs := range servedBy(vs.RealServers(), sorry) {
			m[rs.Addr] = rs
			byRS[rs] = &counts{}
		}
		reals[vs] = m
	}
	avail := available(v)
	var dead []conntrack.Flow
	seen := make(map[uint32]flowCounters, len(d.stats.seen))
	for i := range flows {
		f := &flows[i]
		vs, addr, ok := flowService(v, f)
		if !ok {
			continue
		}
		rs := reals[vs][addr]
		if !avail[vs][addr] && f.TupleOrig.Proto.Protocol == 6 && f.ProtoInfo.TCP != nil && f.ProtoInfo.TCP.State == tcpClose {
			dead = append(dead, *f)
		}
		if rs != nil {
			c := byRS[rs]
			if c == nil {
				c = &counts{}
				byRS[rs] = c
			}
			if f.TupleOrig.Proto.Protocol == 6 && f.ProtoInfo.TCP != nil && f.ProtoInfo.TCP.State == tcpEstablished {
				c.active++
			} else {
				c.inactive++
			}
		}
		now := flowCounters{f.CountersOrig.Packets, f.CountersOrig.Bytes, f.CountersReply.Packets, f.CountersReply.Bytes}
		prev, known := d.stats.seen[f.ID]
		seen[f.ID] = now
		if !known && v.modes[vs] != modeQueue {
			// Queue-scheduled flows were counted when scheduled.
			vs.Stats.Conns.Add(1)
			if rs != nil {
				rs.Stats.Conns.Add(1)
			}
		}
		add := func(s *director.Stats) {
			s.InPkts.Add(now.inPkts - min(prev.inPkts, now.inPkts))
			s.InBytes.Add(now.inBytes - min(prev.inBytes, now.inBytes))
			s.OutPkts.Add(now.outPkts - min(prev.outPkts, now.outPkts))
			s.OutBytes.Add(now.outBytes - min(prev.outBytes, now.outBytes))
		}
		add(&vs.Stats)
		if rs != nil {
			add(&rs.Stats)
		}
	}
	d.stats.seen = seen
	for rs, c := range byRS {
		setCounts(rs.Dest, c.active, c.inactive)
	}
	d.deleteDead(dead)
	return d.collectDR(v)
}

// A flow that a reset ended stays in conntrack in state CLOSE for 10 s,
// with its NAT binding, and when the reset came from the real server the
// TCP tracker lets a new SYN from the same client address and port take
// that entry over: the new connection goes, untranslated anew, to the same
// real server. Clients do reuse such a port at once (a refused connect
// leaves no TIME_WAIT, and Linux finds the freed port again when most of
// its range is in TIME_WAIT), so a dead real server's refused connects
// would keep coming back to it after health checking took it out. govs
// therefore deletes the CLOSE flows to destinations that take no new flows
// (a real server down, drained or removed); a CLOSE flow carries nothing,
// so deleting it ends nothing. IPVS does the same in effect: its connection
// reuse (conn_reuse_mode) schedules such a SYN afresh.

// available is, for each service in view v, the addresses that take new
// flows, as the last snapshot says: its available real servers, and its
// sorry server while it stands in.
func available(v *view) map[*director.VirtualService]map[netip.AddrPort]bool {
	out := make(map[*director.VirtualService]map[netip.AddrPort]bool, len(v.want))
	for vs, want := range v.want {
		m := map[netip.AddrPort]bool{}
		for _, r := range want.Reals {
			if r.Available {
				m[r.Addr] = true
			}
		}
		if want.SorryActive && want.Sorry != nil {
			m[want.Sorry.Addr] = true
		}
		out[vs] = m
	}
	return out
}

// availableCount is the number of destinations taking new flows in view v,
// as available counts them; it runs at every commit, so it builds nothing.
func availableCount(v *view) int {
	n := 0
	for _, want := range v.want {
		for _, r := range want.Reals {
			if r.Available {
				n++
			}
		}
		if want.SorryActive && want.Sorry != nil {
			n++
		}
	}
	return n
}

// deleteDead deletes flows from conntrack, those already gone included.
func (d *Dataplane) deleteDead(flows []conntrack.Flow) {
	if len(flows) == 0 {
		return
	}
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	n := 0
	for _, f := range flows {
		if d.ct.Delete(f) == nil {
			n++
		}
	}
	d.log.Debug("deleted dead flows to real servers out of scheduling", "flows", n)
}

// setCounts brings a Dest's IPVS counters to the kernel's numbers.
func setCounts(d *sched.Dest, active, inactive int) {
	for d.ActiveConns() > active {
		d.Unbind(true)
	}
	for d.ActiveConns() < active {
		if !d.Bind() {
			break
		}
		d.Activate()
	}
	for d.InactiveConns() > inactive {
		d.Unbind(false)
	}
	for d.InactiveConns() < inactive {
		if !d.Bind() {
			break
		}
	}
}

// liveFlows counts the TCP connections of the services served, and of
// those retired within their grace period, that have not finished closing
// (see countLive). retired is read with d.mu held, by the caller.
func (d *Dataplane) liveFlows(retired map[vipKey]bool) (int, error) {
	flows, err := d.dump()
	if err != nil {
		return 0, err
	}
	v := d.view.Load()
	return countLive(flows, v, retired) + d.drLive(v), nil
}

// deleteFlows ends the conntrack flows of vs to the real server at addr.
func (d *Dataplane) deleteFlows(vs *director.VirtualService, addr netip.AddrPort) (int, error) {
	flows, err := d.dump()
	if err != nil {
		return 0, err
	}
	v := d.view.Load()
	d.ctMu.Lock()
	defer d.ctMu.Unlock()
	n := 0
	for i := range flows {
		f := &flows[i]
		fvs, a, ok := flowService(v, f)
		if !ok || fvs != vs || a != addr {
			continue
		}
		if err := d.ct.Delete(*f); err == nil {
			n++
		}
	}
	return n, nil
}

const acctPath = "/proc/sys/net/netfilter/nf_conntrack_acct"

// enableAcct turns conntrack byte and packet accounting on in the
// daemon's own namespace.
func enableAcct() error { return os.WriteFile(acctPath, []byte("1"), 0o644) }

// servedBy lists the running real servers and, if there is one, the sorry
// server: the statistics account each flow to one of them.
func servedBy(reals []*director.RealServer, sorry *director.RealServer) []*director.RealServer {
	if sorry == nil {
		return reals
	}
	return append(reals[:len(reals):len(reals)], sorry)
}
