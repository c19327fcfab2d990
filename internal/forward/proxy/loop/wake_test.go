//go:build linux

package loop

import (
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// timerHandler serves a timerfd: it records when the event reached the
// loop and then keeps the loop busy for work, as a batch of connections.
type timerHandler struct {
	fd       int
	work     time.Duration
	due      atomic.Int64 // loop clock the timer was armed for
	got, end atomic.Int64 // loop clock the event was served, the work done
}

func (h *timerHandler) Event(fd int, _ uint32) {
	var b [8]byte
	unix.Read(fd, b[:])
	h.got.Store(Clock())
	for end := Clock() + int64(h.work); Clock() < end; {
	}
	h.end.Store(Clock())
}

func newTimer(t *testing.T, l *Loop, work time.Duration) *timerHandler {
	t.Helper()
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	h := &timerHandler{fd: fd, work: work}
	on(t, l, func() {
		if err := l.Register(fd, h); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { on(t, l, func() { l.Forget(fd) }); unix.Close(fd) })
	return h
}

func (h *timerHandler) arm(t *testing.T, after time.Duration) {
	t.Helper()
	h.got.Store(0)
	h.end.Store(0)
	h.due.Store(Clock() + int64(after))
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(after))}
	if err := unix.TimerfdSettime(h.fd, 0, &spec, nil); err != nil {
		t.Fatal(err)
	}
}

// crossLoopDelays arms, tries times, a timer on a that keeps it busy for
// 8 ms and one on b due 1 ms into that, both parked before: the events
// come from the kernel, as a client's bytes do, with no goroutine of the
// process woken by them. It returns b's delays and how many times b was
// served while a was still busy.
func crossLoopDelays(t *testing.T, wait int, wake bool, tries int) ([]time.Duration, int) {
	var a, b *Loop
	for _, l := range []**Loop{&a, &b} {
		var err error
		if *l, err = newLoopWaiting(wait); err != nil {
			t.Fatal(err)
		}
		(*l).noWake = !wake
		go (*l).Run()
		t.Cleanup((*l).Stop)
	}
	ha, hb := newTimer(t, a, 8*time.Millisecond), newTimer(t, b, 0)
	var delays []time.Duration
	during := 0
	for range tries {
		time.Sleep(5 * time.Millisecond) // both loops parked
		ha.arm(t, 2*time.Millisecond)
		hb.arm(t, 3*time.Millisecond)
		// One sleep past the batch: a goroutine that wakes polls too.
		time.Sleep(15 * time.Millisecond)
		for deadline := time.Now().Add(10 * time.Second); hb.got.Load() == 0 || ha.end.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatal("a timer's event was not served in 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		delays = append(delays, time.Duration(hb.got.Load()-hb.due.Load()))
		if hb.got.Load() < ha.end.Load() {
			during++
		}
	}
	slices.Sort(delays)
	return delays, during
}

// While one loop serves a long batch, another loop's event is served on
// another core at once, not when the busy loop parks: the wake after a
// park (Loop.poll) gives Go's poller a thread again. Without it the event
// waited for the batch to end in every try. The assertion is lenient (one
// try in 20 served during the 8 ms batch) so that a loaded machine, which
// delays the woken thread, does not fail it.
func TestCrossLoopWake(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2: with one P the loops take turns by design")
	}
	const tries = 20
	for _, c := range []struct {
		name string
		wait int
		wake bool
	}{{"parked on Go's poller, no wake", waitPoller, false}, {"parked on Go's poller, wake after park", waitPoller, true}, {"blocking in epoll_wait", waitBlocking, false}} {
		delays, during := crossLoopDelays(t, c.wait, c.wake, tries)
		t.Logf("%s: idle loop's event served after median %v, max %v; during the busy loop's batch %d of %d",
			c.name, delays[len(delays)/2], delays[len(delays)-1], during, tries)
		if (c.wake || c.wait == waitBlocking) && during == 0 {
			t.Errorf("%s: the idle loop's event waited for the busy loop's batch in all %d tries", c.name, tries)
		}
	}
}

// An idle blocking loop sleeps: after its first raw wait (rawWait) it waits
// in an ordinary system call, which the runtime's monitor does not
// interrupt every 10 ms as it does a raw one (that cost two idle loops 0.4%
// of a core); so over 300 ms it returns from epoll_wait a handful of times,
// not 30 (every 10 ms) or 60 (every rawWait).
func TestIdleLoopSleeps(t *testing.T) {
	l, err := newLoopWaiting(waitBlocking)
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	time.Sleep(300 * time.Millisecond)
	l.Stop() // after Run has returned: l.waits is ours to read
	if l.waits > 10 {
		t.Errorf("an idle loop returned from epoll_wait %d times in 300 ms, want a few", l.waits)
	}
	t.Logf("%d returns from epoll_wait in 300 ms idle", l.waits)
}

