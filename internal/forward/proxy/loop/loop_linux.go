package loop

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Handler receives the events of the descriptors registered with it.
type Handler interface {
	// Event is called on the loop's goroutine with the epoll event mask
	// (unix.EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP) of fd.
	Event(fd int, events uint32)
}

// Events every descriptor is registered for, once: edge-triggered reads and
// writes, and the peer's FIN (EPOLLRDHUP) so that a short read that came
// with it is followed by the read that returns EOF.
const registered = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// slot is what the loop knows of a registered descriptor. gen tells a stale
// event (of a descriptor closed in the same batch, its number since reused)
// from a current one: it travels in the event's data.
type slot struct {
	h   Handler
	gen uint32
}

// Loop is one event loop. Create it with New, run it with Run on a
// goroutine of its own, stop it with Stop.
type Loop struct {
	epfd, evfd int
	slots      []slot // by descriptor number
	gen        uint32
	events     []unix.EpollEvent

	mu     sync.Mutex
	tasks  []func()
	spare  []func()
	woken  atomic.Bool // an eventfd write is pending
	closed atomic.Bool // Stop has run: Post refuses

	blocking  bool         // waits in epoll_wait itself (wait.go), not on Go's poller
	waits     int          // epoll_waits that returned (blocking; tests)
	spins     int          // of them, polls after a batch (spinPolls; tests)
	spinPolls int          // spinPolls, per loop for tests
	eintrs    int          // epoll_waits interrupted by a signal (blocking; tests)
	yielded   int64        // loop clock of the last yield (blocking; yieldEvery)
	rested    int64        // loop clock of the last wake or share (blocking; shareEvery)
	cpu       atomic.Int32 // CPU noted by share; -1 after an offer to sleep
	tid       atomic.Int32 // the thread running the loop (blocking; share's peek)
	peeks     []peek       // other loops' stat files this loop reads (share)
	turn      int          // which sleeper share peeks at next
	cpuYields int          // CPUs yielded to another loop (blocking; tests)
	f         *os.File     // epfd, for Go's poller to watch (not blocking)
	timers    timerHeap
	deadline  int64 // of the park, loop clock; -1 for none
	now       int64 // loop clock: nanoseconds since base, read once per wakeup
	stopped   bool
	parked    bool // the last poll found nothing: the loop parked on Go's poller
	noWake    bool // tests: leave out the wake after a park, to measure it
	done      chan struct{}
}

// base is the origin of every loop's clock, so that values from different
// loops compare.
var base = time.Now()

// Clock is the loop clock's reading now, for code off the loop.
func Clock() int64 { return int64(time.Since(base)) }

// New creates a loop: an epoll instance and an eventfd to wake it.
func New() (*Loop, error) { return newLoopWaiting(waitDefault) }

// newLoopWaiting is New with the wait given (wait.go).
func newLoopWaiting(wait int) (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	l := &Loop{epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, 256), done: make(chan struct{}), now: Clock(), deadline: -1,
		blocking: wait == waitBlocking, spinPolls: spinPolls}
	// Parking on Go's poller: non-blocking, so that os.NewFile hands it to
	// the poller. A blocking loop keeps its epoll descriptor away from the
	// poller: watched there, every event of the loop's sockets would also
	// wake the thread blocked in the poller, for nothing.
	if !l.blocking {
		if err := unix.SetNonblock(epfd, true); err != nil {
			unix.Close(epfd)
			unix.Close(evfd)
			return nil, fmt.Errorf("epoll: %w", err)
		}
	}
	// Edge-triggered as everything else: once all is, an epoll_wait that
	// returned fewer events than it could take left none behind, and Go's
	// poller hears of every new one.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	if !l.blocking {
		l.f = os.NewFile(uintptr(epfd), "epoll")
	}
	return l, nil
}

// Now is the loop clock as of the current wakeup (nanoseconds since base):
// one clock read per batch of events, not one per event.
func (l *Loop) Now() int64 { return l.now }

// Register adds fd, edge-triggered for reading and writing, with h as its
// handler. Loop goroutine only (or before Run).
func (l *Loop) Register(fd int, h Handler) error {
	if fd < 0 {
		return errors.New("loop: negative descriptor")
	}
	for fd >= len(l.slots) {
		l.slots = append(l.slots, make([]slot, max(64, len(l.slots)))...)
	}
	l.gen++
	l.slots[fd] = slot{h: h, gen: l.gen}
	ev := unix.EpollEvent{Events: registered, Fd: int32(fd), Pad: int32(l.gen)}
	// Raw, as the loop's other calls: epoll_ctl never blocks, and
	// x/sys/unix's wrapper would tell the scheduler it might.
	if _, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(l.epfd), unix.EPOLL_CTL_ADD, uintptr(fd),
		uintptr(unsafe.Pointer(&ev)), 0, 0); e != 0 {
		l.slots[fd] = slot{}
		return fmt.Errorf("epoll_ctl add: %w", e)
	}
	return nil
}

// Forget drops fd's handler before the caller closes it (closing removes
// it from epoll). Loop goroutine only.
func (l *Loop) Forget(fd int) {
	if fd >= 0 && fd < len(l.slots) {
		l.slots[fd] = slot{}
	}
}

