//go:build linux

package loop

// Timer is a function the loop calls at a time on its own clock (Now). It
// is owned by the loop: create, reset and stop it from the loop's goroutine
// only (a handler, a posted function or another timer).
type Timer struct {
	when int64 // loop clock, nanoseconds
	fn   func()
	h    TimerHandler // instead of fn (Init)
	idx  int          // in the heap; -1 when not scheduled
	l    *Loop
}

// TimerHandler is the owner of a timer that is a field of it (Timer.Init):
// the loop calls its OnTimer, so neither the timer nor a closure is
// allocated on its own (a proxied connection's timer costs nothing more
// than the connection's struct).
type TimerHandler interface {
	OnTimer()
}

// Init makes t, a zero Timer (typically a field of h), a timer of l that
// calls h.OnTimer when it fires, on the loop's goroutine. It is not
// scheduled until Reset. Loop goroutine only, as Reset and Stop.
func (t *Timer) Init(l *Loop, h TimerHandler) {
	*t = Timer{h: h, idx: -1, l: l}
}

// AfterFunc returns a timer that calls fn d nanoseconds of the loop clock
// from now, on the loop's goroutine.
func (l *Loop) AfterFunc(d int64, fn func()) *Timer {
	t := &Timer{fn: fn, idx: -1, l: l}
	t.Reset(d)
	return t
}

// Reset makes t fire d nanoseconds from now, whether or not it was pending.
func (t *Timer) Reset(d int64) {
	t.when = t.l.now + d
	h := &t.l.timers
	if t.idx >= 0 {
		h.fix(t.idx)
		return
	}
	h.push(t)
}

// Stop keeps t from firing; it reports whether t was pending.
func (t *Timer) Stop() bool {
	if t.idx < 0 || t.l == nil { // not scheduled, or a zero Timer never Init
		return false
	}
	t.l.timers.remove(t.idx)
	return true
}

// timerHeap is a binary min-heap on when. One heap per loop, touched only
// by its goroutine: no lock, and a connection's idle timer costs one entry.
type timerHeap []*Timer

func (h *timerHeap) push(t *Timer) {
	t.idx = len(*h)
	*h = append(*h, t)
	h.up(t.idx)
}

func (h *timerHeap) remove(i int) {
	s := *h
	last := len(s) - 1
	t := s[i]
	if i != last {
		s[i] = s[last]
		s[i].idx = i
	}
	s[last] = nil
	*h = s[:last]
	if i != last {
		h.fix(i)
	}
	t.idx = -1
}

func (h timerHeap) fix(i int) {
	if !h.up(i) {
		h.down(i)
	}
}

func (h timerHeap) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= h[i].when {
			break
		}
		h.swap(i, p)
		i = p
		moved = true
	}
	return moved
}

func (h timerHeap) down(i int) {
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && h[r].when < h[c].when {
			c = r
		}
		if h[i].when <= h[c].when {
			return
		}
		h.swap(i, c)
		i = c
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
