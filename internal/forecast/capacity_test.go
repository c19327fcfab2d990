package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// mm1 is the latency of a single queue of idle latency s at rate x of
// capacity c.
func mm1(s, c, x float64) float64 { return s / (1 - x/c) }

// erlangC is the mean latency of M/M/k with service time s at utilisation rho.
func erlangC(k int, s, rho float64) float64 {
	a := rho * float64(k)
	term, sum := 1.0, 1.0
	for i := 1; i < k; i++ {
		term *= a / float64(i)
		sum += term
	}
	last := term * a / float64(k) / (1 - rho)
	pw := last / (sum + last)
	return s + pw*s/(float64(k)*(1-rho))
}

// observeLoad feeds n observations at rates uniform in [0, top) of a
// latency curve, with multiplicative noise, one a minute from t0.
func observeLoad(c *Capacity, rng *rand.Rand, t0 time.Time, n int, top float64, lat func(x float64) float64) time.Time {
	for i := range n {
		x := rng.Float64() * top
		c.Observe(t0.Add(time.Duration(i)*time.Minute), x, lat(x)*math.Exp(0.05*rng.NormFloat64()))
	}
	return t0.Add(time.Duration(n) * time.Minute)
}

// TestCapacityQueue learns a single queue's bend from noisy observations:
// latency doubles at half the capacity.
func TestCapacityQueue(t *testing.T) {
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 1))
		c := NewCapacity(CapacityConfig{})
		observeLoad(c, rng, time.Unix(1_800_000_000, 0), 500, 90, func(x float64) float64 { return mm1(0.01, 100, x) })
		knee, ok := c.Estimate()
		if !ok || math.Abs(knee-50) > 5 {
			t.Errorf("seed %d: bend %.1f (ok %v), want 50 +- 5", seed, knee, ok)
		}
		if l0 := c.Idle(); math.Abs(l0-0.01) > 0.001 {
			t.Errorf("seed %d: idle latency %.4f, want 0.010", seed, l0)
		}
	}
}

// TestCapacityErlang: servers of four slots bend late and sharply; the
// straight line puts the bend somewhat before the rate at which the mean
// latency really doubles (rho 0.86 for M/M/4), never after it.
func TestCapacityErlang(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	c := NewCapacity(CapacityConfig{})
	const perWeight = 400.0 // 4 slots of 10 ms
	observeLoad(c, rng, time.Unix(1_800_000_000, 0), 1000, 0.95*perWeight, func(x float64) float64 {
		return erlangC(4, 0.01, x/perWeight)
	})
	knee, ok := c.Estimate()
	var truth float64
	for rho := 0.0; rho < 1; rho += 0.001 {
		if erlangC(4, 0.01, rho) >= 0.02 {
			truth = rho * perWeight
			break
		}
	}
	if !ok || knee > truth || knee < 0.7*truth {
		t.Fatalf("bend %.0f (ok %v), want between 0.7x and 1x the true %.0f", knee, ok, truth)
	}
	t.Logf("bend %.0f connections/s per weight, true doubling at %.0f (%.2fx)", knee, truth, knee/truth)
}

// TestCapacityUnknown: latency that does not grow with the load, too few
// observations, or a bend far beyond the rates seen, teach nothing.
func TestCapacityUnknown(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	t0 := time.Unix(1_800_000_000, 0)
	flat := NewCapacity(CapacityConfig{})
	observeLoad(flat, rng, t0, 500, 90, func(float64) float64 { return 0.01 })
	if k, ok := flat.Estimate(); ok {
		t.Errorf("flat latency: bend %.1f, want none", k)
	}
	few := NewCapacity(CapacityConfig{})
	observeLoad(few, rng, t0, 20, 90, func(x float64) float64 { return mm1(0.01, 100, x) })
	if k, ok := few.Estimate(); ok {
		t.Errorf("20 observations: bend %.1f, want none yet", k)
	}
	// Rates up to 10% of the capacity: latency grows 11% at most, the bend
	// (50) is five times the highest rate seen.
	low := NewCapacity(CapacityConfig{})
	observeLoad(low, rng, t0, 2000, 10, func(x float64) float64 { return mm1(0.01, 100, x) })
	if k, ok := low.Estimate(); ok {
		t.Errorf("low rates only: bend %.1f, want none", k)
	}
	bad := NewCapacity(CapacityConfig{})
	bad.Observe(t0, math.NaN(), 0.01)
	bad.Observe(t0, 1, -1)
	bad.Observe(t0, 1, math.Inf(1))
	if bad.Samples() != 0 {
		t.Errorf("bad figures were counted: %d", bad.Samples())
	}
}

// TestCapacityForgets: servers twice as fast after an upgrade; after a few
// Tau of new observations the bend is the new one.
func TestCapacityForgets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	c := NewCapacity(CapacityConfig{Tau: 24 * time.Hour})
	t1 := observeLoad(c, rng, time.Unix(1_800_000_000, 0), 1440, 90, func(x float64) float64 { return mm1(0.01, 100, x) })
	observeLoad(c, rng, t1, 4*1440, 180, func(x float64) float64 { return mm1(0.005, 200, x) })
	if k, ok := c.Estimate(); !ok || math.Abs(k-100) > 10 {
		t.Fatalf("bend %.1f (ok %v), want the new 100 +- 10", k, ok)
	}
}