// Post runs fn on the loop's goroutine soon. It reports false, and fn never
// runs, once the loop has stopped. Any goroutine.
func (l *Loop) Post(fn func()) bool {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return false
	}
	l.tasks = append(l.tasks, fn)
	l.mu.Unlock()
	if l.woken.CompareAndSwap(false, true) {
		var one = [8]byte{1}
		// EAGAIN only when the counter is huge: a wakeup is pending anyway.
		unix.RawSyscall(unix.SYS_WRITE, uintptr(l.evfd), uintptr(unsafe.Pointer(&one[0])), 8)
	}
	return true
}

// Run waits for events and serves them until Stop. It returns when the loop
// has stopped; descriptors still registered are left to their owners.
//
// By default the loop blocks in epoll_wait itself, in a raw call, holding
// a P of its own (wait.go). With GOVS_LOOP_WAIT=poller it parks on Go's
// poller instead, sharing the process's Ps: it does not block in
// epoll_wait (a goroutine blocked in an ordinary syscall keeps its P until
// sysmon takes it back, up to 10 ms when the process is quiet, which on a
// small machine starves every other goroutine, the other loops included);
// its epoll descriptor is itself watched by Go's poller: the loop polls it
// without waiting (epoll_wait with timeout 0, raw: no scheduler hand-off)
// and parks like any goroutine waiting for a socket when it is empty; its
// timers are the park's deadline.
func (l *Loop) Run() {
	if l.blocking {
		l.runBlocking()
		return
	}
	defer close(l.done)
	defer l.f.Close()
	rc, err := l.f.SyscallConn()
	if err != nil {
		panic(fmt.Sprintf("loop: epoll descriptor: %v", err))
	}
	for !l.stopped {
		l.setDeadline()
		err := rc.Read(l.poll)
		l.now = Clock()
		l.runTimers()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			panic(fmt.Sprintf("loop: waiting on epoll: %v", err))
		}
	}
}

// poll serves the events ready now; false when there were none (park).
func (l *Loop) poll(uintptr) bool {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd),
			uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
		n := int(r)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			// Only EBADF/EFAULT/EINVAL, none of which a retry fixes.
			panic(fmt.Sprintf("loop: epoll_wait: %v", errno))
		}
		if n == 0 {
			l.parked = !l.stopped
			return l.stopped
		}
		if l.parked && !l.noWake {
			// Back from a park: the thread that ran us was most likely the
			// one blocked in Go's poller, and now none is. Until one is,
			// the other loops' events wait for this batch to end (Go polls
			// from an idle P only when some thread goes looking for work):
			// on 2 cores an idle loop's event waited for the end of another
			// loop's 8 ms batch in 18 of 20 tries (TestCrossLoopWake), and
			// under keep-alive load the two loops took turns on one core,
			// at 0.64-0.87x the goroutine data path's rate. Gosched wakes a
			// thread for an idle P (runtime.wakep), which becomes the
			// poller, as the goroutine data path gets for free by waking
			// many goroutines at once; it costs nothing when no P is idle.
			l.parked = false
			runtime.Gosched()
		}
		l.serve(n)
		return true
	}
}

// serve calls the handlers of the n events in l.events.
func (l *Loop) serve(n int) {
	l.now = Clock()
	for i := 0; i < n; i++ {
		ev := &l.events[i]
		fd := int(ev.Fd)
		if fd == l.evfd {
			l.runTasks()
			continue
		}
		if fd < len(l.slots) {
			if s := l.slots[fd]; s.h != nil && s.gen == uint32(ev.Pad) {
				s.h.Event(fd, ev.Events)
			}
		}
	}
	if n == len(l.events) && n < 4096 {
		l.events = make([]unix.EpollEvent, 2*n)
	}
}

// setDeadline makes the park end at the next timer.
func (l *Loop) setDeadline() {
	var when int64 = -1
	if len(l.timers) > 0 {
		when = l.timers[0].when
	}
	if when == l.deadline {
		return
	}
	l.deadline = when
	if when < 0 {
		l.f.SetReadDeadline(time.Time{})
		return
	}
	l.f.SetReadDeadline(base.Add(time.Duration(when)))
}

func (l *Loop) runTimers() {
	for len(l.timers) > 0 && l.timers[0].when <= l.now {
		t := l.timers[0]
		l.timers.remove(0)
		if t.h != nil {
			t.h.OnTimer()
		} else {
			t.fn()
		}
	}
}

func (l *Loop) runTasks() {
	var buf [8]byte
	unix.RawSyscall(unix.SYS_READ, uintptr(l.evfd), uintptr(unsafe.Pointer(&buf[0])), 8)
	// Cleared before the queue is taken: a Post after this point writes
	// the eventfd again, so no task waits for an unrelated wakeup.
	l.woken.Store(false)
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = l.spare[:0]
	l.mu.Unlock()
	for i, fn := range tasks {
		fn()
		tasks[i] = nil
	}
	l.spare = tasks
}

// Stop ends Run after the tasks already posted, waits for it, and closes
// the loop's own descriptors. Not from the loop's goroutine.
func (l *Loop) Stop() {
	if !l.Post(func() { l.stopped = true }) {
		return
	}
	<-l.done
	l.mu.Lock()
	l.closed.Store(true)
	rest := l.tasks
	l.tasks = nil
	l.mu.Unlock()
	for _, fn := range rest {
		fn() // posted after the stop: run here, the loop is gone
	}
	unix.Close(l.evfd) // Run closed epfd
}
