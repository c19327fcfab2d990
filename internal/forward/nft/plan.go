package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/sched"
)

// mode is how a service's real server is chosen.
type mode int

const (
	modeInc    mode = iota // numgen inc: rr, wrr
	modeRandom             // numgen random: random
	modeHash               // jhash of the client address: sh
	modeMaglev             // jhash of the client (and port) over a Maglev table: mh
	modeQueue              // govs picks through NFQUEUE
)

func (m mode) String() string {
	return [...]string{"numgen-inc", "numgen-random", "jhash", "maglev", "nfqueue"}[m]
}

// maxSlots bounds a kernel map (wrr's expanded period); a longer one goes
// through the queue instead.
const maxSlots = 4096

// shBuckets is IPVS's sh table size.
const shBuckets = 256

// MaglevTableSize is the size of the Maglev table mh services get in the
// kernel: IPVS's default (CONFIG_IP_VS_MH_TAB_INDEX 12, the prime 4093),
// where govs's own mh scheduler uses 65537. Every change rebuilds the
// service's map in one transaction, so the size is the cost of each update
// (4093 elements, about 160 KB of netlink, 10 to 15 ms) and of the
// memory the kernel holds; 4093 keeps that small while staying well above
// the number of real servers a service has (Maglev wants about 100 times as
// many positions as servers for an even spread: 40 servers here).
const MaglevTableSize = 4093

// plan is one virtual service as programmed in the kernel.
type plan struct {
	svc     string // the service's key, "tcp/VIP:PORT" or "fwm/N"
	chain   string // "s0", "s1", ...
	v6      bool
	proto   uint8
	vip     netip.AddrPort
	mode    mode
	slots   []netip.AddrPort // slot -> real server; nil entries for none (sh, mh)
	port    bool             // mh-port: the client's port is hashed too
	sorry   bool             // quorum lost: every new flow to the sorry server
	marks   map[uint32]netip.AddrPort
	fullnat bool
	dr      bool         // direct routing (dr.go)
	retired bool         // a dr service a reload removed, in its grace period: pinned flows only
	snat    []netip.Addr // fullnat source addresses; none: masquerade
	snatR   *desired.AddrRange
	fwmark  uint32 // a fwmark service's mark (fwmark.go); vip is then invalid
	noPort  bool   // fwmark: the real servers keep the packet's port
}

// describe is the plan as text: two plans program the same rules exactly
// when their descriptions are equal.
func (p *plan) describe(b *strings.Builder) {
	fmt.Fprintf(b, "%s %d %s %v port=%v sorry=%v full=%v dr=%v snat=%v", p.chain, p.proto, p.vip, p.mode, p.port, p.sorry,
		p.fullnat, p.dr, p.snat)
	if p.retired {
		b.WriteString(" retired")
	}
	if p.fwmark != 0 {
		fmt.Fprintf(b, " fwmark=%d v6=%v noport=%v", p.fwmark, p.v6, p.noPort)
	}
	if p.snatR != nil {
		fmt.Fprintf(b, " %v-%v", p.snatR.First, p.snatR.Last)
	}
	fmt.Fprintf(b, " slots=%d %s marks=%v\n", len(p.slots), slotsText(p.slots), p.marks)
}

// slotsText is a compact exact description of slots (a Maglev map has
// thousands): the distinct servers, then each slot's index among them.
func slotsText(slots []netip.AddrPort) string {
	idx := map[netip.AddrPort]uint16{{}: 0}
	var servers []netip.AddrPort
	buf := make([]byte, 0, 2*len(slots))
	for _, a := range slots {
		i, ok := idx[a]
		if !ok {
			servers = append(servers, a)
			i = uint16(len(servers))
			idx[a] = i
		}
		buf = binary.LittleEndian.AppendUint16(buf, i)
	}
	return fmt.Sprintf("%v %x", servers, buf)
}

