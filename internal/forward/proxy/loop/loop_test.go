//go:build linux

package loop

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newLoop(t *testing.T) *Loop {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	t.Cleanup(l.Stop)
	return l
}

// on runs fn on the loop and waits for it.
func on(t *testing.T, l *Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if !l.Post(func() { fn(); close(done) }) {
		t.Fatal("loop stopped")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("posted function did not run")
	}
}

// Posts from many goroutines all run, on the loop, in each poster's order.
func TestPost(t *testing.T) {
	l := newLoop(t)
	const posters, each = 8, 500
	var got [posters][]int
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Post(func() { got[p] = append(got[p], i) }) // loop goroutine only: no lock
			}
		}()
	}
	wg.Wait()
	on(t, l, func() {})
	for p := range posters {
		if len(got[p]) != each || !slices.IsSorted(got[p]) {
			t.Fatalf("poster %d: %d functions ran, in order %v", p, len(got[p]), slices.IsSorted(got[p]))
		}
	}
}

func TestStopThenPost(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	l.Stop()
	if l.Post(func() { t.Error("ran after Stop") }) {
		t.Error("Post after Stop reported true")
	}
	l.Stop() // twice: no effect
}

// Timers fire in order of their times, stopped ones never, reset ones at
// their new time; the loop wakes up for them with nothing else to do.
func TestTimers(t *testing.T) {
	l := newLoop(t)
	fired := make(chan int, 100)
	var stopped, reset *Timer
	on(t, l, func() {
		for i, ms := range []int{40, 10, 30, 20} {
			l.AfterFunc(int64(ms)*int64(time.Millisecond), func() { fired <- i })
		}
		stopped = l.AfterFunc(int64(15*time.Millisecond), func() { fired <- 100 })
		reset = l.AfterFunc(int64(time.Hour), func() { fired <- 5 })
	})
	on(t, l, func() {
		if !stopped.Stop() || stopped.Stop() {
			t.Error("Stop of a pending timer: want true, then false")
		}
		reset.Reset(int64(50 * time.Millisecond))
	})
	var order []int
	for len(order) < 5 {
		select {
		case i := <-fired:
			order = append(order, i)
		case <-time.After(10 * time.Second):
			t.Fatalf("timers fired %v, want 5", order)
		}
	}
	if want := []int{1, 3, 2, 0, 5}; !slices.Equal(order, want) {
		t.Errorf("timers fired in order %v, want %v", order, want)
	}
}

type owner struct {
	tm    Timer
	fired chan string
	name  string
}

func (o *owner) OnTimer() { o.fired <- o.name }

// A timer embedded in its owner (Init) fires its OnTimer among closure
// timers in time order; a zero Timer's Stop is a no-op that leaves the
// heap alone (it must not remove whatever timer sits at index 0).
func TestEmbeddedTimer(t *testing.T) {
	l := newLoop(t)
	fired := make(chan string, 10)
	a := &owner{fired: fired, name: "a"}
	b := &owner{fired: fired, name: "b"}
	var zero Timer
	on(t, l, func() {
		l.AfterFunc(int64(30*time.Millisecond), func() { fired <- "fn" })
		a.tm.Init(l, a)
		a.tm.Reset(int64(10 * time.Millisecond))
		b.tm.Init(l, b)
		b.tm.Reset(int64(time.Hour))
		b.tm.Reset(int64(50 * time.Millisecond))
		if zero.Stop() {
			t.Error("Stop of a zero Timer reported true")
		}
	})
	var order []string
	for len(order) < 3 {
		select {
		case s := <-fired:
			order = append(order, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("timers fired %v, want 3", order)
		}
	}
	if want := []string{"a", "fn", "b"}; !slices.Equal(order, want) {
		t.Errorf("timers fired in order %v, want %v", order, want)
	}
	on(t, l, func() {
		a.tm.Reset(int64(5 * time.Millisecond))
		if !a.tm.Stop() || a.tm.Stop() {
			t.Error("Stop of a pending embedded timer: want true, then false")
		}
	})
	select {
	case s := <-fired:
		t.Errorf("stopped timer %s fired", s)
	case <-time.After(30 * time.Millisecond):
	}
}

// The heap stays a heap through random pushes, resets and removals.
func TestTimerHeap(t *testing.T) {
	l := &Loop{}
	r := rand.New(rand.NewPCG(1, 2))
	var live []*Timer
	for i := 0; i < 2000; i++ {
		switch op := r.IntN(3); {
		case op == 0 || len(live) == 0:
			live = append(live, l.AfterFunc(r.Int64N(1000), func() {}))
		case op == 1:
			live[r.IntN(len(live))].Reset(r.Int64N(1000))
		default:
			k := r.IntN(len(live))
			live[k].Stop()
			live = slices.Delete(live, k, k+1)
		}
		for j, tm := range l.timers {
			if tm.idx != j {
				t.Fatalf("timer at %d thinks it is at %d", j, tm.idx)
			}
			if j > 0 && l.timers[(j-1)/2].when > tm.when {
				t.Fatalf("heap order broken at %d", j)
			}
		}
	}
	if len(l.timers) != len(live) {
		t.Fatalf("%d timers in the heap, %d live", len(l.timers), len(live))
	}
}

type recorder struct{ events chan uint32 }

func (r recorder) Event(_ int, ev uint32) { r.events <- ev }

// A registered socket's edges reach its handler: writable at once, then
// readable when bytes arrive; a forgotten one's no more.
func TestRegisterEvents(t *testing.T) {
	l := newLoop(t)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[1])
	r := recorder{events: make(chan uint32, 16)}
	on(t, l, func() {
		if err := l.Register(pair[0], r); err != nil {
			t.Error(err)
		}
	})
	wait := func(want uint32) {
		t.Helper()
		for {
			select {
			case ev := <-r.events:
				if ev&want != 0 {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no event %#x", want)
			}
		}
	}
	wait(unix.EPOLLOUT)
	unix.Write(pair[1], []byte("x"))
	wait(unix.EPOLLIN)
	on(t, l, func() { l.Forget(pair[0]); unix.Close(pair[0]) })
	unix.Write(pair[1], []byte("y"))
	on(t, l, func() {})
	select {
	case ev := <-r.events:
		if ev&unix.EPOLLIN != 0 {
			t.Errorf("event %#x after Forget", ev)
		}
	default:
	}
}
