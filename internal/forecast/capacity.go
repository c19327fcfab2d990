package forecast

import (
	"math"
	"time"
)

// Capacity learns the load at which a service's latency bends: the
// connection rate (per unit of weight in service) at which its latency is
// Bend times its latency when idle.
//
// The model is a queue's: latency L(x) = L0 / (1 - x/C), x the rate per
// unit of weight, so 1/L is a straight line in x, a + b x, with a = 1/L0
// and b = -1/(L0 C). Capacity fits that line by least squares over the
// observations, forgotten exponentially in time (Tau), and puts the bend
// where the fitted latency is Bend x L0: x = a (1 - 1/Bend) / -b (C/2 for
// Bend 2). A server of many parallel slots bends later and more sharply
// than one queue; the straight line then puts the bend somewhat early,
// which is the safe side for an alert (TestCapacityErlang measures it).
//
// It is pure: the time is passed in. It says nothing (ok false) until it
// has MinSamples observations, a slope that is negative by at least 3
// standard errors (latency that does not grow with the load has no bend to
// learn), and a bend within MaxExtrapolation x the highest rate observed
// (a line fitted far below its bend does not know where the bend is).
type Capacity struct {
	cfg CapacityConfig

	sw, sx, sy, sxx, sxy, syy float64 // decayed weighted sums of x, y = 1/L
	n                         int
	last                      time.Time
	maxX                      float64
}

// CapacityConfig sets a Capacity; zero fields take their defaults.
type CapacityConfig struct {
	Tau              time.Duration // how long an observation counts (1/e); default a week
	Bend             float64       // the latency multiple that defines the bend; default 2
	MinSamples       int           // default 30
	MaxExtrapolation float64       // default 2
}

func (c CapacityConfig) withDefaults() CapacityConfig {
	if c.Tau <= 0 {
		c.Tau = 7 * 24 * time.Hour
	}
	if !(c.Bend > 1) {
		c.Bend = 2
	}
	if c.MinSamples <= 0 {
		c.MinSamples = 30
	}
	if !(c.MaxExtrapolation >= 1) {
		c.MaxExtrapolation = 2
	}
	return c
}

// NewCapacity returns a learner with nothing learned.
func NewCapacity(cfg CapacityConfig) *Capacity { return &Capacity{cfg: cfg.withDefaults()} }

// Observe adds one interval's figures at now: x, the connection rate per
// unit of weight in service, and latency, the mean latency of the
// connections of the interval (seconds). Figures that are not positive
// and finite are ignored, as are observations older than the last.
func (c *Capacity) Observe(now time.Time, x, latency float64) {
	if !(x >= 0) || !(latency > 0) || math.IsInf(x, 0) || math.IsInf(latency, 0) || now.Before(c.last) {
		return
	}
	if c.n > 0 {
		f := math.Exp(-now.Sub(c.last).Seconds() / c.cfg.Tau.Seconds())
		c.sw, c.sx, c.sy, c.sxx, c.sxy, c.syy = c.sw*f, c.sx*f, c.sy*f, c.sxx*f, c.sxy*f, c.syy*f
	}
	y := 1 / latency
	c.sw++
	c.sx += x
	c.sy += y
	c.sxx += x * x
	c.sxy += x * y
	c.syy += y * y
	c.n++
	c.last = now
	c.maxX = max(c.maxX, x)
}

// Samples is how many observations the learner has had.
func (c *Capacity) Samples() int { return c.n }

// Idle is the fitted latency with no load, L0, in seconds (0 before any fit).
func (c *Capacity) Idle() float64 {
	a, _, ok := c.fit()
	if !ok || a <= 0 {
		return 0
	}
	return 1 / a
}

// fit returns the line y = a + b x and whether there is one.
func (c *Capacity) fit() (a, b float64, ok bool) {
	if c.sw <= 0 {
		return 0, 0, false
	}
	mx, my := c.sx/c.sw, c.sy/c.sw
	cxx := c.sxx/c.sw - mx*mx
	if cxx <= 1e-12*max(mx*mx, 1) {
		return my, 0, true // every observation at one rate: no slope
	}
	b = (c.sxy/c.sw - mx*my) / cxx
	return my - b*mx, b, true
}

// Estimate returns the bend, in connections per second per unit of weight,
// and whether it is known.
func (c *Capacity) Estimate() (float64, bool) {
	if c.n < c.cfg.MinSamples {
		return 0, false
	}
	a, b, ok := c.fit()
	if !ok || a <= 0 || b >= 0 {
		return 0, false
	}
	mx, my := c.sx/c.sw, c.sy/c.sw
	cxx := c.sxx/c.sw - mx*mx
	cyy := c.syy/c.sw - my*my
	resid := max(cyy-b*(c.sxy/c.sw-mx*my), 0)
	// The slope's standard error, the decayed count standing for n.
	se := math.Sqrt(resid / (cxx * max(c.sw-2, 1)))
	if -b < 3*se {
		return 0, false
	}
	knee := a * (1 - 1/c.cfg.Bend) / -b
	if knee > c.cfg.MaxExtrapolation*c.maxX {
		return 0, false
	}
	return knee, true
}
