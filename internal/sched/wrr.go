package sched

// Weighted round robin (wrr) sends new connections to the servers in turn,
// each in proportion to its weight, interleaved rather than in bursts.
//
// Rule (ip_vs_wrr_schedule): with di the gcd of the weights above 0 and mw
// the largest weight less di - 1, a current weight cw starts at mw; a pass
// goes through the list in order and chooses each server, not overloaded,
// whose weight is at least cw; at the end of the list cw drops by di, back to
// mw once it falls to 0 or below. Weights 4, 3, 2 give the cycle
// A A B A B C A B C; weights 4, 2 give A A B. Update (ip_vs_wrr_dest_changed)
// restarts the pass at the head of the list and keeps cw where it still
// makes sense: mw if cw is above the new mw, else cw rounded down to the new
// di plus 1. No options.
//
// IPVS walks the list server by server and, when the heaviest servers are
// overloaded, pass by pass; here a max-tree over the available weights jumps
// to the next eligible server in O(log n) and skips empty passes at once,
// giving the same sequence.
type weightedRoundRobin struct {
	w     watch
	tree  maxTree // weight of an available server, 0 otherwise
	dests []*Dest // guarded by w.mu, as is the rest
	cl    int     // position of the last pick, -1: the list head
	cw    int64   // current weight
	mw    int64   // max weight - (di - 1)
	di    int64   // gcd of the weights above 0
}

func init() {
	Register("wrr", func(Options) (Scheduler, error) { return &weightedRoundRobin{cl: -1}, nil })
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func availableWeight(d *Dest) int64 {
	if d.Overloaded() {
		return 0
	}
	return int64(d.Weight())
}

func (s *weightedRoundRobin) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		var g, mw int64
		for _, d := range dests {
			w := int64(d.Weight())
			if w > 0 {
				if g == 0 {
					g = w
				} else {
					g = gcd(w, g)
				}
			}
			mw = max(mw, w)
		}
		if g == 0 {
			g = 1
		}
		s.dests = dests
		s.cl = -1
		s.di = g
		s.mw = mw - (g - 1)
		if s.cw > s.mw || s.cw == 0 {
			s.cw = s.mw
		} else if g > 1 {
			s.cw = (s.cw/g)*g + 1
		}
		s.tree.init(len(dests))
		for i, d := range dests {
			s.tree.val[s.tree.size+i] = availableWeight(d)
		}
		s.tree.fix()
	}, func(i int) { s.tree.set(i, availableWeight(s.dests[i])) })
}

func (s *weightedRoundRobin) Pick(*Key) *Dest {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.mw <= 0 {
		return nil
	}
	// The kernel's loop, with the scan of each pass done by the tree. last
	// is where this pick started; stop, once set, is the server at which
	// the final pass gives up.
	last, stop := s.cl, -1
	lastPass, restarted := false, false
	from := s.cl + 1
	for {
		f := s.tree.next(from, s.cw)
		if stop >= 0 && stop >= from && (f < 0 || f > stop) {
			s.cl = stop
			return nil
		}
		if f >= 0 {
			s.cl = f
			return s.dests[f]
		}
		from = 0
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
			if lastPass || last < 0 {
				s.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = s.cw <= s.di
		if lastPass && restarted && last >= 0 {
			stop = last
		}
		// Passes with cw above every available weight find nothing: skip
		// them in one step. Every value skipped is above di, so none of
		// them would have set lastPass or stop.
		if t := max(s.tree.max(), s.di); stop < 0 && s.cw > t {
			s.cw -= (s.cw - t + s.di - 1) / s.di * s.di
			lastPass = s.cw <= s.di
			if lastPass && restarted && last >= 0 {
				stop = last
			}
		}
	}
}
