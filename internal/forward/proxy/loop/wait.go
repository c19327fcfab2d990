//go:build linux

package loop

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
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

// maxWait bounds one epoll_wait (milliseconds). A loop with nothing to do
// is woken by Go's preemption signal when the runtime needs every P to
// stop (a garbage collection's stop-the-world), whose EINTR brings it to a
// safe point; the bound covers GODEBUG=asyncpreemptoff=1, where no signal
// comes. Ten wakeups a second of an idle loop cost nothing measurable.
const maxWait = 100

// procs counts the Ps the blocking loops hold.
var procs struct {
	sync.Mutex
	held int // loops running in blocking mode
	base int // GOMAXPROCS before the first of them started
}

// holdP adds a P for a blocking loop that starts: with GOMAXPROCS loops
// each holding one, nothing else would run.
func holdP() {
	procs.Lock()
	defer procs.Unlock()
	if procs.held == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.held++
	runtime.GOMAXPROCS(procs.base + procs.held)
}

// releaseP gives back a stopped loop's P.
func releaseP() {
	procs.Lock()
	defer procs.Unlock()
	procs.held--
	runtime.GOMAXPROCS(procs.base + procs.held)
}

// Procs is GOMAXPROCS without the Ps that running loops hold: the Ps of the
// rest of the process, from which a caller sizes its loops.
func Procs() int {
	procs.Lock()
	defer procs.Unlock()
	if procs.held == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return procs.base
}

// runBlocking is Run for a blocking loop.
func (l *Loop) runBlocking() {
	defer close(l.done)
	defer unix.Close(l.epfd)
	holdP()
	defer releaseP()
	for !l.stopped {
		r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
			uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), uintptr(l.waitMs()), 0, 0)
		if errno == unix.EINTR {
			// Most likely the runtime's preemption signal: yield, so that a
			// stop-the-world or another goroutine queued on this P gets it
			// (the raw call above has no preemption check of its own).
			runtime.Gosched()
			continue
		}
		if errno != 0 {
			// Only EBADF/EFAULT/EINVAL, none of which a retry fixes.
			panic(fmt.Sprintf("loop: epoll_wait: %v", errno))
		}
		if n := int(r); n > 0 {
			l.serve(n)
		} else {
			l.now = Clock()
		}
		l.runTimers()
	}
}

// waitMs is how long epoll_wait may wait: until the next timer, rounded up
// to a millisecond, at most maxWait.
func (l *Loop) waitMs() int {
	if len(l.timers) == 0 {
		return maxWait
	}
	d := l.timers[0].when - Clock()
	if d <= 0 {
		return 0
	}
	return int(min((d+999_999)/1_000_000, maxWait))
}