// planService is the plan of service s, the i-th of the snapshot: a pure
// function of the snapshot (and of mark, the packet mark of each server of
// a queue-scheduled service), which the golden tests pin.
func planService(i int, s *desired.Service, mark func(netip.AddrPort) uint32) (*plan, error) {
	p := &plan{svc: s.Key, chain: fmt.Sprintf("s%d", i), v6: s.VIP.Addr().Is6(), vip: s.VIP,
		fullnat: s.Forwarding == desired.FullNAT, dr: s.Forwarding == desired.DR}
	switch s.Protocol {
	case desired.TCP, desired.UDP:
		p.proto = s.Protocol.Number()
	default:
		return nil, fmt.Errorf("%s: protocol %s not supported by the kernel dataplane", s.Key, s.Protocol)
	}
	if s.FWMark != 0 {
		// A fwmark service takes marked TCP and UDP alike: its tcp plan
		// here, its udp twin in planAll (fwmark.go).
		p.fwmark, p.v6, p.proto, p.vip = s.FWMark, s.IPv6, 6, netip.AddrPort{}
	}
	m, kernel := kernelSchedulable(s)
	p.mode = m
	switch {
	case s.SorryActive && s.Sorry != nil:
		// The quorum is lost: every new flow goes to the sorry server,
		// as the director's scheduler (which holds it alone) would
		// send them; the real servers' established flows finish.
		p.mode, p.slots, p.sorry = modeInc, []netip.AddrPort{s.Sorry.Addr}, true
	case m == modeMaglev:
		// The servers the director's mh scheduler holds: those in
		// service, including the ones inhibited at weight 0.
		var set []desired.RealServer
		for _, r := range s.Reals {
			if r.InSet {
				set = append(set, r)
			}
		}
		p.slots, p.port = mhSlots(set, s.Scheduler.MHFallback), s.Scheduler.MHPort
	case kernel:
		slots, ok := slotsFor(m, s.Scheduler.Name, s.Reals)
		if ok {
			p.slots = slots
		} else {
			p.mode = modeQueue // wrr period too long for a map
		}
	}
	if p.mode == modeQueue {
		p.slots, _ = slotsFor(modeInc, "rr", s.Reals) // the fail-open fallback
		p.marks = map[uint32]netip.AddrPort{}
		// The sorry server has a mark too: between the quorum's loss
		// and the rules that follow it, govs's scheduler already
		// answers with it.
		for _, r := range s.Served() {
			p.marks[mark(r.Addr)] = r.Addr
		}
	}
	if p.fullnat {
		if len(s.SNAT) == 1 {
			r := s.SNAT[0]
			p.snatR = &r
		} else {
			p.snat = expandRanges(s.SNAT, 256)
		}
	}
	p.noPort = noPort(p)
	return p, nil
}

// planAll is the plans of a snapshot's services, in the order the base
// chains take them: fwmark services (a tcp plan and its udp twin each)
// first, as IPVS looks a packet's mark up before its address
// (ip_vs_service_find), then the address services, each group in
// configuration order. mark gives the packet mark of a real server of a
// queue-scheduled service (by service key and address). Pure: the rule
// goldens run it.
func planAll(services []*desired.Service, mark func(key string, addr netip.AddrPort) uint32) ([]*plan, error) {
	plans := make([]*plan, 0, len(services))
	for i, s := range services {
		key := s.Key
		p, err := planService(i, s, func(a netip.AddrPort) uint32 { return mark(key, a) })
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
		if p.fwmark != 0 {
			plans = append(plans, udpTwin(p))
		}
	}
	slices.SortStableFunc(plans, func(a, b *plan) int { return cmpBool(b.fwmark != 0, a.fwmark != 0) })
	return plans, nil
}

// kernelSchedulable reports whether the kernel can run s's scheduler as
// configured, and how.
func kernelSchedulable(s *desired.Service) (mode, bool) {
	name := s.Scheduler.Name
	if s.Persistence != nil {
		return modeQueue, false
	}
	// mh's flags (mh-port, mh-fallback) are run by the kernel too (mhSlots);
	// other schedulers' flags need govs.
	if len(s.Scheduler.Flags) > 0 && name != "mh" {
		return modeQueue, false
	}
	for _, r := range s.Reals {
		if r.Limited {
			return modeQueue, false // limits need live counts
		}
	}
	switch name {
	case "rr", "wrr":
		return modeInc, true
	case "random":
		return modeRandom, true
	case "sh":
		return modeHash, true
	case "mh":
		return modeMaglev, true
	}
	return modeQueue, false
}

// slotsFor fills the kernel map of a kernel-scheduled service other than
// mh (see mhSlots); ok is false when it would be too large.
func slotsFor(m mode, sched string, reals []desired.RealServer) ([]netip.AddrPort, bool) {
	var avail []desired.RealServer
	for _, r := range reals {
		if r.Available {
			avail = append(avail, r)
		}
	}
	switch {
	case m == modeHash:
		return shTable(reals), true
	case m == modeInc && sched == "wrr":
		return wrrPeriod(avail)
	}
	out := make([]netip.AddrPort, len(avail))
	for i, rs := range avail {
		out[i] = rs.Addr
	}
	return out, true
}

