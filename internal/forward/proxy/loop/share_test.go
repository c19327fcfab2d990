//go:build linux

package loop

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

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

// startTwo starts two blocking loops, stopped when the test ends.
func startTwo(t *testing.T) [2]*Loop {
	t.Helper()
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
	return loops
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
func TestLoopsShareACPU(t *testing.T) { testLoopsShareACPU(t, spinPolls) }

// Loops that sleep at once after a batch (GOVS_LOOP_SPIN=0) offer to sleep
// at every wait; busy, they never do sleep, and take turns all the same.
func TestLoopsShareACPUWithoutPolls(t *testing.T) { testLoopsShareACPU(t, 0) }

func testLoopsShareACPU(t *testing.T, polls int) {
	if shareEvery == 0 {
		t.Skip(shareEnv + "=0: loops never yield their CPU")
	}
	cpu := pinProcess(t)
	loops := startTwo(t)

	// Alone: the other loop idles.
	for _, l := range loops {
		on(t, l, func() { l.spinPolls = polls }) // running: registered for share
	}
	// Past the polls after that batch, asleep: the idle loop has offered to
	// sleep (were it still polling, it would be waiting for the CPU). A few
	// µs of polls; 100 ms leaves room for a loaded machine.
	time.Sleep(100 * time.Millisecond)
	// Counted from here: while both served their first task above, on a
	// loaded machine, one may have found the other waiting on its CPU.
	var before int
	on(t, loops[0], func() { before = loops[0].cpuYields })
	a := startBusy(t, loops[0])
	time.Sleep(100 * time.Millisecond)
	a.end(t)
	if n := a.yielded - before; n != 0 {
		t.Errorf("a busy loop beside an idle one yielded its CPU %d times in 100 ms, want 0", n)
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

func TestTaskState(t *testing.T) {
	line := "15925 (a) b) c) R 15884 15874 15186 0 -1 4194304 256 0 0 0 0 0 0 0 20 0 7 0 7601008 1291497472 883 18446744073709551615 4194304 5506129 140722719730928 0 0 0 0 0 2143420159 1 0 0 17 13 0 0 0 0 0 7032832\n"
	if s, cpu, ok := taskState([]byte(line)); !ok || s != 'R' || cpu != 13 {
		t.Errorf("taskState = %c %d %v, want R 13 true", s, cpu, ok)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 2 3", "1 (x) S" + strings.Repeat(" 0", 35) + " ", "1 (x) S" + strings.Repeat(" 0", 35) + " 99999999999"} {
		if _, _, ok := taskState([]byte(bad)); ok {
			t.Errorf("taskState(%q) ok", bad)
		}
	}
	// The running thread itself, held on one CPU: runnable, on that CPU
	// (the kernel's own line: field 39 is where the parser looks).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		t.Fatal(err)
	}
	var got uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&got)), 0, 0); errno != 0 {
		t.Fatal(errno)
	}
	var one unix.CPUSet
	one.Set(int(got))
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &was)
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if s, cpu, ok := taskState(b); !ok || s != 'R' || cpu != int32(got) {
		t.Errorf("own stat %q: state %c CPU %d ok %v, want R %d true", b, s, cpu, ok, got)
	}
}

func FuzzTaskState(f *testing.F) {
	f.Add([]byte("1 (x) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1 1 1 1 1 0 0 0 0 0 0 1 0 0 17 1 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, cpu, ok := taskState(b); ok && cpu < 0 {
			t.Errorf("negative CPU %d", cpu)
		}
	})
}

// A loop woken from a sleep onto a busy loop's CPU has no note there (it
// offered to sleep, and cannot note anything before it runs): the busy loop
// finds it waiting by asking the kernel (waitsOn), and yields. The loops
// share one CPU, woken from another; the sleeper's thread under SCHED_IDLE,
// which the kernel never lets preempt the busy loop when it wakes, waits in
// the run queue every time.
func TestLoopsShareWithAWokenLoop(t *testing.T) {
	if shareEvery == 0 || peekOff {
		t.Skip(shareEnv + "=0 or " + peekEnv + "=0: loops do not look for woken loops")
	}
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skip("one CPU: the waker would share it")
	}
	cpu := pinProcess(t)
	loops := startTwo(t)
	sleeper := loops[1]
	// The sleeper's thread may change after a long sleep (the runtime hands
	// a P away from a goroutine in a system call): each wakeup puts the
	// thread it runs on under SCHED_IDLE, for the next.
	const schedIdle, schedOther = 5, 0 // SCHED_IDLE, SCHED_OTHER
	var mu sync.Mutex
	idled := map[int]bool{}
	idle := func() {
		tid := unix.Gettid()
		mu.Lock()
		defer mu.Unlock()
		if !idled[tid] {
			if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedIdle}, 0); err != nil {
				t.Errorf("sched_setattr SCHED_IDLE: %v", err)
			}
			idled[tid] = true
		}
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for tid := range idled {
			unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: schedOther}, 0)
		}
	})
	on(t, sleeper, idle)
	time.Sleep(100 * time.Millisecond) // past its polls: asleep

	b := startBusy(t, loops[0])
	// The waker: a thread of its own on another CPU, waking the sleeper
	// every 2 ms.
	woke := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		other := all
		other.Clear(cpu)
		if err := unix.SchedSetaffinity(0, &other); err != nil {
			t.Errorf("sched_setaffinity: %v", err)
		}
		n := 0
		for range 100 {
			sleeper.Post(idle)
			n++
			time.Sleep(2 * time.Millisecond)
		}
		woke <- n
	}()
	woken := <-woke
	b.end(t)
	if b.yielded == 0 {
		t.Errorf("a busy loop on CPU %d never yielded to a loop woken %d times onto it", cpu, woken)
	}
	t.Logf("CPU %d: sleeper woken %d times; the busy loop yielded %d times, %d turns, longest gap %v",
		cpu, woken, b.yielded, b.turns, time.Duration(b.maxGap))
}
