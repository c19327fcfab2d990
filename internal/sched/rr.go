package sched

import "sync/atomic"

// Round robin (rr): real servers in turn, skipping those with weight 0 or
// overloaded. As IPVS, the next pick starts after the last one chosen, so a
// skipped server does not make its successor chosen twice.
type roundRobin struct {
	list destList
	last atomic.Int64 // index of the last pick; -1 before the first
}

func init() {
	Register("rr", func(Options) (Scheduler, error) {
		s := &roundRobin{}
		s.last.Store(-1)
		return s, nil
	})
}

func (s *roundRobin) Update(dests []*Dest) { s.list.store(dests) }

func (s *roundRobin) Pick(*Key) *Dest {
	dests := s.list.load()
	n := int64(len(dests))
	if n == 0 {
		return nil
	}
	for {
		last := s.last.Load()
		for i := int64(1); i <= n; i++ {
			j := (last + i) % n
			if j < 0 {
				j += n
			}
			if d := dests[j]; d.Available() {
				if s.last.CompareAndSwap(last, j) {
					return d
				}
				break // another pick moved on: start again from its choice
			}
			if i == n {
				return nil
			}
		}
	}
}