// shTable fills IPVS's 256 sh buckets in list order, each server taking as
// many consecutive buckets as its weight (at least one), the list repeated
// until the table is full (ip_vs_sh_reassign). Buckets of unavailable
// servers stay empty: their clients' new flows are dropped, as IPVS's sh
// does without sh-fallback.
func shTable(reals []desired.RealServer) []netip.AddrPort {
	out := make([]netip.AddrPort, shBuckets)
	if len(reals) == 0 {
		return out
	}
	i, count := 0, 0
	for b := range out {
		r := reals[i]
		if r.Available {
			out[b] = r.Addr
		}
		count++
		if count >= max(r.Weight, 1) {
			i, count = (i+1)%len(reals), 0
		}
	}
	return out
}

// mhSlots is the kernel's Maglev map of an mh service: the table of
// sched.MaglevTable, the mh scheduler's own algorithm, over the servers the
// scheduler holds (set: the real servers in service; MaglevTable goes by
// address, so the order of set does not matter and every director with the
// same real servers programs the same map), each taking turns by its last
// weight, with MaglevTableSize positions; the lookup's jhash has a fixed
// seed (hashSeed). The kernel looks a client
// up by jhash of its address (and port with mh-port) instead of IPVS's
// hsiphash, so which client lands on which server is not IPVS's, but the
// Maglev properties hold: a client keeps its server while the set stays, and
// a change of the set moves the changed servers' clients and few others.
//
// An unavailable server (quiesced to weight 0, down with
// inhibit_on_failure) keeps its positions, as in IPVS, and the kernel cannot
// skip it at lookup time, so its positions are decided here at each change:
//   - without mh-fallback they stay empty: the lookup misses and the new
//     flow is dropped, as IPVS's mh fails the pick;
//   - with mh-fallback each of them takes the server at the same position
//     of a second table built from the available servers only. Clients of
//     available servers never move (as with IPVS's fallback), the orphaned
//     clients spread over the available servers by weight, each always to
//     the same one, and they return when their server does.
//
// This keeps mh-fallback in the kernel instead of sending every new flow of
// the service through NFQUEUE for the sake of the rare unavailable server;
// what differs from IPVS is only which available server an orphaned client
// gets (IPVS probes a per-client sequence, here it is per position).
func mhSlots(set []desired.RealServer, fallback bool) []netip.AddrPort {
	servers := make([]sched.MaglevServer, len(set))
	avail := make([]bool, len(set))
	var up []sched.MaglevServer
	for i, r := range set {
		servers[i] = sched.MaglevServer{Addr: r.Addr, Weight: r.LastWeight}
		if avail[i] = r.Available; avail[i] {
			up = append(up, sched.MaglevServer{Addr: r.Addr, Weight: r.Weight})
		}
	}
	out := make([]netip.AddrPort, MaglevTableSize)
	var alt []int
	for pos, i := range sched.MaglevTable(servers, MaglevTableSize) {
		switch {
		case i < 0:
		case avail[i]:
			out[pos] = servers[i].Addr
		case fallback && len(up) > 0:
			if alt == nil {
				alt = sched.MaglevTable(up, MaglevTableSize)
			}
			out[pos] = up[alt[pos]].Addr
		}
	}
	return out
}

// wrrPeriod is one period of IPVS's interleaved weighted round robin
// (ip_vs_wrr_schedule): sum(weight)/gcd picks.
func wrrPeriod(avail []desired.RealServer) ([]netip.AddrPort, bool) {
	if len(avail) == 0 {
		return nil, true
	}
	g, mw, sum := 0, 0, 0
	for _, r := range avail {
		w := r.Weight
		g, mw, sum = gcd(g, w), max(mw, w), sum+w
	}
	n := sum / g
	if n > maxSlots {
		return nil, false
	}
	out := make([]netip.AddrPort, 0, n)
	i, cw := -1, 0
	for len(out) < n {
		i = (i + 1) % len(avail)
		if i == 0 {
			if cw -= g; cw <= 0 {
				cw = mw
			}
		}
		if avail[i].Weight >= cw {
			out = append(out, avail[i].Addr)
		}
	}
	return out, true
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// expandRanges lists the addresses of ranges, at most limit of them.
func expandRanges(rs []desired.AddrRange, limit int) []netip.Addr {
	var out []netip.Addr
	for _, r := range rs {
		for a := r.First; a.IsValid() && !r.Last.Less(a) && len(out) < limit; a = a.Next() {
			out = append(out, a)
		}
	}
	return out
}
