package director

import (
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

func TestLatencyHistograms(t *testing.T) {
	l := newLatency()
	for _, d := range []time.Duration{200 * time.Microsecond, 500 * time.Microsecond, 3 * time.Millisecond, 20 * time.Second} {
		l.observe(sched.Signal{Kind: sched.ConnectTime, Latency: d})
	}
	l.observe(sched.Signal{Kind: sched.Duration, Latency: 2 * time.Hour})
	l.observe(sched.Signal{Kind: sched.FirstByte, Latency: time.Second}) // not a histogram's
	l.observe(sched.Signal{Kind: sched.HealthLatency, Latency: time.Second})

	c := l.Connect.Snapshot()
	// Buckets are cumulative and inclusive of their upper bound, as
	// Prometheus's are; 20s is above the last bound, in +Inf only.
	want := map[float64]uint64{0.0005: 2, 0.001: 2, 0.0025: 2, 0.005: 3, 10: 3}
	for b, n := range want {
		if c.Buckets[b] != n {
			t.Errorf("connect bucket le=%g = %d, want %d", b, c.Buckets[b], n)
		}
	}
	if c.Count != 4 || len(c.Buckets) != len(ConnectBuckets) {
		t.Errorf("connect count %d, %d buckets; want 4, %d", c.Count, len(c.Buckets), len(ConnectBuckets))
	}
	if s := 20.0037; c.Sum < s-1e-9 || c.Sum > s+1e-9 {
		t.Errorf("connect sum %g, want %g", c.Sum, s)
	}
	d := l.Duration.Snapshot()
	if d.Count != 1 || d.Buckets[3600] != 0 || d.Sum != 7200 {
		t.Errorf("duration %+v, want one observation of 7200s above every bucket", d)
	}
}

func TestLatencyObserveDoesNotAllocate(t *testing.T) {
	l := newLatency()
	sig := sched.Signal{Kind: sched.ConnectTime, Latency: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { l.observe(sig) }); n != 0 {
		t.Errorf("observe allocates %v times", n)
	}
}

func BenchmarkLatencyObserve(b *testing.B) {
	l := newLatency()
	sig := sched.Signal{Kind: sched.Duration, Latency: 40 * time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.observe(sig)
		}
	})
}
