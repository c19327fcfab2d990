package nft

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// DR flows are not in conntrack: the director's knowledge of them is the
// flow map of each family (dr.go), whose elements carry the flow, its real
// server, the time it has left and its packet and byte counters (inbound
// only: the replies never cross the director).

// drFlow is one element of a flow map.
type drFlow struct {
	proto   uint8
	client  netip.AddrPort
	vip     netip.AddrPort
	rs      netip.Addr
	expires time.Duration
	pkts    uint64
	bytes   uint64
	v6      bool
}

// drSnapshot is the last dump of a family's flow map, shared by its
// readers (statistics, sync, the connection list, a stop): a reader that
// can do with flows that old takes it instead of dumping again.
type drSnapshot struct {
	flows []drFlow
	at    time.Time     // zero: none (or the last dump failed)
	took  time.Duration // how long the last dump took
	gen   uint64        // counts the dumps
	fresh []drFlow      // the last dump of the fresh map (DRNewFlows)
}

// A dump of the whole flow map costs the kernel a walk of the map per
// netlink message of 32 KiB, each from its start (nft_rhash_walk skips
// what earlier messages had), so its cost grows with the square of the
// map's size: 12 ms at 10,000 flows, 2-3 s at 100,000 here. The readers
// that can wait (statistics, a stop) take a dump at most drMaxAge old:
// the statistics interval, or twenty times the last dump's duration when
// that is longer (at most 5% of the time dumping), never older than
// drStaleMax.
const (
	drDutyCycle = 20
	drStaleMax  = 30 * time.Second
)

// drMaxAge is how old a dump of the family's flow map may be for the
// statistics and a stop. Called with d.drDumpMu held.
func (d *Dataplane) drMaxAge(v6 bool) time.Duration {
	return min(max(d.opts.StatsInterval, drDutyCycle*d.drSnap[famIndex(v6)].took), drStaleMax)
}

// drConn is the nftables connection of the DR flow deletions and installs,
// apart from the one that programs the rules (a Conn batches messages and
// must not be shared between goroutines).
func (d *Dataplane) drConn() (*nftables.Conn, error) {
	if d.drc != nil {
		return d.drc, nil
	}
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(d.opts.NetNS), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		return nil, err
	}
	d.drc = c
	return c, nil
}

// dumper is the flow maps' reader, opened on first use. Called with
// d.drDumpMu held.
func (d *Dataplane) dumper() (*drDumper, error) {
	if d.drd == nil {
		dd, err := newDRDumper(d.opts.NetNS)
		if err != nil {
			return nil, err
		}
		d.drd = dd
	}
	return d.drd, nil
}

// drFlows returns the flow map of the family as a dump at most maxAge old
// shows it: the last one, or a new one. Called with d.drDumpMu held; the slice
// is valid while it is held (the next dump reuses it).
func (d *Dataplane) drFlows(v6 bool, maxAge time.Duration) ([]drFlow, error) {
	snap := &d.drSnap[famIndex(v6)]
	if !snap.at.IsZero() && time.Since(snap.at) <= maxAge {
		return snap.flows, nil
	}
	dd, err := d.dumper()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	flows, err := dd.dump(d.opts.Table, drFlowsMap, v6, snap.flows)
	snap.flows = flows[:0]
	if err != nil {
		snap.at = time.Time{}
		return nil, fmt.Errorf("listing the dr flow map (%s): %w", fam2name(v6), err)
	}
	snap.flows, snap.at, snap.took = flows, start, time.Since(start)
	snap.gen++
	d.drDumps.Add(1)
	return flows, nil
}

func fam2name(v6 bool) string {
	if v6 {
		return "ip6"
	}
	return "ip"
}

// drFamilies reports which families have DR services in view v.
func drFamilies(v *view) (fams [2]bool) {
	for vs, dr := range v.dr {
		if dr {
			fams[famIndex(vsIPv6(vs))] = true
		}
	}
	return fams
}

