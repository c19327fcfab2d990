package sched

import (
	"math"
	"slices"
	"time"
)

// Adaptive weights (adaptive-weights) is wlc on effective weights that a
// feedback loop lowers for the real servers that answer slower, or report
// more load, than their peers: for servers of uneven or changing speed, and
// for the kernel dataplanes, where no per-connection latency is visible
// (health-check latency and agent load suffice). govs's own, not an IPVS
// scheduler.
//
// Rule: as wlc (least overhead / weight, ties to the first in list order)
// with weight x f in place of the weight, f in [adaptMin, 1] being the
// server's factor, in steps of 1/adaptScale. Pick is one atomic load, as
// wlc's.
//
// Loop: every adaptInterval at most (run by the first Observe after it), for
// each server in service:
//
//   - latency: the first of FirstByte, Duration and HealthLatency that at
//     least half the servers reported in the last adaptStale has each
//     server's EWMA (tau adaptTau), plus its ConnectTime EWMA if any (a
//     server whose connects fail or stall looks as slow as it is to a
//     client), compared with the median M of that kind:
//     fl = min(1, (adaptBand x M / L)^2). A server up to 10% slower than
//     the median keeps full weight; twice as slow gets about 0.3; three
//     times, 0.13. The square makes a slow server's share of new
//     connections fall faster than its speed, which is what shortens the
//     tail: a connection sent there waits longer than one that queues
//     briefly elsewhere.
//   - load: when at least half the servers sent AgentLoad, each server's
//     headroom h = max(1 - load EWMA, 0.05) against the median H:
//     fa = min(1, adaptBand x h / H).
//   - f moves adaptGain of the way to t = max(adaptMin, fl x fa), or to t
//     at once when t is below adaptDrop x f (a dead or stalled server):
//     quick to react to a collapse, gradual otherwise, so that transient
//     queues (a burst) do not make the weights swing.
//
// Servers without fresh signals keep their factor; the median makes the
// loop relative, so a uniform slowdown changes nothing. A server that leaves
// and comes back starts again at 1. As wlc's, the rank counts a connecting
// (inactive) connection 1/256 of an established one, so a dead server that
// the health checker has not yet taken out still draws connections; the
// factor only makes it draw 32 times fewer.
//
// The constants were set with govs sim (docs/sim.md): the square (against
// powers 3 and 4) gave the best p99 on heterogeneous and noisy
// servers without moving the homogeneous case.
//
// Options: Clock. Observe takes the index lock that connection counts take
// and allocates nothing.
type adaptiveWeights struct {
	w     watch
	tree  minTree
	clock func() time.Time
	// The rest is guarded by w.mu.
	stats map[*Dest]*adaptStat
	cur   []*adaptStat // by position of the current servers
	buf   []float64
	last  int64 // ns of the last adjustment
}

const (
	adaptInterval = int64(500 * time.Millisecond) // between adjustments
	adaptTau      = float64(2 * time.Second)      // signal EWMAs
	adaptStale    = float64(10 * time.Second)     // signals older are ignored
	adaptBand     = 1.1                           // tolerance around the median
	adaptMin      = 1.0 / 32                      // smallest factor
	adaptGain     = 0.5                           // step towards the target
	adaptDrop     = 0.25                          // a target below this share of f is taken at once
	adaptScale    = 1024                          // factor's fixed point
)

// adaptLatencyKinds are the latency signals in order of preference.
var adaptLatencyKinds = [...]SignalKind{FirstByte, Duration, HealthLatency}

type adaptStat struct {
	lat    [len(adaptLatencyKinds)]ewma
	conn   ewma // ConnectTime
	load   ewma
	factor int64 // in 1/adaptScale
}

func init() {
	Register("adaptive-weights", func(o Options) (Scheduler, error) {
		s := &adaptiveWeights{clock: clockSource(o), stats: map[*Dest]*adaptStat{}}
		s.tree.key = s.rank
		return s, nil
	})
}

// rank is wlcRank with the factor applied; it runs under w.mu.
func (s *adaptiveWeights) rank(d *Dest) rank {
	a, in, w, over := snapshot(d)
	f := uint64(adaptScale)
	if st := s.stats[d]; st != nil {
		f = uint64(st.factor)
	}
	return rank{ok: w > 0 && !over, num: overhead(a, in), den: w * f}
}

