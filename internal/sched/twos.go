package sched

// Weighted power of two choices (twos) draws two servers at random in
// proportion to their weights and sends the connection to the less loaded of
// the two: close to wlc's balance without wlc's herd onto the single least
// loaded server when many directors share the servers.
//
// Rule (ip_vs_twos_schedule): among servers with weight > 0 and not
// overloaded, with T the sum of their weights, draw r1 and r2 uniformly in
// [0, T] (T + 1 values, so the first server in list order gets one extra
// chance, as in IPVS) and take for each the first server in list order whose
// running sum of weights reaches it; choose the second if
// weight2 x overhead1 > weight1 x overhead2 (overhead = active x 256 +
// inactive), else the first. No options.
//
// IPVS sums the weights with two scans. Here a guide table finds each draw
// in O(1) expected time while the available weights hold still; while they
// change (a server flapping at its threshold), a Fenwick tree updated in
// O(log n) answers instead, and the table is rebuilt once they have been
// still for a while. Both give the kernel's answer for the same draw.
type twoChoices struct {
	w     watch
	sums  sumTree // weight of an available server, 0 otherwise
	guide guideTable
	stale int // picks since the weights last changed, -1: guide is current
	dests []*Dest
	rnd   func() uint64
}

// guideRebuildAfter is how many picks the weights must hold still before the
// guide table is rebuilt, so that an O(n) rebuild costs O(1) a pick.
const guideRebuildAfter = 64

func init() {
	Register("twos", func(o Options) (Scheduler, error) { return &twoChoices{rnd: randSource(o)}, nil })
}

func positiveAvailableWeight(d *Dest) int64 {
	if !d.Available() {
		return 0
	}
	return int64(d.Weight())
}

func (s *twoChoices) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		s.dests = dests
		s.sums.init(len(dests))
		for i, d := range dests {
			s.sums.set(i, positiveAvailableWeight(d))
		}
		s.guide.build(s.sums.val)
		s.stale = -1
	}, func(i int) {
		if s.sums.set(i, positiveAvailableWeight(s.dests[i])) {
			s.stale = 0
		}
	})
}

func (s *twoChoices) Pick(*Key) *Dest {
	s.w.mu.Lock()
	total := s.sums.total
	if total <= 0 {
		s.w.mu.Unlock()
		return nil
	}
	// Two 32-bit draws, as the kernel's two prandom_u32() calls, from one
	// 64-bit number; a draw of 0 lands on the first available server, as 1
	// does.
	n := uint64(total) + 1
	r := s.rnd()
	x1, x2 := r>>32, r&(1<<32-1)
	if n > 1<<32 {
		x1, x2 = r, s.rnd()
	}
	r1 := max(int64(x1%n), 1)
	r2 := max(int64(x2%n), 1)
	var i1, i2 int
	if s.stale >= 0 {
		if s.stale++; s.stale >= guideRebuildAfter {
			s.guide.build(s.sums.val)
			s.stale = -1
		}
	}
	if s.stale < 0 {
		i1, i2 = s.guide.search(r1), s.guide.search(r2)
	} else {
		i1, i2 = s.sums.search2(r1, r2)
	}
	d1, d2 := s.dests[i1], s.dests[i2]
	s.w.mu.Unlock()

	a1, in1, w1, _ := snapshot(d1)
	a2, in2, w2, _ := snapshot(d2)
	// weight2 x overhead1 > weight1 x overhead2, i.e. overhead2/weight2 is the smaller
	if ratioLess(overhead(a2, in2), w2, overhead(a1, in1), w1) {
		return d2
	}
	return d1
}
