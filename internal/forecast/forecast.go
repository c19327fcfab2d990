// Package forecast predicts a virtual service's connection rate: an online
// Holt-Winters model (additive, one season, a day by default) over rates
// per step (a minute by default), with a band from its own recent errors.
//
// It is pure: time is passed in, nothing runs by itself. A Series turns the
// samples of a cumulative counter (a service's connections) into one rate
// per step and feeds its Model; the caller asks for forecasts at any
// horizon.
package forecast

import (
	"fmt"
	"math"
	"time"
)

// Config sets a model. The zero value of a field takes its default.
type Config struct {
	Step   time.Duration // the length of a step: one observation each; default 1 minute
	Season int           // steps in a season; default a day's worth
	// Alpha, Beta and Gamma are the smoothing weights of the level, the
	// trend and the season (defaults: DefaultAlpha, DefaultBeta,
	// DefaultGamma).
	Alpha, Beta, Gamma float64
	// Z is the band's half-width in standard deviations of the forecast
	// error; default 1.96 (95% if the errors were normal).
	Z float64
}

// The default smoothing weights: the best of a grid (alpha 0.05..0.9,
// beta 0.001..0.05, gamma 0.05..0.5) by the mean MASE at 5, 15 and 60
// minutes on a synthetic trace (TestTune), not the one TestMASE scores.
// They suit a per-minute rate with a daily cycle: the level follows the
// last few minutes (today's deviation from the usual day), the trend
// barely moves, and the season learns a new day shape over a week or two.
const (
	DefaultAlpha = 0.7
	DefaultBeta  = 0.005
	DefaultGamma = 0.1
)

func (c Config) withDefaults() Config {
	if c.Step <= 0 {
		c.Step = time.Minute
	}
	if c.Season <= 0 {
		c.Season = max(int(24*time.Hour/c.Step), 1)
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.Beta == 0 {
		c.Beta = DefaultBeta
	}
	if c.Gamma == 0 {
		c.Gamma = DefaultGamma
	}
	if c.Z == 0 {
		c.Z = 1.96
	}
	return c
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"alpha", c.Alpha}, {"beta", c.Beta}, {"gamma", c.Gamma}} {
		if p.v < 0 || p.v > 1 || math.IsNaN(p.v) {
			return fmt.Errorf("forecast: %s must be between 0 and 1, not %g", p.name, p.v)
		}
	}
	if c.Season > 1<<20 {
		return fmt.Errorf("forecast: season of %d steps is too long", c.Season)
	}
	return nil
}

// Model is additive Holt-Winters: x(t+h) = level + h trend + season[t+h],
// updated with each observation. Steps are numbered from the Unix epoch
// (Series does it), so a season slot is a time of day.
type Model struct {
	cfg          Config
	level, trend float64
	season       []float64
	n            int     // observations so far
	last         int64   // the step of the last observation
	mse          float64 // EWMA of squared one-step errors
	first        []bool  // season slots seen in the first season
	// hist holds each slot's last observation, prev the one before it (a
	// season earlier): what Rise reads.
	hist, prev []float64
}

// New returns an empty model.
func New(cfg Config) (*Model, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Model{cfg: cfg, season: make([]float64, cfg.Season), first: make([]bool, cfg.Season),
		hist: make([]float64, cfg.Season), prev: make([]float64, cfg.Season)}, nil
}

// Config returns the model's settings, defaults filled in.
func (m *Model) Config() Config { return m.cfg }

// Observations is how many steps the model has seen.
func (m *Model) Observations() int { return m.n }

// Ready reports whether the model has seen a whole season: before, its
// forecasts are the level alone.
func (m *Model) Ready() bool { return m.n >= m.cfg.Season }

func (m *Model) slot(step int64) int {
	s := int(step % int64(m.cfg.Season))
	if s < 0 {
		s += m.cfg.Season
	}
	return s
}