func (s *adaptiveWeights) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		stats := make(map[*Dest]*adaptStat, len(dests))
		s.cur = make([]*adaptStat, len(dests))
		for i, d := range dests {
			st := s.stats[d]
			if st == nil {
				st = stats[d]
			}
			if st == nil {
				st = &adaptStat{factor: adaptScale}
			}
			stats[d] = st
			s.cur[i] = st
		}
		s.stats = stats
		s.buf = make([]float64, 0, len(dests))
		s.tree.build(dests)
	}, s.tree.set)
}

func (s *adaptiveWeights) Pick(*Key) *Dest { return s.tree.best.Load() }

func (s *adaptiveWeights) Observe(d *Dest, sig Signal) {
	now := signalTime(&sig, s.clock)
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	st := s.stats[d]
	if st == nil {
		return
	}
	switch sig.Kind {
	case FirstByte, Duration, HealthLatency:
		k := slices.Index(adaptLatencyKinds[:], sig.Kind)
		st.lat[k].add(float64(max(sig.Latency, 0)), now, adaptTau)
	case ConnectTime:
		st.conn.add(float64(max(sig.Latency, 0)), now, adaptTau)
	case AgentLoad:
		st.load.add(max(sig.Load, 0), now, adaptTau)
	default:
		return
	}
	if now-s.last >= adaptInterval {
		s.last = now
		s.adjust(now)
	}
}

// adjust runs one step of the loop; it runs under w.mu.
func (s *adaptiveWeights) adjust(now int64) {
	dests := s.tree.dests
	live := 0
	for _, d := range dests {
		if d.Weight() > 0 {
			live++
		}
	}
	if live == 0 {
		return
	}
	// The latency kind to use, and its median.
	kind, med := -1, 0.0
	for k := range adaptLatencyKinds {
		if m, ok := s.median(dests, live, func(st *adaptStat) *ewma { return &st.lat[k] }, now); ok {
			kind, med = k, m
			break
		}
	}
	loadMed, haveLoad := s.median(dests, live, func(st *adaptStat) *ewma { return &st.load }, now)
	headroom := func(load float64) float64 { return max(1-load, 0.05) }
	if haveLoad {
		loadMed = headroom(loadMed) // the median headroom: headroom falls as load rises
	}
	for i, d := range dests {
		st := s.cur[i]
		if d.Weight() <= 0 {
			continue
		}
		target, known := 1.0, false
		if e := &st.lat[max(kind, 0)]; kind >= 0 && e.fresh(now, adaptStale) && e.val > 0 {
			l := e.val
			// FirstByte and Duration are timed from the bind and so
			// include the connect; a health check's latency does not.
			if adaptLatencyKinds[kind] == HealthLatency && st.conn.fresh(now, adaptStale) {
				l += st.conn.val
			}
			target = min(1, math.Pow(adaptBand*med/l, 2))
			known = true
		}
		if e := &st.load; haveLoad && e.fresh(now, adaptStale) {
			target *= min(1, adaptBand*headroom(e.val)/loadMed)
			known = true
		}
		if !known {
			continue
		}
		f := float64(st.factor) / adaptScale
		if target = max(target, adaptMin); target < f*adaptDrop {
			f = target // a collapse (a dead or stalled server): at once
		} else {
			f += adaptGain * (target - f)
		}
		nf := int64(math.Round(f * adaptScale))
		nf = min(max(nf, int64(math.Ceil(adaptMin*adaptScale))), adaptScale)
		if nf != st.factor {
			st.factor = nf
			s.tree.set(i)
		}
	}
}

// median returns the median of the fresh EWMAs that sel picks among servers
// in service, if at least half of the live ones have one.
func (s *adaptiveWeights) median(dests []*Dest, live int, sel func(*adaptStat) *ewma, now int64) (float64, bool) {
	s.buf = s.buf[:0]
	for i, d := range dests {
		if e := sel(s.cur[i]); d.Weight() > 0 && e.fresh(now, adaptStale) {
			s.buf = append(s.buf, e.val)
		}
	}
	if len(s.buf) == 0 || 2*len(s.buf) < live {
		return 0, false
	}
	slices.Sort(s.buf)
	n := len(s.buf)
	if n%2 == 1 {
		return s.buf[n/2], true
	}
	return (s.buf[n/2-1] + s.buf[n/2]) / 2, true
}
