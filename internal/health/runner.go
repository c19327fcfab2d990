package health

import (
	"container/heap"
	"context"
	"math/rand/v2"
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
// a heap by due time and hands each due check to a Pool of workers, at most
// maxInFlight (started as needed, kept for the runner's life, so a check
// costs no goroutine or stack growth; the same pool design runs the
// director's agent probes); a check's next run is one interval (with a
// little jitter, so checks started together drift apart) after its start.
type Runner struct {
	mu     sync.Mutex
	q      jobQueue
	closed bool
	epoch  time.Time // due times are monotonic durations since epoch

	wake     chan struct{}
	pool     *Pool[*Job] // no queue: a due check waits in the heap's loop for a worker
	ctx      context.Context
	cancel   context.CancelFunc
	loopDone chan struct{}
}

// Job is one real server's scheduled check.
type Job struct {
	r      *Runner
	c      Checker
	typ    string
	t      Timing
	report func(Result)

	// guarded by r.mu
	next     time.Duration // since r.epoch
	index    int           // in the heap, -1 when not queued
	attempt  int
	stopped  bool
	sinceTry time.Duration // first try of the current attempt series
}

// NewRunner starts a runner that runs at most maxInFlight checks at once
// (DefaultMaxInFlight if 0).
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
// the check's goroutine, never two at once for one job. The first check
// runs after a random delay of up to t.Warmup.
func (r *Runner) Start(c Checker, typ string, t Timing, report func(Result)) *Job {
	if t.Interval <= 0 {
		t.Interval = time.Second
	}
	if t.Timeout <= 0 {
		t.Timeout = t.Interval
	}
	j := &Job{r: r, c: c, typ: typ, t: t, report: report, index: -1}
	warm := t.Warmup
	if warm == 0 {
		warm = t.Interval
	}
	j.next = r.now()
	if warm > 0 {
		j.next += rand.N(warm)
	}
	r.mu.Lock()
	if r.closed {
		j.stopped = true
		r.mu.Unlock()
		return j
	}
	heap.Push(&r.q, j)
	r.mu.Unlock()
	r.poke()
	return j
}

// Stop ends the job's checks. A check in progress finishes but is not reported.
func (j *Job) Stop() {
	r := j.r
	r.mu.Lock()
	j.stopped = true
	if j.index >= 0 {
		heap.Remove(&r.q, j.index)
	}
	r.mu.Unlock()
}

// Len is the number of scheduled jobs.
func (r *Runner) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q)
}

// Close stops every job, cancels the checks in progress and waits for them.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	for _, j := range r.q {
		j.stopped, j.index = true, -1
	}
	r.q = nil
	r.mu.Unlock()
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
		r.mu.Lock()
		now := r.now()
		due = due[:0]
		for len(r.q) > 0 && r.q[0].next <= now {
			due = append(due, heap.Pop(&r.q).(*Job))
		}
		wait := time.Hour
		if len(r.q) > 0 {
			wait = r.q[0].next - now
		}
		r.mu.Unlock()
		for i, j := range due {
			if !r.dispatch(j) {
				return
			}
			due[i] = nil
		}
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

// dispatch hands j to an idle worker, or to a new one while there are
// fewer than max, or else waits for one: checks then run late rather than
// too many at once. It is false when the runner closes.
func (r *Runner) dispatch(j *Job) bool { return r.pool.Submit(j) }

func (r *Runner) run(parent context.Context, j *Job) {
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
	if !res.OK && j.attempt < j.t.Retry {
		if j.attempt == 0 {
			j.sinceTry = startMono
		}
		j.attempt++
		j.push(r.now() + j.t.DelayBeforeRetry)
		r.mu.Unlock()
		r.poke()
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
	if !j.stopped && !r.closed {
		next := first + jitter(j.t.Interval)
		if now := r.now(); next < now {
			next = now
		}
		j.push(next)
	}
	r.mu.Unlock()
	r.poke()
}

// push queues j for at; r.mu held.
func (j *Job) push(at time.Duration) {
	j.next = at
	heap.Push(&j.r.q, j)
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

// jobQueue is a min-heap of jobs by due time.
type jobQueue []*Job

func (q jobQueue) Len() int           { return len(q) }
func (q jobQueue) Less(a, b int) bool { return q[a].next < q[b].next }
func (q jobQueue) Swap(a, b int) {
	q[a], q[b] = q[b], q[a]
	q[a].index, q[b].index = a, b
}
func (q *jobQueue) Push(x any) {
	j := x.(*Job)
	j.index = len(*q)
	*q = append(*q, j)
}
func (q *jobQueue) Pop() any {
	old := *q
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*q = old[:len(old)-1]
	return j
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