// Observe adds the rate x of step (steps since the Unix epoch). Steps must
// increase; one that does not is ignored. A gap counts as steps at the
// forecast (the model coasts).
func (m *Model) Observe(step int64, x float64) {
	if m.n > 0 && step <= m.last {
		return
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	c := m.cfg
	k := m.slot(step)
	m.prev[k], m.hist[k] = m.hist[k], x
	if m.n == 0 {
		m.level, m.last, m.n = x, step, 1
		m.first[m.slot(step)] = true
		return
	}
	for s := m.last + 1; s < step && s-m.last <= int64(c.Season); s++ {
		// Coast over a gap: the state moves as if the forecast came true.
		m.level += m.trend
	}
	if m.n < c.Season && !m.first[k] {
		// Learning the first season: the level follows an EWMA and the
		// slot starts at its deviation from it.
		m.first[k] = true
		m.level += c.Alpha * (x - m.level)
		m.season[k] = x - m.level
		m.last = step
		m.n++
		return
	}
	pred := m.level + m.trend + m.season[k]
	e := x - pred
	if m.n >= c.Season {
		m.mse += (e*e - m.mse) * 0.05
	} else {
		m.mse = max(m.mse, e*e)
	}
	prev := m.level
	m.level = c.Alpha*(x-m.season[k]) + (1-c.Alpha)*(m.level+m.trend)
	m.trend = c.Beta*(m.level-prev) + (1-c.Beta)*m.trend
	m.season[k] = c.Gamma*(x-m.level) + (1-c.Gamma)*m.season[k]
	m.last = step
	m.n++
}

// Forecast returns the rate expected h steps after the last observation
// and its band, [lower, upper] (lower at least 0). Before any observation
// it returns zeros.
func (m *Model) Forecast(h int) (mean, lower, upper float64) {
	if m.n == 0 {
		return 0, 0, 0
	}
	h = max(h, 1)
	mean = m.level + float64(h)*m.trend + m.season[m.slot(m.last+int64(h))]
	mean = max(mean, 0)
	// The variance of additive Holt-Winters' h-step error, the seasonal
	// term left out (h is shorter than a season here): sigma^2 (1 + sum
	// over j < h of (alpha (1 + j beta))^2).
	v := 1.0
	for j := 1; j < h; j++ {
		a := m.cfg.Alpha * (1 + float64(j)*m.cfg.Beta)
		v += a * a
	}
	w := m.cfg.Z * math.Sqrt(m.mse*v)
	return mean, max(mean-w, 0), mean + w
}

// LastStep is the step of the last observation.
func (m *Model) LastStep() int64 { return m.last }

// Series turns samples of a cumulative counter into one rate per step for
// its Model. Samples may come at any pace; a step closes when a sample
// falls in a later one, and the increase between two samples is spread
// evenly over the steps between them.
type Series struct {
	M        *Model
	have     bool
	lastAt   time.Time
	lastVal  uint64
	step     int64   // the open step
	acc      float64 // its count so far
	interval time.Duration
	// from is when the count of the open step began, when after its
	// start: the first sample (or the first after a counter reset) falls
	// within a step, whose rate is then its count over the part covered.
	from time.Time
}

// NewSeries returns a series feeding a new model.
func NewSeries(cfg Config) (*Series, error) {
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Series{M: m, interval: m.cfg.Step}, nil
}

func (s *Series) stepOf(t time.Time) int64 {
	return int64(math.Floor(float64(t.UnixNano()) / float64(s.interval)))
}

// Sample records the counter's value at now. A counter that went down
// (a restart) starts afresh from its new value.
func (s *Series) Sample(now time.Time, total uint64) {
	if !s.have || total < s.lastVal || !now.After(s.lastAt) {
		if !s.have || total < s.lastVal {
			// The open step is counted from now only: its rate will be
			// its count over that part of it, not over the whole step.
			s.step, s.acc, s.from = s.stepOf(now), 0, now
		}
		s.have, s.lastAt, s.lastVal = true, now, total
		return
	}
	delta := float64(total - s.lastVal)
	from, to := s.lastAt, now
	span := to.Sub(from).Seconds()
	cur := s.stepOf(to)
	for s.step < cur {
		// The part of the increase that fell in the open step.
		start := time.Unix(0, s.step*int64(s.interval))
		end := start.Add(s.interval)
		part := end.Sub(from).Seconds()
		if part > 0 {
			share := delta * part / span
			s.acc += share
			delta -= share
			span -= part
			from = end
		}
		covered := s.interval.Seconds()
		if s.from.After(start) {
			covered = end.Sub(s.from).Seconds()
		}
		if covered > 0 {
			s.M.Observe(s.step, s.acc/covered)
		}
		s.step++
		s.acc, s.from = 0, time.Time{}
		if cur-s.step > int64(s.M.cfg.Season) {
			// A gap longer than a season: skip it. The current step
			// keeps its share of the increase, its part of the gap.
			s.step = cur
			cs := time.Unix(0, cur*int64(s.interval))
			if span > 0 {
				delta *= to.Sub(cs).Seconds() / span
			}
			break
		}
	}
	s.acc += delta
	s.lastAt, s.lastVal = now, total
}

// Forecast returns the model's forecast of the rate at horizon after the
// last closed step.
func (s *Series) Forecast(horizon time.Duration) (mean, lower, upper float64) {
	return s.M.Forecast(max(int(horizon/s.interval), 1))
}
