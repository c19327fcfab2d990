package sched

import "sync/atomic"

// destList holds the current real servers as an immutable slice swapped
// atomically, so Pick reads it without locks while Update replaces it.
type destList struct {
	p atomic.Pointer[[]*Dest]
}

func (l *destList) store(d []*Dest) { l.p.Store(&d) }

func (l *destList) load() []*Dest {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}
