package nft

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// mode is how a service's real server is chosen.
type mode int

const (
	modeInc    mode = iota // numgen inc: rr, wrr
	modeRandom             // numgen random: random
	modeHash               // jhash of the client address: sh
	modeQueue              // govs picks through NFQUEUE
)

func (m mode) String() string {
	return [...]string{"numgen-inc", "numgen-random", "jhash", "nfqueue"}[m]
}

// maxSlots bounds a kernel map (wrr's expanded period); a longer one goes
// through the queue instead.
const maxSlots = 4096

// shBuckets is IPVS's sh table size.
const shBuckets = 256

// plan is one virtual service as programmed in the kernel.
type plan struct {
	vs      *director.VirtualService
	chain   string // "s0", "s1", ...
	v6      bool
	proto   uint8
	vip     netip.AddrPort
	mode    mode
	slots   []netip.AddrPort // slot -> real server; nil entries for none (sh)
	marks   map[uint32]netip.AddrPort
	fullnat bool
	snat    []netip.Addr // fullnat source addresses; none: masquerade
	snatR   *config.AddrRange
}

// describe is the plan as text: two plans program the same rules exactly
// when their descriptions are equal.
func (p *plan) describe(b *strings.Builder) {
	fmt.Fprintf(b, "%s %d %s %v full=%v snat=%v", p.chain, p.proto, p.vip, p.mode, p.fullnat, p.snat)
	if p.snatR != nil {
		fmt.Fprintf(b, " %v-%v", p.snatR.First, p.snatR.Last)
	}
	fmt.Fprintf(b, " slots=%v marks=%v\n", p.slots, p.marks)
}

// kernelSchedulable reports whether the kernel can run vs's scheduler as
// configured, and how.
func kernelSchedulable(vs *director.VirtualService, vc *config.VirtualServer) (mode, bool) {
	if vc != nil && (vc.PersistenceTimeout != 0 || len(vc.SchedulerFlags) > 0) {
		return modeQueue, false
	}
	for _, rs := range vs.RealServers() {
		if c := rs.Config(); c != nil && (c.MaxConnections > 0 || c.UpperThreshold > 0) {
			return modeQueue, false // limits need live counts
		}
	}
	switch vs.Settings().SchedulerName {
	case "rr", "wrr":
		return modeInc, true
	case "random":
		return modeRandom, true
	case "sh":
		return modeHash, true
	}
	return modeQueue, false
}

// slotsFor fills the kernel map of a kernel-scheduled service; ok is false
// when it would be too large.
func slotsFor(m mode, sched string, reals []*director.RealServer) ([]netip.AddrPort, bool) {
	var avail []*director.RealServer
	for _, rs := range reals {
		if rs.Dest.Available() {
			avail = append(avail, rs)
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
func shTable(reals []*director.RealServer) []netip.AddrPort {
	out := make([]netip.AddrPort, shBuckets)
	if len(reals) == 0 {
		return out
	}
	i, count := 0, 0
	for b := range out {
		rs := reals[i]
		if rs.Dest.Available() {
			out[b] = rs.Addr
		}
		count++
		if count >= max(rs.Dest.Weight(), 1) {
			i, count = (i+1)%len(reals), 0
		}
	}
	return out
}

// wrrPeriod is one period of IPVS's interleaved weighted round robin
// (ip_vs_wrr_schedule): sum(weight)/gcd picks.
func wrrPeriod(avail []*director.RealServer) ([]netip.AddrPort, bool) {
	if len(avail) == 0 {
		return nil, true
	}
	g, mw, sum := 0, 0, 0
	for _, rs := range avail {
		w := rs.Dest.Weight()
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
		if avail[i].Dest.Weight() >= cw {
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
func expandRanges(rs []config.AddrRange, limit int) []netip.Addr {
	var out []netip.Addr
	for _, r := range rs {
		for a := r.First; a.IsValid() && !r.Last.Less(a) && len(out) < limit; a = a.Next() {
			out = append(out, a)
		}
	}
	return out
}
