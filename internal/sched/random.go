package sched

import "sync/atomic"

// Random (random) sends a new connection to a server drawn uniformly among
// the available ones. It is govs's own, not an IPVS scheduler: a baseline,
// and a stateless choice when many directors share the servers.
//
// Rule: uniform over the servers with weight > 0 and not overloaded; weights
// above 0 play no part. No options.
//
// A first draw over the whole list is kept when it lands on an available
// server; otherwise a Fenwick tree of the available servers draws among them
// in O(log n). A server is then chosen with probability 1/n + (n-a)/n x 1/a
// = 1/a for a available out of n: still uniform.
type random struct {
	w     watch
	count sumTree // 1 for an available server
	dests []*Dest // guarded by w.mu
	list  atomic.Pointer[[]*Dest]
	rnd   func() uint64
}

func init() {
	Register("random", func(o Options) (Scheduler, error) { return &random{rnd: randSource(o)}, nil })
}

func (s *random) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		s.dests = dests
		s.list.Store(&dests)
		s.count.init(len(dests))
		for i, d := range dests {
			s.count.set(i, availability(d))
		}
	}, func(i int) { s.count.set(i, availability(s.dests[i])) })
}

func (s *random) Pick(*Key) *Dest {
	if p := s.list.Load(); p != nil && len(*p) > 0 {
		if d := (*p)[s.rnd()%uint64(len(*p))]; d.Available() {
			return d
		}
	}
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	n := s.count.total
	if n <= 0 {
		return nil
	}
	return s.dests[s.count.search(int64(s.rnd()%uint64(n))+1)]
}
