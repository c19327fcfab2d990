package health

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Timing is when a check runs.
type Timing struct {
	Interval time.Duration
	Timeout  time.Duration
	// Retry and DelayBeforeRetry are keepalived's: a failed check is tried
	// again Retry times, DelayBeforeRetry apart, before its failure is
	// reported.
	Retry            int
	DelayBeforeRetry time.Duration
	// Warmup bounds the random delay before the first check (keepalived's
	// warmup): 0 means Interval, negative means none.
	Warmup time.Duration
}

// Timing returns the spec's timing.
func (s Spec) Timing() Timing {
	return Timing{Interval: s.Interval, Timeout: s.Timeout, Retry: s.Retry, DelayBeforeRetry: s.DelayBeforeRetry}
}

// DefaultMaxInFlight bounds the checks a Runner runs at once, and so the
// sockets and processes they hold.
const DefaultMaxInFlight = 256

// Runner runs the checks of many real servers. One goroutine keeps them in
// a timer wheel (wheel.go) by due time, wakes once per tick that has due
// checks, and starts each: a check that waits for its answer without a
// goroutine (the tcp check's SYN probe, syn.go) it starts itself, and
// reads its answer itself too (each tick while probes are out, from the
// probers' sockets, synread.go), or its timeout comes through the same wheel;
// any other check goes to a Pool of workers, at most maxInFlight (started
// as needed, kept for the runner's life, so a check costs no goroutine or
// stack growth; the same pool design runs the director's agent probes). A
// check's next run is one interval (with a little jitter, so checks
// started together drift apart) after its start. There is no timer per
// check: one timer, the loop's, for all of them.
type Runner struct {
	mu     sync.Mutex
	w      wheel
	closed bool
	epoch  time.Time // due times are monotonic durations since epoch

	// sleepTick is the tick the loop sleeps until (math.MaxInt64: no
	// timer; 0: awake): a job queued earlier wakes it, a later one needs
	// no wake-up, so a finished check costs the loop nothing.
	sleepTick int64
	wake      chan struct{}
	pool      *Pool[*Job] // no queue: a due check waits in the loop for a worker
	ctx       context.Context
	cancel    context.CancelFunc
	loopDone  chan struct{}
	syns      synBatch // the loop's: SYNs staged by dispatch, sent by flush

	// inflight counts the asynchronous checks in flight (r.mu): while
	// there are any, the loop looks at the probers' sockets for answers.
	inflight int
	// The loop's alone: the probers its SYNs went out on (it reads their
	// answers), its reading buffers, and the ticks to the next look at
	// the sockets while probes are out and nothing else is due: one tick
	// after a send or an answer, twice as long after each look that found
	// nothing (a server that takes its time, or none: its timeout ends it).
	polled   []*synProber
	rb       *recvBatch
	pollWait int64
}

// maxPollWait bounds the ticks between two looks at the probers' sockets
// while probes are out (32 ticks: 320 ms).
const maxPollWait = 32

// Job is one real server's scheduled check.
type Job struct {
	r      *Runner
	c      Checker
	async  asyncChecker // c, when it can run without a goroutine; else nil
	typ    string
	t      Timing
	report func(Result)

	// guarded by r.mu
	due      int64 // wheel tick
	slot     int32 // in the wheel, -1 when not queued
	pos      int32
	attempt  int
	stopped  bool
	sinceTry time.Duration // first try of the current attempt series
	// An asynchronous check in flight: it sits in the wheel at its
	// deadline; gen tells its answer from a late one of an earlier try.
	inflight bool
	gen      uint32
	sentAt   time.Time
	sentMono time.Duration
	timedOut bool // handed to the pool to report its timeout

	// guarded by the prober's mu (syn.go)
	pkey probeKey
	pset bool
}

// NewRunner starts a runner that runs at most maxInFlight checks at once
// on its workers (DefaultMaxInFlight if 0); asynchronous checks in flight
// hold no worker and are not counted.
func NewRunner(maxInFlight int) *Runner {
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{
		wake: make(chan struct{}, 1), epoch: time.Now(),
		ctx: ctx, cancel: cancel, loopDone: make(chan struct{}),
	}
	r.pool = NewPool(ctx, maxInFlight, 0, 0, r.run)
	go r.loop()
	return r
}

// Start schedules c, a check of type typ; report receives each result, on
// a goroutine of the runner's, never two at once for one job. The first
// check runs after a random delay of up to t.Warmup.
func (r *Runner) Start(c Checker, typ string, t Timing, report func(Result)) *Job {
	if t.Interval <= 0 {
		t.Interval = time.Second
	}
	if t.Timeout <= 0 {
		t.Timeout = t.Interval
	}
	j := &Job{r: r, c: c, typ: typ, t: t, report: report, slot: -1, pos: -1}
	if a, ok := c.(asyncChecker); ok {
		j.async = a
	}
	warm := t.Warmup
	if warm == 0 {
		warm = t.Interval
	}
	next := r.now()
	if warm > 0 {
		next += rand.N(warm)
	}
	r.mu.Lock()
	if r.closed {
		j.stopped = true
		r.mu.Unlock()
		return j
	}
	j.push(next)
	r.mu.Unlock()
	return j
}

