//go:build linux

package loop

import (
	"bytes"
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
// one CPU"). Yielding, they take turns every shareEvery. The loop yields
// only to one of its own loops waiting on its CPU (the kernel serves other
// tasks by waking them, or at its tick). Turns of 0.5 ms rather than 1: on
// a machine slow enough that the loops share a CPU most of the time,
// keep-alive p99 0.79x that of 1 ms turns (better in 7 of 8 paired rounds
// of bench/loopab.sh), the same otherwise; 0.25 and 0.1 ms cost 3% more CPU
// per request for a longer p99. GOVS_LOOP_SHARE sets it in µs (0: never;
// 100 to 100000).
const shareEnv = "GOVS_LOOP_SHARE"

var shareEvery = func() int64 {
	v := strings.TrimSpace(os.Getenv(shareEnv))
	if n, err := strconv.Atoi(v); err == nil && (n == 0 || n >= 100 && n <= 100_000) {
		return int64(n) * 1000
	}
	return 500_000
}()

// slept is how long a wait that offered to sleep must have lasted for the
// loop to have let go of its CPU: one that found events at once (a few µs)
// did not, and its turn goes on. Counted from every offer, the turn of a
// loop that never polls after a batch (GOVS_LOOP_SPIN=0: each wait offers,
// and under load each finds events) never reached shareEvery, and two such
// loops on one CPU took turns at the tick again: 2-5 ms, 250-490 times per
// 5 s keep-alive round of bench/run.sh (p99 up to 6.3 ms).
const slept = 50_000

// peekEnv set to 0 leaves out share's look at a loop that slept (waitsOn),
// for an A/B of what it buys.
const peekEnv = "GOVS_LOOP_PEEK"

var peekOff = strings.TrimSpace(os.Getenv(peekEnv)) == "0"

// share notes the CPU the loop runs on, and yields it to another loop
// waiting there. A loop that noted the same CPU without having offered to
// sleep since is waiting in its run queue: it has not run for a check of
// its own. A loop that offered to sleep since its note may have been woken
// onto this CPU and be waiting there too, and then no note says so (it
// cannot write one before it runs): on 2 cores under run.sh's load, such
// woken loops waited 2-5 ms for a busy loop's tick 52-82 times per 5 s
// round. So share also asks the kernel about one such loop a check (its
// thread's state and CPU in /proc, one pread of 2.6 µs), taking them in
// turn: on 2 cores the one other loop, at most 0.5% of a busy loop's time.
func (l *Loop) share() {
	l.rested = l.now
	var got uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&got)), 0, 0); errno != 0 {
		return
	}
	cpu := int32(got)
	l.cpu.Store(cpu)
	loops := running()
	var slept *Loop
	for i := range loops {
		o := loops[(l.turn+i)%len(loops)]
		if o == l {
			continue
		}
		switch o.cpu.Load() {
		case cpu:
			l.giveWay()
			return
		case -1:
			if slept == nil {
				slept = o
			}
		}
	}
	if slept != nil && !peekOff {
		l.turn++
		if l.waitsOn(slept, cpu) {
			l.giveWay()
		}
	}
}

// giveWay yields the CPU to a loop waiting for it.
func (l *Loop) giveWay() {
	l.cpuYields++
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	// Its millisecond counts from when it has the CPU again: counted from
	// the yield, it would hand it back at once.
	l.rested = Clock()
}

// peek is an open /proc stat file of another loop's thread (fd -1: it
// could not be opened).
type peek struct {
	tid int32
	fd  int
}

// waitsOn tells whether o's thread is runnable on cpu, as the kernel has it
// now: the caller runs on cpu, so o waits for it.
func (l *Loop) waitsOn(o *Loop, cpu int32) bool {
	tid := o.tid.Load()
	if tid == 0 {
		return false
	}
	i := slices.IndexFunc(l.peeks, func(p peek) bool { return p.tid == tid })
	if i < 0 {
		// A failed open is kept too (fd -1), not retried each check: no
		// /proc here, or the thread has just gone (the loop then says
		// which thread runs it now).
		fd, err := unix.Open("/proc/self/task/"+strconv.Itoa(int(tid))+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fd = -1
		}
		l.prunePeeks()
		l.peeks = append(l.peeks, peek{tid: tid, fd: fd})
		i = len(l.peeks) - 1
	}
	fd := l.peeks[i].fd
	if fd < 0 {
		return false
	}
	// Raw, as the loop's other calls: it does not block. A line is about
	// 300 bytes; its field 39 lies within 1 KiB even with every number at
	// its longest.
	var buf [1024]byte
	n, _, errno := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if errno != 0 {
		return false
	}
	state, at, ok := taskState(buf[:n])
	return ok && state == 'R' && at == cpu
}

// prunePeeks closes the stat files of threads no running loop is on.
func (l *Loop) prunePeeks() {
	loops := running()
	kept := l.peeks[:0]
	for _, p := range l.peeks {
		if slices.ContainsFunc(loops, func(o *Loop) bool { return o.tid.Load() == p.tid }) {
			kept = append(kept, p)
		} else if p.fd >= 0 {
			unix.Close(p.fd)
		}
	}
	l.peeks = kept
}

// closePeeks closes every stat file the loop holds (it stops).
func (l *Loop) closePeeks() {
	for _, p := range l.peeks {
		if p.fd >= 0 {
			unix.Close(p.fd)
		}
	}
	l.peeks = nil
}

// taskState reads a /proc/PID/stat line: the state (field 3) and the CPU
// the task last ran or waits on (field 39, "processor"). The command name
// (field 2) may hold spaces and parentheses: fields count from the last ')'.
func taskState(b []byte) (state byte, cpu int32, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	state = b[i+2]
	field := 3
	for j := i + 3; j < len(b); j++ {
		if b[j] != ' ' {
			continue
		}
		field++
		if field < 39 {
			continue
		}
		v := int32(0)
		k := j + 1
		for ; k < len(b) && b[k] >= '0' && b[k] <= '9'; k++ {
			v = v*10 + int32(b[k]-'0')
			if v > 1<<20 {
				return 0, 0, false
			}
		}
		if k == j+1 {
			return 0, 0, false
		}
		return state, v, true
	}
	return 0, 0, false
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
	l.tid.Store(int32(unix.Gettid()))
	l.rested = Clock()
	holdP(l)
	defer releaseP(l)
	defer l.closePeeks()
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
		var asked int64
		if offered {
			l.cpu.Store(-1)
			asked = Clock()
		}
		if idle {
			r, _, errno = unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
				uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), uintptr(wait), 0, 0)
			// Back from an ordinary system call, the loop may run on
			// another thread (the runtime may have handed its P on).
			l.tid.Store(int32(unix.Gettid()))
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
		if offered && l.now-asked >= slept {
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
	// Another thread may have taken the goroutine from its P's queue.
	l.tid.Store(int32(unix.Gettid()))
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
