package sim

import "math"

// histogram counts latencies in logarithmic buckets: bucket b holds
// [histMin x histStep^b, histMin x histStep^(b+1)), so a quantile is known
// within histStep (0.5%) whatever its size, in constant memory.
type histogram struct {
	counts []uint64
	n      uint64
	sum    float64 // exact, for the mean
}

const (
	histMin  = 1e-6 // seconds; shorter latencies fall in bucket 0
	histStep = 1.005
	histMax  = 1e5 // seconds; longer ones fall in the last bucket
)

var (
	histInvLog  = 1 / math.Log(histStep)
	histBuckets = int(math.Ceil(math.Log(histMax/histMin)*histInvLog)) + 1
)

func newHistogram() *histogram { return &histogram{counts: make([]uint64, histBuckets)} }

func (h *histogram) add(x float64) {
	b := 0
	if x > histMin {
		b = min(int(math.Log(x/histMin)*histInvLog), histBuckets-1)
	}
	h.counts[b]++
	h.n++
	h.sum += x
}

// value is the middle of bucket b, in seconds.
func bucketValue(b int) float64 { return histMin * math.Pow(histStep, float64(b)+0.5) }

// quantile returns the smallest latency with at least q of the counts at or
// below it, in seconds.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	need := uint64(math.Ceil(q * float64(h.n)))
	need = max(need, 1)
	var c uint64
	for b, k := range h.counts {
		c += k
		if c >= need {
			return bucketValue(b)
		}
	}
	return bucketValue(len(h.counts) - 1)
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
