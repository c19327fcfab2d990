package health

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeChecker answers from a function and counts its checks.
type fakeChecker struct {
	calls atomic.Int32
	f     func(ctx context.Context, n int) Result
}

func (c *fakeChecker) Check(ctx context.Context) Result { return c.f(ctx, int(c.calls.Add(1))) }

// collect gathers reports.
type collect struct {
	mu  sync.Mutex
	got []Result
}

func (c *collect) report(r Result) { c.mu.Lock(); c.got = append(c.got, r); c.mu.Unlock() }
func (c *collect) n() int          { c.mu.Lock(); defer c.mu.Unlock(); return len(c.got) }
func (c *collect) all() []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Result(nil), c.got...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: a loaded machine
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRunnerReportsEachInterval(t *testing.T) {
	r := NewRunner(0)
	defer r.Close()
	c := &fakeChecker{f: func(context.Context, int) Result { return Result{OK: true, Msg: "fine"} }}
	var got collect
	start := time.Now()
	j := r.Start(c, "fake", Timing{Interval: 20 * time.Millisecond, Warmup: -1}, got.report)
	waitUntil(t, "5 reports", func() bool { return got.n() >= 5 })
	if el := time.Since(start); el < 4*19*time.Millisecond {
		t.Fatalf("5 checks 20ms apart took only %s", el)
	}
	for _, res := range got.all() {
		if res.Type != "fake" || res.At.IsZero() || res.Latency < 0 || !res.OK {
			t.Fatalf("report %+v", res)
		}
	}
	j.Stop()
	n := c.calls.Load()
	time.Sleep(60 * time.Millisecond)
	if c.calls.Load() > n+1 || r.Len() != 0 {
		t.Fatalf("checks went on after Stop: %d then %d", n, c.calls.Load())
	}
}

func TestRunnerRetries(t *testing.T) {
	r := NewRunner(0)
	defer r.Close()
	// Fails twice, then passes, and so on: with retry 2 every report passes.
	flaky := &fakeChecker{f: func(_ context.Context, n int) Result { return Result{OK: n%3 == 0} }}
	var got collect
	r.Start(flaky, "fake", Timing{Interval: time.Hour, Retry: 2, DelayBeforeRetry: 5 * time.Millisecond, Warmup: -1}, got.report)
	waitUntil(t, "a report", func() bool { return got.n() == 1 })
	if res := got.all()[0]; !res.OK || flaky.calls.Load() != 3 {
		t.Fatalf("report %+v after %d tries, want a pass after 3", res, flaky.calls.Load())
	}
	// Always failing: one report per retry+1 tries, saying so.
	down := &fakeChecker{f: func(context.Context, int) Result { return Result{Msg: "refused"} }}
	var bad collect
	r.Start(down, "fake", Timing{Interval: time.Hour, Retry: 2, DelayBeforeRetry: 5 * time.Millisecond, Warmup: -1}, bad.report)
	waitUntil(t, "a report", func() bool { return bad.n() == 1 })
	if res := bad.all()[0]; res.OK || res.Msg != "refused (after 2 retries)" || down.calls.Load() != 3 {
		t.Fatalf("report %+v after %d tries", res, down.calls.Load())
	}
}

func TestRunnerBoundsChecksInFlight(t *testing.T) {
	r := NewRunner(3)
	defer r.Close()
	var now, peak atomic.Int32
	release := make(chan struct{})
	c := &fakeChecker{f: func(ctx context.Context, _ int) Result {
		n := now.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		now.Add(-1)
		return Result{OK: true}
	}}
	var got collect
	for i := 0; i < 10; i++ {
		r.Start(c, "fake", Timing{Interval: time.Hour, Timeout: 5 * time.Second, Warmup: -1}, got.report)
	}
	waitUntil(t, "3 checks in flight", func() bool { return now.Load() == 3 })
	time.Sleep(20 * time.Millisecond)
	if peak.Load() != 3 {
		t.Fatalf("peak %d checks in flight, want 3", peak.Load())
	}
	close(release)
	waitUntil(t, "10 reports", func() bool { return got.n() == 10 })
}

func TestRunnerTimeoutAndClose(t *testing.T) {
	r := NewRunner(0)
	hang := &fakeChecker{f: func(ctx context.Context, _ int) Result {
		<-ctx.Done()
		return Result{Msg: "timed out"}
	}}
	var got collect
	r.Start(hang, "fake", Timing{Interval: time.Hour, Timeout: 30 * time.Millisecond, Warmup: -1}, got.report)
	waitUntil(t, "the timed out check", func() bool { return got.n() == 1 })
	if res := got.all()[0]; res.OK || res.Latency < 30*time.Millisecond || res.Latency > 2*time.Second {
		t.Fatalf("report %+v", res)
	}
	// Close cancels a check in flight and waits for it.
	r.Start(hang, "fake", Timing{Interval: time.Hour, Timeout: time.Hour, Warmup: -1}, got.report)
	waitUntil(t, "the second check to start", func() bool { return hang.calls.Load() == 2 })
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the check in flight")
	}
	if got.n() != 1 {
		t.Fatalf("a check cancelled by Close was reported: %+v", got.all())
	}
	if j := r.Start(hang, "fake", Timing{Interval: time.Millisecond}, got.report); j == nil || r.Len() != 0 {
		t.Fatal("a closed runner scheduled a job")
	}
}

