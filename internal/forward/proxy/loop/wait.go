//go:build linux

package loop

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How a loop waits for events when it has none.
const (
	// waitBlocking: in epoll_wait on its own descriptor, in a raw system
	// call, as HAProxy's threads do. The goroutine keeps its P (Go's
	// processor slot) while it waits, so the process runs with one P more
	// per loop (holdP): the loops' Ps are theirs, the others run everything
	// else. The kernel wakes the loop's thread itself when an event comes:
	// no poller in between, no thread woken for an event of a busy loop, no
	// poll that finds nothing before each wait.
	waitBlocking = iota
	// waitPoller: the loop's epoll descriptor is watched by Go's poller and
	// the loop parks there (Run's comment): the loops share the process's
	// Ps with every other goroutine, at the price of the poller's work
	// around each park.
	waitPoller
)

// waitEnv chooses the wait for the loops created after the process starts:
// unset or "epoll", waitBlocking; "poller", waitPoller.
const waitEnv = "GOVS_LOOP_WAIT"

var waitDefault = func() int {
	if strings.EqualFold(strings.TrimSpace(os.Getenv(waitEnv)), "poller") {
		return waitPoller
	}
	return waitBlocking
}()

// rawWait bounds a raw epoll_wait (milliseconds). A loop waiting in a raw
// call looks to the runtime like a goroutine running for ever: its monitor
// interrupts it every 10 ms (a signal, EINTR, a yield), and a
// stop-the-world must interrupt it too. That is nothing next to a busy
// loop's work, but two idle loops cost 0.4% of a core that way (300
// context switches a second). So a loop whose raw wait of rawWait found
// nothing waits in an ordinary system call until its next event: the
// runtime leaves it alone there (the monitor hands its P to the idle list
// after 10 ms; the loop takes an idle P back when the wait ends, the Ps
// added for the loops being there for that).
const rawWait = 5

// spinPolls is how many times a loop that has just served events polls
// again (epoll_wait with timeout 0) before it sleeps: a loop sleeps and is
// woken about twice as often per keep-alive request as HAProxy's threads
// (0.21 voluntary context switches per request against 0.11), and each
// wakeup costs its round trip, more so on a busy machine where it waits in
// the run queue. Polling first (8 polls, a few µs) catches the events
// that come right after a batch: HAProxy's switches per request. 16 polls
// were best while the kernel's hash alone spread the connections over the
// loops (the busier loop's batches were larger); with the loops balanced
// (evServer.pick), 8 polls cost 4% less CPU per keep-alive request than
// 16 for a 1.5-3% higher rate, 4 polls about the same as 8 (bench/
// RESULTS.md). Only after a batch: an idle loop does not poll
// (TestSpinBounded). GOVS_LOOP_SPIN sets it (0 to 64; 0: sleep at once).
const spinEnv = "GOVS_LOOP_SPIN"

var spinPolls = func() int {
	if n, err := strconv.Atoi(strings.TrimSpace(os.Getenv(spinEnv))); err == nil && n >= 0 && n <= 64 {
		return n
	}
	return 8
}()

// yieldEvery is how often a blocking loop yields to the runtime (loop
// clock, ns): half the 10 ms after which Go's monitor preempts a goroutine
// that has not been through the scheduler. Preempted, a loop goroutine went
// to the global run queue and the runtime woke a thread for the idle Ps
// (goschedImpl, wakep), which took it one time in five: the loop resumed on
// another thread 0.05-1 ms later on a busy machine, about 20 times a second
// (bench/RESULTS.md "The keep-alive tail, a second look"). goyield puts it
// on its own P's queue instead, wakes no one, and its thread takes it back
// at once; the monitor, seeing the loop scheduled, leaves it alone.
const yieldEvery = 5_000_000

// goyield is the runtime's yield to the current P's own run queue. The
// runtime keeps it reachable by linkname for code outside it that needs
// exactly this (go.dev/issue/67401: "Do not remove or change the type
// signature"); runtime.Gosched would queue the goroutine globally.
//
//go:linkname goyield runtime.goyield
func goyield()

// shareEvery is how often (loop clock, ns) a blocking loop that has served
// without once offering to sleep since it woke looks whether another loop
// of the process waits for its CPU, and if one does, lets it run
// (sched_yield). Two loops that never sleep (each finds events every time
// it looks) can end up on one CPU while the other CPU runs the rest: the
// kernel balances counts of runnable tasks, not whose they are, and places
// a task anew only when it wakes. Sharing a CPU without sleeping, they took
// turns only at the scheduler's tick (4 ms at HZ=250), and every
// connection of the waiting loop waited that long: the 4-6 ms keep-alive
// p99 of bench/run.sh's disturbed rounds (bench/RESULTS.md "Two loops on
// one CPU"). Yielding, they take turns every shareEvery. The check is one
// getcpu a millisecond of serving; the loop yields only when one of its
// own loops is noted on its CPU (the kernel serves other tasks by waking
// them, or at its tick). GOVS_LOOP_SHARE sets it in µs (0: never; 100 to
// 100000).
const shareEnv = "GOVS_LOOP_SHARE"

