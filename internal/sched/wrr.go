package sched

import "sync"

// Weighted round robin (wrr), IPVS's interleaved rule: with mw the largest
// weight and di the gcd of all weights, a current weight cw steps down from
// mw by di each time the list is exhausted (back to mw below di); a pass
// chooses, in list order, every available server whose weight is at least cw.
// Weights 4, 3, 2 give the cycle A A B A B C A B C: servers interleave instead
// of arriving in bursts as a naive expansion would send them.
type weightedRoundRobin struct {
	mu    sync.Mutex
	dests []*Dest
	i     int // position of the last pick, -1 at the head of the list
	cw    int // current weight
	mw    int // max weight
	di    int // gcd of weights
}

func init() {
	Register("wrr", func(Options) (Scheduler, error) { return &weightedRoundRobin{i: -1}, nil })
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (s *weightedRoundRobin) Update(dests []*Dest) {
	g, mw := 0, 0
	for _, d := range dests {
		w := d.Weight()
		if w > 0 {
			if g == 0 {
				g = w
			} else {
				g = gcd(g, w)
			}
		}
		mw = max(mw, w)
	}
	if g == 0 {
		g = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dests = dests
	s.di = g
	// As ip_vs_wrr_dest_changed: keep the position and the current weight
	// where they still make sense, so an update does not restart the cycle.
	s.mw = mw
	if s.cw > s.mw || s.cw <= 0 {
		s.cw = s.mw
	} else if g > 1 {
		s.cw = (s.cw / g) * g
		if s.cw == 0 {
			s.cw = s.mw
		}
	}
	if s.i >= len(dests) {
		s.i = -1
	}
}

func (s *weightedRoundRobin) Pick(*Key) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.dests)
	if n == 0 || s.mw == 0 {
		return nil
	}
	// Each step visits one server; after mw/di passes with no available server
	// every weight level has been tried.
	for steps := n * (s.mw/s.di + 1); steps > 0; steps-- {
		s.i++
		if s.i >= n {
			s.i = 0
			s.cw -= s.di
			if s.cw <= 0 {
				s.cw = s.mw
			}
		}
		d := s.dests[s.i]
		if !d.Overloaded() && d.Weight() >= s.cw && d.Weight() > 0 {
			return d
		}
	}
	return nil
}
