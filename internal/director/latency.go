package director

import (
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

// Bucket upper bounds, in seconds, of the latency histograms. Classic
// (fixed) buckets so that any Prometheus, and histogram_quantile, read them.
var (
	// ConnectBuckets span a loopback connect (well under a millisecond) to
	// the longest connect_timeout worth having.
	ConnectBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// DurationBuckets span a short request/response connection to a
	// long-lived session.
	DurationBuckets = []float64{0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}
)

// maxBuckets bounds the bucket lists above (a fixed array: no allocation).
const maxBuckets = 16

// Histogram counts observations in fixed buckets, lock-free: Observe is two
// atomic adds and a short scan, so a dataplane may call it on its hot path.
type Histogram struct {
	bounds []float64
	counts [maxBuckets + 1]atomic.Uint64 // per bucket (not cumulative); the last is +Inf
	sumNs  atomic.Int64
}

func newHistogram(bounds []float64) Histogram {
	if len(bounds) > maxBuckets {
		panic("director: too many histogram buckets")
	}
	return Histogram{bounds: bounds}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// HistogramSnapshot is a copy of a Histogram in Prometheus's terms:
// cumulative counts per upper bound.
type HistogramSnapshot struct {
	Count   uint64
	Sum     float64 // seconds
	Buckets map[float64]uint64
}

// Snapshot copies the histogram. Observations that land while it copies
// may be in the buckets and not yet in the sum, or the reverse; the count
// is the buckets' total, so the exposition stays consistent.
func (h *Histogram) Snapshot() HistogramSnapshot {
	out := HistogramSnapshot{Buckets: make(map[float64]uint64, len(h.bounds))}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		out.Buckets[b] = cum
	}
	out.Count = cum + h.counts[len(h.bounds)].Load()
	out.Sum = time.Duration(h.sumNs.Load()).Seconds()
	return out
}

// Latency are a real server's connection timings, measured by the proxy
// dataplane (the kernel dataplanes see no per-connection timing).
type Latency struct {
	// Connect is the time from binding the connection to the real server
	// to its connect's end; a failed connect counts as the time it waited.
	Connect Histogram
	// Duration is the time from binding to the connection's release.
	Duration Histogram
}

func newLatency() Latency {
	return Latency{Connect: newHistogram(ConnectBuckets), Duration: newHistogram(DurationBuckets)}
}

// observe records the timing signals among those a dataplane reports.
func (l *Latency) observe(sig sched.Signal) {
	switch sig.Kind {
	case sched.ConnectTime:
		l.Connect.Observe(sig.Latency)
	case sched.Duration:
		l.Duration.Observe(sig.Latency)
	}
}