// collectDR is collect for DR services: IPVS counts from the flow map (TCP
// flows with more than the FIN timeout to live are active, the rest and UDP
// inactive), new connections, inbound packets and bytes.
func (d *Dataplane) collectDR(v *view) error {
	fams := drFamilies(v)
	if !fams[0] && !fams[1] {
		d.drSeen = nil
		return nil
	}
	d.drDumpMu.Lock()
	defer d.drDumpMu.Unlock()
	// Only a dump newer than the last one read here changes anything: the
	// statistics read a dump at most drMaxAge old (one the sync took
	// serves), so with a large map most intervals read nothing.
	changed := false
	for f, ok := range fams {
		if ok {
			if _, err := d.drFlows(f == 1, d.drMaxAge(f == 1)); err != nil {
				return err
			}
			changed = changed || d.drSnap[f].gen != d.drStatsGen[f]
		}
	}
	if !changed && d.drSeen != nil {
		return nil
	}
	type counts struct{ active, inactive int }
	byRS := map[*director.RealServer]*counts{}
	reals := map[*director.VirtualService]map[netip.Addr]*director.RealServer{}
	for vs, dr := range v.dr {
		if !dr {
			continue
		}
		m := map[netip.Addr]*director.RealServer{}
		for _, rs := range vs.Retiring() {
			m[rs.Addr.Addr()] = rs
		}
		sorry, _ := vs.SorryServer()
		for _, rs := range servedBy(vs.RealServers(), sorry) {
			m[rs.Addr.Addr()] = rs
			byRS[rs] = &counts{}
		}
		reals[vs] = m
	}
	// The counters seen at this read go into the spare map, which then
	// becomes the current one: two maps reused, not one allocated per
	// read (each holds every flow).
	seen := d.drSeenNext
	if seen == nil {
		seen = map[drFlowKey]flowCounters{}
	}
	clear(seen)
	var firstErr error
	for f, ok := range fams {
		if !ok {
			continue
		}
		// (the dump just taken, or one young enough)
		flows, err := d.drFlows(f == 1, d.drMaxAge(f == 1))
		if err != nil {
			firstErr = err
			continue
		}
		d.drStatsGen[f] = d.drSnap[f].gen
		for i := range flows {
			fl := &flows[i]
			vs := drFlowService(v, *fl)
			if vs == nil || !v.dr[vs] {
				continue
			}
			rs := reals[vs][fl.rs]
			if rs != nil {
				c := byRS[rs]
				if c == nil {
					c = &counts{}
					byRS[rs] = c
				}
				if fl.proto == 6 && fl.expires > drFinTimeout {
					c.active++
				} else {
					c.inactive++
				}
			}
			now := flowCounters{inPkts: fl.pkts, inBytes: fl.bytes}
			k := fl.key()
			prev, known := d.drSeen[k]
			seen[k] = now
			if !known && v.modes[vs] != modeQueue {
				vs.Stats.Conns.Add(1)
				if rs != nil {
					rs.Stats.Conns.Add(1)
				}
			}
			add := func(s *director.Stats) {
				s.InPkts.Add(now.inPkts - min(prev.inPkts, now.inPkts))
				s.InBytes.Add(now.inBytes - min(prev.inBytes, now.inBytes))
			}
			add(&vs.Stats)
			if rs != nil {
				add(&rs.Stats)
			}
		}
	}
	if firstErr != nil {
		return firstErr
	}
	d.drSeen, d.drSeenNext = seen, d.drSeen
	for rs, c := range byRS {
		setCounts(rs.Dest, c.active, c.inactive)
	}
	return nil
}

