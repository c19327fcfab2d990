package sched

import "sync"

// watch keeps a scheduler's index of its real servers current. Update
// attaches one slot per server; a Dest reports each change of its counts,
// weight or overload flag to its slot, which runs the scheduler's onChange
// under mu. Picks that need a consistent view of the index take mu as well.
//
// Lock order: Dest methods hold no lock when they report, and nothing run
// under mu calls a Dest method that reports, so mu is never taken twice.
type watch struct {
	mu  sync.Mutex
	cur *watchGen // guarded by mu
}

// watchGen is the set of servers given to one Update with their slots.
type watchGen struct {
	dests []*Dest
	slots []slot
}

// slot is the Observer attached to one server of one generation. Reports
// from an older generation's slot, still attached while Update swaps, are
// ignored.
type slot struct {
	w  *watch
	g  *watchGen
	i  int
	on func(i int)
}

func (s *slot) CountsChanged(*Dest) {
	s.w.mu.Lock()
	if s.w.cur == s.g {
		s.on(s.i)
	}
	s.w.mu.Unlock()
}

// update replaces the servers. build runs under mu with the new servers and
// must read their state afresh; onChange(i) runs under mu whenever dests[i]
// changes afterwards. Slots are attached before build reads anything, so a
// change made during update is either seen by build or reported after it.
func (w *watch) update(dests []*Dest, build func(dests []*Dest), onChange func(i int)) {
	g := &watchGen{dests: dests, slots: make([]slot, len(dests))}
	for i, d := range dests {
		g.slots[i] = slot{w: w, g: g, i: i, on: onChange}
		d.watch(&g.slots[i])
	}
	w.mu.Lock()
	old := w.cur
	w.cur = g
	build(dests)
	w.mu.Unlock()
	if old != nil {
		for i, d := range old.dests {
			d.unwatch(&old.slots[i])
		}
	}
}