// Stop ends the job's checks. A check in progress finishes but is not reported.
func (j *Job) Stop() {
	r := j.r
	r.mu.Lock()
	j.stopped = true
	r.w.remove(j)
	inflight := j.inflight
	if inflight {
		j.inflight = false
		r.inflight--
	}
	r.mu.Unlock()
	if inflight {
		j.async.cancel(j, false)
	}
}

// Len is the number of scheduled jobs (an asynchronous check in flight
// counts: it waits in the wheel for its timeout).
func (r *Runner) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w.len()
}

// Close stops every job, cancels the checks in progress and waits for them.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	all := r.w.drain(nil)
	var cancel []*Job
	for _, j := range all {
		j.stopped = true
		if j.inflight {
			j.inflight = false
			cancel = append(cancel, j)
		}
	}
	r.inflight = 0
	r.mu.Unlock()
	for _, j := range cancel {
		j.async.cancel(j, false)
	}
	r.cancel()
	<-r.loopDone
	r.pool.Close()
}

func (r *Runner) now() time.Duration { return time.Since(r.epoch) }

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Runner) loop() {
	defer close(r.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []*Job
	for {
		// Answers first: one that came before its probe's timeout is the
		// probe's answer, however late the loop looks.
		read := r.poll()
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		wall := time.Now()
		now := wall.Sub(r.epoch)
		tick := tickOf(now)
		due = r.w.advance(tick, due[:0])
		for _, j := range due {
			if j.inflight { // an asynchronous check's timeout
				j.inflight, j.timedOut = false, true
				r.inflight--
			}
		}
		wait := time.Hour
		r.sleepTick = math.MaxInt64
		if t, ok := r.w.next(tick); ok {
			wait = time.Duration(t)*wheelTick - now
			r.sleepTick = t
		}
		if r.inflight > 0 && len(r.polled) > 0 {
			if read > 0 {
				r.pollWait = 1
			} else if r.pollWait < maxPollWait {
				r.pollWait = max(1, 2*r.pollWait)
			}
			if t := tick + r.pollWait; t < r.sleepTick {
				wait = time.Duration(t)*wheelTick - now
				r.sleepTick = t
			}
		}
		if len(due) > 0 {
			r.sleepTick = 0 // looks again at once
		}
		r.mu.Unlock()
		for i, j := range due {
			if !r.dispatch(j, wall) {
				return
			}
			due[i] = nil
		}
		r.flush()
		if len(due) > 0 {
			continue // time passed while starting them: look again
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-r.wake:
		case <-r.ctx.Done():
			return
		}
	}
}

// poll reads the answers queued on the probers the loop's SYNs went out on.
func (r *Runner) poll() int {
	n := 0
	for _, p := range r.polled {
		n += p.poll(r.rb)
	}
	return n
}

// dispatch starts j: an asynchronous check here, anything else (and a
// timeout to report) on a worker: an idle one, or a new one while there
// are fewer than max, or else it waits for one: checks then run late
// rather than too many at once. It is false when the runner closes.
func (r *Runner) dispatch(j *Job, wall time.Time) bool {
	if j.async != nil && j.async.ready() {
		r.mu.Lock()
		if j.stopped || r.closed || j.timedOut {
			stopped := j.stopped || r.closed
			r.mu.Unlock()
			if stopped {
				return true
			}
			j.async.cancel(j, true)
			return r.pool.Submit(j) // report the timeout
		}
		now := wall.Sub(r.epoch)
		j.gen++
		j.inflight, j.sentAt, j.sentMono = true, wall, now
		r.inflight++
		j.r.w.add(j, tickOf(now+j.t.Timeout))
		gen := j.gen
		r.mu.Unlock()
		if err := j.async.begin(j, gen, &r.syns); err != nil {
			r.complete(j, gen, failErr(r.ctx, "probe", err))
		}
		if len(r.syns.ents) >= maxSYNBatch {
			r.flush()
		}
		return true
	}
	r.flush() // Submit may wait for a worker: the SYNs go first
	return r.pool.Submit(j)
}

// maxSYNBatch bounds the SYNs of one sendmmsg.
const maxSYNBatch = 256

// flush sends the SYNs staged by dispatch, and notes their probers: the
// loop reads their answers.
func (r *Runner) flush() {
	if len(r.syns.ents) == 0 {
		return
	}
	var last *synProber
	for i := range r.syns.ents {
		if p := r.syns.ents[i].p; p != last {
			last = p
			if !slices.Contains(r.polled, p) {
				r.polled = append(r.polled, p)
				if r.rb == nil {
					r.rb = newRecvBatch(recvBatchSize)
				}
			}
		}
	}
	r.syns.flush(func(j *Job, gen uint32, err error) { r.complete(j, gen, failErr(r.ctx, "probe", err)) })
	r.pollWait = 0 // look for their answers at the next tick
}

// complete is the answer of an asynchronous check (try gen of job j)
// now; a late one (timed out, stopped, an earlier try's) is dropped.
func (r *Runner) complete(j *Job, gen uint32, res Result) { r.answer(j, gen, res, time.Time{}) }

// answer is complete for an answer that arrived at at (the kernel's
// stamp; zero: now): the check's latency is the time from its send.
func (r *Runner) answer(j *Job, gen uint32, res Result, at time.Time) {
	r.mu.Lock()
	if !j.inflight || j.gen != gen || j.stopped || r.closed {
		r.mu.Unlock()
		return
	}
	j.inflight = false
	r.inflight--
	r.w.remove(j)
	lat := time.Since(j.sentAt)
	if !at.IsZero() {
		// Wall clocks: the stamp has no monotonic reading. A step of
		// the clock between send and answer is bounded by what the
		// monotonic clock saw.
		lat = min(max(at.Sub(j.sentAt), 0), lat)
	}
	res.Type, res.At, res.Latency = j.typ, j.sentAt, lat
	r.finishLocked(j, res, j.sentMono)
}

func (r *Runner) run(parent context.Context, j *Job) {
	r.mu.Lock()
	if j.timedOut {
		j.timedOut = false
		res := Result{Msg: "connect: timed out", Type: j.typ, At: j.sentAt, Latency: j.t.Timeout}
		if j.stopped || r.closed {
			r.mu.Unlock()
			return
		}
		r.finishLocked(j, res, j.sentMono)
		return
	}
	r.mu.Unlock()
	start := time.Now()
	startMono := r.now()
	ctx := &checkCtx{parent: parent, deadline: start.Add(j.t.Timeout)}
	res := j.c.Check(ctx)
	ctx.release()
	res.Type, res.At, res.Latency = j.typ, start, time.Since(start)

	r.mu.Lock()
	if j.stopped || r.closed {
		r.mu.Unlock()
		return
	}
	r.finishLocked(j, res, startMono)
}

// finishLocked retries a failed check, or reports res and schedules the
// next check; it is called with r.mu held and releases it.
func (r *Runner) finishLocked(j *Job, res Result, startMono time.Duration) {
	if !res.OK && j.attempt < j.t.Retry {
		if j.attempt == 0 {
			j.sinceTry = startMono
		}
		j.attempt++
		j.push(r.now() + j.t.DelayBeforeRetry)
		r.mu.Unlock()
		return
	}
	first := startMono
	if j.attempt > 0 {
		first = j.sinceTry
		if !res.OK {
			res.Msg += " (after " + itoa(j.attempt) + " retries)"
		}
	}
	j.attempt = 0
	r.mu.Unlock()

	j.report(res)

	r.mu.Lock()
	if !j.stopped && !r.closed && !j.inflight && j.slot < 0 {
		next := first + jitter(j.t.Interval)
		if now := r.now(); next < now {
			next = now
		}
		j.push(next)
	}
	r.mu.Unlock()
}

// push queues j for at, and pokes the loop if it sleeps past that; r.mu
// held.
func (j *Job) push(at time.Duration) {
	r := j.r
	t := tickOf(at)
	r.w.add(j, t)
	if j.due < r.sleepTick {
		r.sleepTick = 0
		r.poke()
	}
}

// jitter spreads d by up to ±5%, so that checks started at the same moment
// drift apart instead of firing together forever.
func jitter(d time.Duration) time.Duration {
	spread := int64(d) / 20
	if spread <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(2*spread+1)-spread)
}

// checkCtx is a check's context: the runner's, with the check's deadline.
// Most checks only read the deadline (the tcp check's fast path), so the
// timer behind Done is made only when someone asks for Done.
type checkCtx struct {
	parent   context.Context
	deadline time.Time
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	made     atomic.Bool
}

func (c *checkCtx) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *checkCtx) Value(key any) any           { return c.parent.Value(key) }

func (c *checkCtx) Done() <-chan struct{} {
	c.once.Do(func() {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		c.made.Store(true)
	})
	return c.ctx.Done()
}

func (c *checkCtx) Err() error {
	if c.made.Load() {
		return c.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *checkCtx) release() {
	if c.made.Load() {
		c.cancel()
	}
}