// deleteDRFlows removes the flows of vs to the real server at addr from the
// flow map (expire_nodest_conn): their next packets are scheduled afresh.
func (d *Dataplane) deleteDRFlows(vs *director.VirtualService, addr netip.AddrPort) (int, error) {
	d.drDumpMu.Lock()
	v6 := vsIPv6(vs)
	flows, err := d.drFlows(v6, 0)
	if err != nil {
		d.drDumpMu.Unlock()
		return 0, err
	}
	v := d.view.Load()
	var del []nftables.SetElement
	for i := range flows {
		fl := &flows[i]
		mine := fl.vip == vs.Address && fl.proto == desired.Protocol(vs.Protocol).Number()
		if vs.FWMark != 0 {
			mine = v != nil && drFlowService(v, *fl) == vs
		}
		if mine && fl.rs == addr.Addr() {
			e, _, err := drElement(DRFlow{Proto: fl.proto, Client: fl.client, VIP: fl.vip, RealServer: fl.rs})
			if err != nil {
				continue
			}
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	d.drDumpMu.Unlock()
	if len(del) == 0 {
		return 0, nil
	}
	d.drMu.Lock()
	defer d.drMu.Unlock()
	c, err := d.drConn()
	if err != nil {
		return 0, err
	}
	s := drFlowSet(d.opts.Table, v6)
	for i := 0; i < len(del); i += maxElemsPerMsg {
		if err := c.SetDeleteElements(s, del[i:min(i+maxElemsPerMsg, len(del))]); err != nil {
			return 0, err
		}
	}
	if err := c.Flush(); err != nil {
		return 0, err
	}
	return len(del), nil
}

// drConnections lists the DR flows of view v as connections: inbound
// counters only, state ESTABLISHED (FIN_WAIT once the client sent a FIN or
// RST and the entry has the FIN timeout or less to live) or UDP.
func (d *Dataplane) drConnections(v *view, yield func(director.Connection) bool) error {
	fams := drFamilies(v)
	d.drDumpMu.Lock()
	var all []drFlow // a copy: the listing is written out after the lock
	for f, ok := range fams {
		if !ok {
			continue
		}
		flows, err := d.drFlows(f == 1, 0)
		if err != nil {
			d.drDumpMu.Unlock()
			return err
		}
		all = append(all, flows...)
	}
	d.drDumpMu.Unlock()
	for _, fl := range all {
		vs := drFlowService(v, fl)
		if vs == nil || !v.dr[vs] {
			continue
		}
		// DR keeps the destination port: the VIP's, or a fwmark flow's own.
		c := director.Connection{Service: vs.Key, Protocol: vs.Protocol, State: "UDP", Expires: fl.expires,
			Client: fl.client, Virtual: fl.vip, RealServer: netip.AddrPortFrom(fl.rs, fl.vip.Port()),
			InBytes: fl.bytes, InPackets: fl.pkts}
		if fl.proto == 6 {
			c.State = "ESTABLISHED"
			if fl.expires <= drFinTimeout {
				c.State = "FIN_WAIT"
			}
		}
		if !yield(c) {
			return nil
		}
	}
	return nil
}

// drLive counts the TCP flows of the DR services of view v that are not
// closing (the client sent no FIN or RST): a stop waits for them, as it
// waits for nat's established connections. An unreadable map counts
// nothing: the stop then does not wait.
func (d *Dataplane) drLive(v *view) int {
	if v == nil {
		return 0
	}
	fams := drFamilies(v)
	d.drDumpMu.Lock()
	defer d.drDumpMu.Unlock()
	n := 0
	for f, ok := range fams {
		if !ok {
			continue
		}
		// A stop polls this every 100 ms: fresh on a small map, at most
		// 5% of the time dumping on a large one.
		flows, err := d.drFlows(f == 1, min(drDutyCycle*d.drSnap[f].took, drStaleMax))
		if err != nil {
			continue
		}
		for i := range flows {
			if fl := &flows[i]; fl.proto == 6 && fl.expires > drFinTimeout && v.dr[drFlowService(v, *fl)] {
				n++
			}
		}
	}
	return n
}

// retiredDRPlans keeps forwarding the pinned flows of the dr services a
// reload removed, while their grace period runs (their VirtualService
// context), as conntrack keeps translating a removed nat service's flows:
// each keeps a chain with its pinned-flow rules and a drop for new flows,
// unless a service now in force has its VIP.
func retiredDRPlans(current []*plan, retired map[*director.VirtualService]retiredService, b *strings.Builder) []*plan {
	taken := map[vipKey]bool{}
	for _, p := range current {
		taken[p.key()] = true
	}
	var out []*plan
	for vs, r := range retired {
		k := r.vip
		if !r.dr || vs.Context().Err() != nil || taken[k] {
			continue
		}
		if k.mark != 0 { // a fwmark service: its tcp and udp plans
			p := &plan{svc: vs.Key, v6: k.v6, proto: 6, fwmark: k.mark, dr: true, retired: true}
			out = append(out, p, udpTwin(p))
			continue
		}
		out = append(out, &plan{svc: vs.Key, v6: k.addr.Addr().Is6(), proto: k.proto, vip: k.addr, dr: true, retired: true})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].svc < out[j].svc })
	for i, p := range out {
		p.chain = fmt.Sprintf("s%d", len(current)+i)
		if p.fwmark != 0 && p.proto == 17 {
			p.chain += "u"
		}
		p.describe(b)
	}
	return out
}
