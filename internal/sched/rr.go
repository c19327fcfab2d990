package sched

// Round robin (rr) sends new connections to the servers in turn, for servers
// of equal capacity.
//
// Rule (ip_vs_rr_schedule): starting after the last server chosen, the next
// in list order, wrapping around, with weight > 0 and not overloaded; the
// last one chosen is taken again only when it is the only one available. A
// skipped server does not make its successor chosen twice. When Update
// removes the last server chosen, the position moves back to the nearest
// earlier server still present, as ip_vs_rr_del_dest does, so the turn is
// not lost. No options.
//
// IPVS scans forward past unavailable servers; here a max-tree of
// availability finds the next one in O(log n).

type roundRobin struct {
	w     watch
	tree  maxTree // 1 for an available server, 0 otherwise
	dests []*Dest // guarded by w.mu
	last  int     // guarded by w.mu; index of the last pick, -1: the list head
}

func init() {
	Register("rr", func(Options) (Scheduler, error) { return &roundRobin{last: -1}, nil })
}

func availability(d *Dest) int64 {
	if d.Available() {
		return 1
	}
	return 0
}

func (s *roundRobin) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		s.last = carryPosition(s.dests, s.last, dests)
		s.dests = dests
		s.tree.init(len(dests))
		for i, d := range dests {
			s.tree.val[s.tree.size+i] = availability(d)
		}
		s.tree.fix()
	}, func(i int) { s.tree.set(i, availability(s.dests[i])) })
}

// carryPosition maps a position in old onto new: the same server if it is
// still there, else the nearest earlier one that is, else the head (-1).
func carryPosition(old []*Dest, pos int, new []*Dest) int {
	if pos < 0 || pos >= len(old) {
		return -1
	}
	idx := make(map[*Dest]int, len(new))
	for i, d := range new {
		if _, dup := idx[d]; !dup {
			idx[d] = i
		}
	}
	for j := pos; j >= 0; j-- {
		if i, ok := idx[old[j]]; ok {
			return i
		}
	}
	return -1
}

func (s *roundRobin) Pick(*Key) *Dest {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if len(s.dests) == 0 {
		return nil
	}
	i := s.tree.next(s.last+1, 1)
	if i < 0 {
		i = s.tree.next(0, 1)
		if i < 0 {
			return nil
		}
	}
	s.last = i
	return s.dests[i]
}
