//go:build linux

package loop

import (
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pinProcess puts every thread of the test process on one CPU (the first it
// may use) and restores each thread's set at the end; threads started in
// between inherit the pin from their creator, and are restored too.
func pinProcess(t *testing.T) int {
	t.Helper()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	cpu := -1
	for i := range 1024 {
		if all.IsSet(i) {
			cpu = i
			break
		}
	}
	var one unix.CPUSet
	one.Set(cpu)
	set := func(mask *unix.CPUSet) {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				unix.SchedSetaffinity(tid, mask) // a thread that just exited: nothing to do
			}
		}
	}
	set(&one)
	t.Cleanup(func() { set(&all) })
	return cpu
}

// busy keeps l serving without ever offering to sleep (a task that posts
// itself again: the next poll after the batch finds it) until stop is
// closed, and counts its turns and the longest time between two.
type busy struct {
	l       *Loop
	stop    chan struct{}
	done    chan struct{}
	turns   int
	last    int64
	maxGap  int64
	yielded int // cpuYields at the end
}

func startBusy(t *testing.T, l *Loop) *busy {
	b := &busy{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	var turn func()
	turn = func() {
		now := Clock()
		if b.turns > 0 {
			b.maxGap = max(b.maxGap, now-b.last)
		}
		b.last = now
		b.turns++
		select {
		case <-b.stop:
			b.yielded = l.cpuYields
			close(b.done)
			return
		default:
		}
		l.Post(turn)
	}
	if !l.Post(turn) {
		t.Fatal("loop stopped")
	}
	return b
}

func (b *busy) end(t *testing.T) {
	close(b.stop)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a busy loop did not stop in 30 s")
	}
}

// Two loops that never sleep, on one CPU, take turns every shareEvery
// (sched_yield after share finds the other noted on its CPU) instead of
// at the scheduler's tick (4 ms at HZ=250): each yields. One busy loop
// beside an idle one yields nothing: the idle loop offered to sleep, and
// the kernel wakes it on its own.
func TestLoopsShareACPU(t *testing.T) {
	if shareEvery == 0 {
		t.Skip(shareEnv + "=0: loops never yield their CPU")
	}
	cpu := pinProcess(t)
	var loops [2]*Loop
	for i := range loops {
		l, err := newLoopWaiting(waitBlocking)
		if err != nil {
			t.Fatal(err)
		}
		go l.Run()
		t.Cleanup(l.Stop)
		loops[i] = l
	}

	// Alone: the other loop idles.
	for _, l := range loops {
		on(t, l, func() {}) // running: registered for share
	}
	// Past the polls after that batch, asleep: the idle loop has offered to
	// sleep (were it still polling, it would be waiting for the CPU). A few
	// µs of polls; 100 ms leaves room for a loaded machine.
	time.Sleep(100 * time.Millisecond)
	a := startBusy(t, loops[0])
	time.Sleep(100 * time.Millisecond)
	a.end(t)
	if a.yielded != 0 {
		t.Errorf("a busy loop beside an idle one yielded its CPU %d times in 100 ms, want 0", a.yielded)
	}
	t.Logf("alone on CPU %d: %d turns in 100 ms, longest gap %v", cpu, a.turns, time.Duration(a.maxGap))

	// Both busy on the one CPU.
	var y0 [2]int
	for i, l := range loops {
		on(t, l, func() { y0[i] = l.cpuYields })
	}
	bs := [2]*busy{startBusy(t, loops[0]), startBusy(t, loops[1])}
	time.Sleep(200 * time.Millisecond)
	for i, b := range bs {
		b.end(t)
		if n := b.yielded - y0[i]; n == 0 {
			t.Errorf("loop %d shared CPU %d with a busy loop for 200 ms and never yielded", i, cpu)
		}
		// The gaps depend on the machine's other load: reported, not asserted.
		t.Logf("loop %d: %d turns, %d yields, longest gap between turns %v", i, b.turns, b.yielded-y0[i], time.Duration(b.maxGap))
	}
}