// A loop polls again a few times after a batch of events before it sleeps
// (spinPolls), and never more: each batch is followed by at most spinPolls
// empty polls, and an idle loop does not poll at all (its CPU is its
// wakeups', none: the polls are counted, not timed).
func TestSpinBounded(t *testing.T) {
	l, err := newLoopWaiting(waitBlocking)
	if err != nil {
		t.Fatal(err)
	}
	l.spinPolls = 4
	go l.Run()
	t.Cleanup(l.Stop)
	h := newTimer(t, l, 0)
	const events = 20
	for i := range events {
		h.arm(t, time.Millisecond)
		for deadline := time.Now().Add(10 * time.Second); h.got.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("event %d not served in 10 s", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var waits, spins, spinsBefore int
	on(t, l, func() { spinsBefore = l.spins })
	time.Sleep(300 * time.Millisecond)
	on(t, l, func() { waits, spins = l.waits, l.spins })
	if spins == 0 {
		t.Error("the loop never polled after a batch")
	}
	// Every other return of epoll_wait is a blocking wait that ended with
	// events or a timer (a batch) or ran its course.
	if batches := waits - spins; spins > l.spinPolls*batches {
		t.Errorf("%d polls after %d batches: more than %d each", spins, batches, l.spinPolls)
	}
	// Idle for 300 ms: only the polls after the first read's own batch.
	if idle := spins - spinsBefore; idle > l.spinPolls {
		t.Errorf("%d polls in 300 ms idle, want at most %d (after the read's batch)", idle, l.spinPolls)
	}
	t.Logf("%d epoll_wait returns, %d of them polls after a batch, over %d events and 300 ms idle", waits, spins, events)
}

// A busy blocking loop yields to the runtime on its own P before Go's
// monitor preempts it (yieldEvery): no preemption signal interrupts its
// waits, and it stays on its thread. Preempted, it went to the global run
// queue and a thread woken for the idle Ps often took it (~20 thread
// changes a second under load). The loop here waits 1 ms at a time (a
// repeating timer: never idle, so always in raw waits, which the runtime
// sees as running) for 100 ms; before the yield, about one wait in twenty
// ended in EINTR (5 in 100 ms, 3 threads). A window in which the kernel
// kept the loop's thread off its core for 4 ms or more is measured again:
// a goroutine that did not run for that long may rightly be preempted.
func TestBusyLoopYields(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection's stop-the-world signals the loop too
	runtime.GC()
	l, err := newLoopWaiting(waitBlocking)
	if err != nil {
		t.Fatal(err)
	}
	go l.Run()
	t.Cleanup(l.Stop)
	// A loop that iterates at least every 4 ms yields at most 9 ms apart:
	// under the monitor's 10 ms.
	const ticks, stalled = 100, int64(4 * time.Millisecond)
	for try := 1; ; try++ {
		tids := map[int]int{}
		var n, start, startWaits, eintrs, waits int
		var last, maxGap int64
		done := make(chan struct{})
		var tick func()
		tick = func() {
			tids[unix.Gettid()]++
			now := Clock()
			maxGap = max(maxGap, now-last)
			last = now
			if n++; n < ticks {
				l.AfterFunc(int64(time.Millisecond), tick)
				return
			}
			// Read here, on the loop, at the window's end: an idle loop
			// waiting afterwards may be signalled while the test reads.
			eintrs, waits = l.eintrs-start, l.waits-startWaits
			close(done)
		}
		on(t, l, func() {
			start, startWaits, last = l.eintrs, l.waits, Clock()
			l.AfterFunc(int64(time.Millisecond), tick)
		})
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("the timers did not run %d times in 30 s", ticks)
		}
		if maxGap >= stalled {
			if try == 200 {
				t.Fatalf("in 200 windows of %d ticks the loop's thread was always kept off its core for %v or more", ticks, time.Duration(stalled))
			}
			t.Logf("window %d: a gap of %v between ticks; measuring again", try, time.Duration(maxGap))
			continue
		}
		if eintrs > 0 {
			t.Errorf("%d of %d waits interrupted by a signal in %d ticks of 1 ms: the runtime preempted the loop", eintrs, waits, ticks)
		}
		if len(tids) > 1 {
			t.Errorf("the loop ran on %d threads (%v), want 1", len(tids), tids)
		}
		t.Logf("%d ticks, %d waits, %d interrupted, threads %v, longest gap %v", ticks, waits, eintrs, tids, time.Duration(maxGap))
		return
	}
}