func TestRunnerSpreadsFirstChecks(t *testing.T) {
	r := NewRunner(0)
	defer r.Close()
	var mu sync.Mutex
	var firsts []time.Time
	start := time.Now()
	for i := 0; i < 50; i++ {
		var once sync.Once
		c := &fakeChecker{f: func(context.Context, int) Result {
			once.Do(func() { mu.Lock(); firsts = append(firsts, time.Now()); mu.Unlock() })
			return Result{OK: true}
		}}
		r.Start(c, "fake", Timing{Interval: 200 * time.Millisecond}, func(Result) {})
	}
	waitUntil(t, "50 first checks", func() bool { mu.Lock(); defer mu.Unlock(); return len(firsts) == 50 })
	early := 0
	for _, f := range firsts {
		if f.Sub(start) < 100*time.Millisecond {
			early++
		}
	}
	if early == 0 || early == 50 {
		t.Fatalf("%d of 50 first checks in the first half of the interval: not spread", early)
	}
}

func TestJitter(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if d := jitter(time.Second); d < 950*time.Millisecond || d > 1050*time.Millisecond {
			t.Fatalf("jitter(1s) = %s", d)
		}
	}
	if !strings.Contains(Spec{Type: "x"}.Timing().Warmup.String(), "0s") {
		t.Fatal("default warmup")
	}
}

// fakeAsync is an asynchronous check whose answers the test gives.
type fakeAsync struct {
	begun    chan [2]any // job, gen
	timeouts atomic.Int32
}

func (f *fakeAsync) Check(context.Context) Result { panic("an asynchronous check ran as a Checker") }
func (f *fakeAsync) ready() bool                  { return true }
func (f *fakeAsync) begin(j *Job, gen uint32, _ *synBatch) error {
	f.begun <- [2]any{j, gen}
	return nil
}
func (f *fakeAsync) cancel(_ *Job, timedOut bool) {
	if timedOut {
		f.timeouts.Add(1)
	}
}

// TestRunnerAsync drives the runner's asynchronous path (the SYN probe's)
// without a socket: an answer is reported, a stale one (an earlier try's)
// and a late one (after the timeout) are dropped, a silent check is
// reported down at its timeout, and a failure is retried before it is
// reported.
func TestRunnerAsync(t *testing.T) {
	r := NewRunner(0)
	defer r.Close()
	f := &fakeAsync{begun: make(chan [2]any, 16)}
	var got collect
	r.Start(f, "fake", Timing{Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond, Retry: 1,
		DelayBeforeRetry: time.Millisecond, Warmup: -1}, got.report)
	next := func() (*Job, uint32) {
		t.Helper()
		select {
		case b := <-f.begun:
			return b[0].(*Job), b[1].(uint32)
		case <-time.After(5 * time.Second):
			t.Fatal("the check did not start")
		}
		return nil, 0
	}
	j, gen := next()
	r.complete(j, gen-1, Result{Msg: "stale"}) // an earlier try's: dropped
	r.complete(j, gen, Result{OK: true, Msg: "syn-ack"})
	r.complete(j, gen, Result{Msg: "twice"}) // answered already: dropped
	waitUntil(t, "the answer's report", func() bool { return got.n() == 1 })
	if res := got.all()[0]; !res.OK || res.Msg != "syn-ack" || res.Type != "fake" || res.At.IsZero() {
		t.Fatalf("report %+v", res)
	}

	// A failure is retried once (Retry 1), then reported.
	j, gen = next()
	r.complete(j, gen, Result{Msg: "connect: connection refused"})
	j, gen = next()
	r.complete(j, gen, Result{Msg: "connect: connection refused"})
	waitUntil(t, "the failure's report", func() bool { return got.n() == 2 })
	if res := got.all()[1]; res.OK || !strings.Contains(res.Msg, "after 1 retries") {
		t.Fatalf("report %+v", res)
	}

	// No answer: the try and its retry time out, then down is reported;
	// their answers, late, are dropped.
	j, gen = next()
	j2, gen2 := next()
	waitUntil(t, "the timeout's report", func() bool { return got.n() == 3 })
	r.complete(j, gen, Result{OK: true})
	r.complete(j2, gen2, Result{OK: true})
	if res := got.all()[2]; res.OK || !strings.Contains(res.Msg, "timed out") {
		t.Fatalf("report %+v", res)
	}
	if f.timeouts.Load() != 2 {
		t.Fatalf("%d probes forgotten at their timeout, want 2", f.timeouts.Load())
	}
	time.Sleep(30 * time.Millisecond)
	for _, res := range got.all()[3:] {
		if res.OK {
			t.Fatalf("a late answer was reported: %+v", res)
		}
	}
}
