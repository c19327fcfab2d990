// Package bgp announces the VIPs of the virtual services to routers over
// BGP with an embedded speaker (github.com/osrg/gobgp/v4), so N directors
// can share a VIP by ECMP or run active-standby by path attributes.
//
// The decision of what to announce is pure (Core: inputs and the time in,
// the announced set out); Speaker is the thin adapter over gobgp; Daemon
// ties them to the director. docs/bgp.md describes the behaviour.
package bgp

import (
	"math"
	"net/netip"
	"slices"
	"time"
)

// Attrs are the path attributes a VIP is announced with.
type Attrs struct {
	Communities []uint32
	MED         *uint32
	Prepend     int // extra copies of the local ASN in the AS path
}

// Equal reports whether a and b announce the same path.
func (a Attrs) Equal(b Attrs) bool {
	return slices.Equal(a.Communities, b.Communities) && a.Prepend == b.Prepend &&
		(a.MED == nil) == (b.MED == nil) && (a.MED == nil || *a.MED == *b.MED)
}

// VIP is one announced address and the health of what it serves.
type VIP struct {
	Prefix netip.Prefix // /32 or /128
	Attrs  Attrs
	// Up: every announced service on the VIP has its quorum.
	Up bool
	// Fault: the director cannot serve the VIP (a service it should run is
	// unknown to it); the VIP is withdrawn as at quorum loss.
	Fault bool
}

// Input is the state the decision is made from.
type Input struct {
	// Running is false before the director has applied its configuration
	// and once it is stopping (SIGTERM): nothing is announced.
	Running bool
	// Synced is false while connection state is being caught up from the
	// other directors (the sync issue); until that exists it is true.
	Synced bool
	VIPs   []VIP
}

// Damping is the flap-damping rule (docs/bgp.md):
//   - a withdraw is never delayed;
//   - each withdraw caused by health (not by stopping) adds 1 to the VIP's
//     penalty, which halves every HalfLife and is capped at 2×Suppress (so
//     a VIP is never held back longer than HalfLife×log2(2×Suppress/Reuse));
//   - a VIP whose penalty reached Suppress is suppressed: not announced,
//     even when healthy, until its penalty decays below Reuse;
//   - otherwise a VIP is announced once it has been healthy for
//     AnnounceDelay without a break, at start as after a withdraw: a
//     director that has just started gets a moment for its first health
//     checks before the router sends it flows.
type Damping struct {
	AnnounceDelay time.Duration
	HalfLife      time.Duration
	Suppress      float64
	Reuse         float64
}

// vipState is what Core remembers of one VIP.
type vipState struct {
	announced  bool
	attrs      Attrs
	penalty    float64
	at         time.Time // when penalty was last brought up to date
	suppressed bool
	healthyAt  time.Time // start of the current healthy stretch; zero when not healthy
	flaps      uint64
}

// Core decides which VIPs are announced. It is not safe for concurrent use.
type Core struct {
	damp Damping
	vips map[netip.Prefix]*vipState
}

// NewCore returns a Core with the damping rule d.
func NewCore(d Damping) *Core {
	return &Core{damp: d, vips: map[netip.Prefix]*vipState{}}
}

// Route is one announced VIP.
type Route struct {
	Prefix netip.Prefix
	Attrs  Attrs
}

// Decision is what Step wants changed, and when it wants to be asked again
// (zero: only when the input changes).
type Decision struct {
	Announce []Route // new or changed routes
	Withdraw []netip.Prefix
	Next     time.Time
}

// VIPStatus is what the API shows of a VIP.
type VIPStatus struct {
	Prefix     netip.Prefix
	Announced  bool
	Suppressed bool
	Penalty    float64
	Flaps      uint64
}

// decay brings st's penalty up to now.
func (c *Core) decay(st *vipState, now time.Time) {
	if !st.at.IsZero() && now.After(st.at) && c.damp.HalfLife > 0 {
		st.penalty *= math.Exp2(-float64(now.Sub(st.at)) / float64(c.damp.HalfLife))
	}
	st.at = now
}

// Step takes the current input and time and returns the changes to make.
func (c *Core) Step(now time.Time, in Input) Decision {
	var d Decision
	seen := map[netip.Prefix]bool{}
	for _, v := range in.VIPs {
		seen[v.Prefix] = true
		st := c.vips[v.Prefix]
		if st == nil {
			st = &vipState{at: now}
			c.vips[v.Prefix] = st
		}
		c.decay(st, now)
		healthy := v.Up && !v.Fault
		// The healthy stretch counts while the director runs (and is
		// synced): the delay gives its first checks time after a start.
		if ready := healthy && in.Running && in.Synced; ready && st.healthyAt.IsZero() {
			st.healthyAt = now
		} else if !ready {
			st.healthyAt = time.Time{}
		}
		if st.suppressed && st.penalty < c.damp.Reuse {
			st.suppressed = false
		}
		want := in.Running && in.Synced && healthy && !st.suppressed
		wait := time.Duration(0)
		if want && !st.announced {
			if wait = st.healthyAt.Add(c.damp.AnnounceDelay).Sub(now); wait > 0 {
				want = false
			}
		}
		switch {
		case want && (!st.announced || !st.attrs.Equal(v.Attrs)):
			st.announced, st.attrs = true, v.Attrs
			d.Announce = append(d.Announce, Route{v.Prefix, v.Attrs})
		case !want && st.announced:
			st.announced = false
			d.Withdraw = append(d.Withdraw, v.Prefix)
			if in.Running && !healthy { // a flap, not a stop
				st.flaps++
				st.penalty = min(st.penalty+1, 2*c.damp.Suppress)
				if st.penalty >= c.damp.Suppress {
					st.suppressed = true
				}
			}
		}
		// When to look again without an input change: the end of the
		// announce delay, or the penalty reaching Reuse.
		if wait > 0 {
			d.Next = earliest(d.Next, now.Add(wait))
		}
		if st.suppressed && healthy && in.Running {
			d.Next = earliest(d.Next, now.Add(c.untilReuse(st.penalty)))
		}
	}
	for p, st := range c.vips {
		if seen[p] {
			continue
		}
		// A VIP no longer configured is withdrawn and forgotten.
		if st.announced {
			d.Withdraw = append(d.Withdraw, p)
		}
		delete(c.vips, p)
	}
	slices.SortFunc(d.Announce, func(a, b Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	slices.SortFunc(d.Withdraw, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return d
}

// untilReuse is how long a penalty p takes to decay below Reuse.
func (c *Core) untilReuse(p float64) time.Duration {
	if p < c.damp.Reuse || c.damp.HalfLife <= 0 {
		return 0
	}
	t := time.Duration(math.Log2(p/c.damp.Reuse) * float64(c.damp.HalfLife))
	return t + time.Millisecond // strictly below, not at
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Status lists the VIPs Core knows, sorted by address.
func (c *Core) Status(now time.Time) []VIPStatus {
	out := make([]VIPStatus, 0, len(c.vips))
	for p, st := range c.vips {
		pen := st.penalty
		if !st.at.IsZero() && now.After(st.at) && c.damp.HalfLife > 0 {
			pen *= math.Exp2(-float64(now.Sub(st.at)) / float64(c.damp.HalfLife))
		}
		out = append(out, VIPStatus{Prefix: p, Announced: st.announced, Suppressed: st.suppressed, Penalty: pen, Flaps: st.flaps})
	}
	slices.SortFunc(out, func(a, b VIPStatus) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}