var shareEvery = func() int64 {
	v := strings.TrimSpace(os.Getenv(shareEnv))
	if n, err := strconv.Atoi(v); err == nil && (n == 0 || n >= 100 && n <= 100_000) {
		return int64(n) * 1000
	}
	return 1_000_000
}()

// share notes the CPU the loop runs on, and yields it if another loop last
// noted the same one without having offered to sleep since: that loop is
// waiting in this CPU's run queue.
func (l *Loop) share() {
	l.rested = l.now
	var got uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&got)), 0, 0); errno != 0 {
		return
	}
	cpu := int32(got)
	l.cpu.Store(cpu)
	for _, o := range running() {
		if o != l && o.cpu.Load() == cpu {
			l.cpuYields++
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			// Its millisecond counts from when it has the CPU again:
			// counted from the yield, it would hand it back at once.
			l.rested = Clock()
			return
		}
	}
}

// procs holds the running blocking loops, each with a P of its own (holdP),
// and GOMAXPROCS before the first of them started. The list is a copy made
// on each change, read without the lock by share.
var procs struct {
	sync.Mutex
	loops atomic.Pointer[[]*Loop]
	base  int
}

// running is the list of running blocking loops (nil before the first).
func running() []*Loop {
	if p := procs.loops.Load(); p != nil {
		return *p
	}
	return nil
}

// holdP adds l to the running loops and a P for it: with GOMAXPROCS loops
// each holding one, nothing else would run.
func holdP(l *Loop) {
	procs.Lock()
	defer procs.Unlock()
	loops := running()
	if len(loops) == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	loops = append(slices.Clip(loops), l)
	procs.loops.Store(&loops)
	runtime.GOMAXPROCS(procs.base + len(loops))
}

// releaseP takes a stopped loop and its P away.
func releaseP(l *Loop) {
	procs.Lock()
	defer procs.Unlock()
	var loops []*Loop
	for _, o := range running() {
		if o != l {
			loops = append(loops, o)
		}
	}
	procs.loops.Store(&loops)
	runtime.GOMAXPROCS(procs.base + len(loops))
}

// Procs is GOMAXPROCS without the Ps that running loops hold: the Ps of the
// rest of the process, from which a caller sizes its loops.
func Procs() int {
	procs.Lock()
	defer procs.Unlock()
	if len(running()) == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return procs.base
}

// runBlocking is Run for a blocking loop.
func (l *Loop) runBlocking() {
	defer close(l.done)
	defer unix.Close(l.epfd)
	l.cpu.Store(-1) // before holdP makes it visible to the others' share
	l.rested = Clock()
	holdP(l)
	defer releaseP(l)
	idle := false
	spin := 0 // polls left before sleeping (spinPolls)
	for !l.stopped {
		var r uintptr
		var errno unix.Errno
		wait := l.waitMs()
		if spin > 0 && wait != 0 {
			spin--
			wait = 0
			l.spins++
		}
		// Offers to sleep: if it has nothing, the kernel runs the others.
		offered := wait != 0
		if offered {
			l.cpu.Store(-1)
		}
		if idle {
			r, _, errno = unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
				uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), uintptr(wait), 0, 0)
		} else {
			if wait < 0 || wait > rawWait {
				wait = rawWait
			}
			r, _, errno = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
				uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), uintptr(wait), 0, 0)
		}
		if errno == unix.EINTR {
			// Most likely the runtime's preemption signal (a stop-the-world,
			// or a wait longer than yieldEvery): yield, so that the
			// stop-the-world or another goroutine queued on this P gets it
			// (the raw call above has no preemption check of its own).
			l.eintrs++
			l.yield(Clock())
			continue
		}
		if errno != 0 {
			// Only EBADF/EFAULT/EINVAL, none of which a retry fixes.
			panic(fmt.Sprintf("loop: epoll_wait: %v", errno))
		}
		l.waits++
		n := int(r)
		// Idle from a raw wait that ran its course to the first event.
		idle = n == 0 && (idle || wait == rawWait)
		if n > 0 {
			l.serve(n)
			spin = l.spinPolls
		} else {
			l.now = Clock()
		}
		if offered {
			l.rested = l.now // its time on the CPU counts from the wake
		}
		l.runTimers()
		if l.now-l.yielded >= yieldEvery {
			l.yield(l.now)
		}
		if shareEvery > 0 && l.now-l.rested >= shareEvery {
			l.share()
		}
	}
}

// yield gives the runtime its turn on the loop's own P (goyield) and
// restarts the yieldEvery count from now.
func (l *Loop) yield(now int64) {
	l.yielded = now
	goyield()
}

// waitMs is how long epoll_wait may wait: until the next timer, rounded up
// to a millisecond; -1 (no limit) without one.
func (l *Loop) waitMs() int {
	if len(l.timers) == 0 {
		return -1
	}
	d := l.timers[0].when - Clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+999_999)/1_000_000, 1<<30))
}
