package accesslog

import "math"

// Sketch is a fixed-size histogram of durations in milliseconds with
// logarithmic buckets (DDSketch's mapping): bucket i holds the values in
// (γ^(i−1), γ^i] with γ = (1+α)/(1−α), and a quantile is answered with
// 2γ^i/(γ+1), within a relative error α of the true value of that rank.
// α is 1%: the p99 of a 250 ms duration reads 247.5 to 252.5 ms. Values
// from SketchMin (1 µs) to SketchMax (about 13 days) are covered in
// sketchBuckets buckets (11 KiB); smaller ones count as 0 and larger ones
// as SketchMax. Min and max are exact.
type Sketch struct {
	counts   [sketchBuckets]uint64
	zero     uint64 // values below SketchMin
	n        uint64
	min, max float64
}

// Sketch parameters.
const (
	SketchAlpha = 0.01
	SketchMin   = 0.001 // ms
	SketchMax   = 1e9   // ms
)

var (
	sketchGamma  = (1 + SketchAlpha) / (1 - SketchAlpha)
	sketchLnG    = math.Log(sketchGamma)
	sketchOffset = int(math.Ceil(math.Log(SketchMin) / sketchLnG))
)

// sketchBuckets = ceil(log_γ(SketchMax)) − ceil(log_γ(SketchMin)) + 1.
const sketchBuckets = 1383

// Add counts v.
func (s *Sketch) Add(v float64) {
	s.addAt(sketchIndex(v), v)
}

// sketchIndex is v's bucket; -1 for the zero bucket. The analyser computes
// it once for the several sketches a value goes to.
func sketchIndex(v float64) int {
	if !(v >= SketchMin) { // NaN included
		return -1
	}
	v = min(v, SketchMax)
	i := int(math.Ceil(math.Log(v)/sketchLnG)) - sketchOffset
	return min(max(i, 0), sketchBuckets-1)
}

func (s *Sketch) addAt(i int, v float64) {
	if v != v {
		v = 0 // NaN (not from Parse, which refuses it) counts as 0
	}
	if s.n == 0 || v < s.min {
		s.min = v
	}
	if s.n == 0 || v > s.max {
		s.max = v
	}
	s.n++
	if i < 0 {
		s.zero++
		return
	}
	s.counts[i]++
}

// Count is how many values were added.
func (s *Sketch) Count() uint64 { return s.n }

// Quantile returns the value at q (0..1): the exact min and max at 0 and
// 1, otherwise the bucket's representative.
func (s *Sketch) Quantile(q float64) float64 {
	if s.n == 0 {
		return 0
	}
	if q <= 0 {
		return s.min
	}
	if q >= 1 {
		return s.max
	}
	rank := uint64(q * float64(s.n-1))
	seen := s.zero
	if rank < seen {
		return max(s.min, 0)
	}
	for i, c := range s.counts {
		seen += c
		if rank < seen {
			v := 2 * math.Pow(sketchGamma, float64(i+sketchOffset)) / (sketchGamma + 1)
			return min(max(v, s.min), s.max)
		}
	}
	return s.max
}

// Merge adds o's values to s.
func (s *Sketch) Merge(o *Sketch) {
	if o.n == 0 {
		return
	}
	if s.n == 0 || o.min < s.min {
		s.min = o.min
	}
	if s.n == 0 || o.max > s.max {
		s.max = o.max
	}
	s.n += o.n
	s.zero += o.zero
	for i, c := range o.counts {
		s.counts[i] += c
	}
}
