package forecast

import (
	"fmt"
	"time"
)

// Pre-warming: a virtual service may keep some real servers in standby
// (they take no new connections); the Prewarmer decides when the service
// needs them, and the director then brings them in with a slow-start ramp.
// In forecast-only mode (the default) it calls a standby server when the
// load now exceeds what the servers in service carry: the server then
// warms up while the others are already overloaded. In prewarm mode it
// also looks at the forecast over the horizon, so the ramp runs before the
// load arrives. A called server is never sent back to standby by the
// forecast: the forecast only ever adds servers.

// Modes of pre-warming.
const (
	ModeForecastOnly = "forecast-only" // standby servers called when the load now needs them
	ModePrewarm      = "prewarm"       // ... or when the forecast says it will within the horizon
)

// PrewarmConfig sets a Prewarmer.
type PrewarmConfig struct {
	Mode string // ModeForecastOnly (default) or ModePrewarm
	// Headroom is the share of the capacity the servers in service may
	// carry before another is needed; default 0.9.
	Headroom float64
	// Sustain is how long the need must last before a server is called,
	// so that one noisy sample does not call one; default 0 (at once).
	Sustain time.Duration
}

// PrewarmInput is what the Prewarmer looks at, at one instant.
type PrewarmInput struct {
	Rate float64 // connections per second now
	// Peak is the highest forecast within the horizon (prewarm mode only).
	Peak float64
	// PerWeight is the capacity per unit of weight (Capacity.Estimate, or
	// configured); 0: unknown.
	PerWeight float64
	// Active is the weight of the real servers up and taking traffic
	// (standby servers called included); Waiting are the weights of the
	// standby servers up and not called yet, in the order to call them.
	Active  int
	Waiting []int
}

// PrewarmDecision says how many of the waiting servers to call now, in
// order, and why.
type PrewarmDecision struct {
	Call     int
	Need     float64 // the load the servers must carry: the rate, or the peak forecast
	Capacity float64 // what the servers in service carry (PerWeight x Active x Headroom)
	Reason   string
}

// Prewarmer is the pure decision logic of pre-warming for one service.
type Prewarmer struct {
	cfg  PrewarmConfig
	over time.Time // since when the need has exceeded the capacity; zero: it has not
}

// NewPrewarmer returns a prewarmer.
func NewPrewarmer(cfg PrewarmConfig) *Prewarmer {
	if cfg.Mode == "" {
		cfg.Mode = ModeForecastOnly
	}
	if !(cfg.Headroom > 0) {
		cfg.Headroom = 0.9
	}
	return &Prewarmer{cfg: cfg}
}

// Config returns the prewarmer's settings, defaults filled in.
func (p *Prewarmer) Config() PrewarmConfig { return p.cfg }

// SetConfig changes the settings (a reload), keeping the state.
func (p *Prewarmer) SetConfig(cfg PrewarmConfig) {
	q := NewPrewarmer(cfg)
	p.cfg = q.cfg
}

// Decide returns what to do at now.
func (p *Prewarmer) Decide(now time.Time, in PrewarmInput) PrewarmDecision {
	d := PrewarmDecision{Need: in.Rate}
	if len(in.Waiting) == 0 {
		p.over = time.Time{}
		return d
	}
	if in.Active <= 0 {
		// Nothing serves: whatever the load, a standby server must.
		p.over = time.Time{}
		d.Call, d.Reason = 1, "no other real server in service"
		return d
	}
	source := "the load now"
	if p.cfg.Mode == ModePrewarm && in.Peak > d.Need {
		d.Need, source = in.Peak, "the forecast"
	}
	if !(in.PerWeight > 0) {
		p.over = time.Time{}
		return d // the capacity is not known: no reason to call anyone
	}
	d.Capacity = in.PerWeight * float64(in.Active) * p.cfg.Headroom
	if d.Need <= d.Capacity {
		p.over = time.Time{}
		return d
	}
	if p.over.IsZero() {
		p.over = now
	}
	if now.Sub(p.over) < p.cfg.Sustain {
		return d
	}
	capa := d.Capacity
	for d.Call < len(in.Waiting) && d.Need > capa {
		capa += in.PerWeight * float64(in.Waiting[d.Call]) * p.cfg.Headroom
		d.Call++
	}
	d.Reason = fmt.Sprintf("%s (%.1f connections/s) exceeds %.0f%% of what the servers in service carry (%.1f)",
		source, d.Need, p.cfg.Headroom*100, d.Capacity/p.cfg.Headroom)
	p.over = time.Time{}
	return d
}

// seasonalWindow is how many steps Seasonal compares with the same steps
// a season earlier: one step's rate is noisy (a quiet service's minute,
// a moment of an outage yesterday), and a ratio of two noisy figures is
// noisier still.
const seasonalWindow = 5

// Seasonal is the highest rate the last season says comes within h
// steps, scaled to today: the largest x[t+j-S], j from 1 to h, times
// today's rate over the last season's at the same time (the means of the
// last seasonalWindow steps, x[t-i] over x[t-i-S]); x[t] plus x[t+j-S]
// when the last season's were 0. 0 until the model has seen a season and
// a step. It is the seasonal-naive forecast of the change, as a ratio so
// that a day busier than yesterday expects a busier rush. Holt-Winters
// with the defaults (a high alpha) follows a recurring jump (a rush hour)
// mostly with its level, and learns it into its season over weeks: its
// forecast of the jump is a fraction of it.
func (m *Model) Seasonal(h int) float64 {
	if m.n <= m.cfg.Season {
		return 0
	}
	k := m.slot(m.last)
	// The window: steps seen in this season and in the one before.
	w := min(seasonalWindow, m.n-m.cfg.Season, m.cfg.Season)
	var sumNow, sumBase float64
	for j := range w {
		i := (k - j + m.cfg.Season) % m.cfg.Season
		sumNow += m.hist[i]
		sumBase += m.prev[i]
	}
	var out float64
	for j := 1; j <= min(max(h, 1), m.cfg.Season-1); j++ {
		next := m.hist[(k+j)%m.cfg.Season]
		if sumBase > 0 {
			out = max(out, next*sumNow/sumBase)
		} else {
			out = max(out, m.hist[k]+next)
		}
	}
	return out
}

// Expect is the highest rate pre-warming expects within h steps: the
// higher of Holt-Winters' forecasts (mean) and Seasonal. 0 before the
// model has seen a whole season.
func (m *Model) Expect(h int) float64 {
	if !m.Ready() {
		return 0
	}
	mean, _ := m.Peak(h)
	return max(mean, m.Seasonal(h))
}

// Peak is the highest forecast over the next h steps, mean and upper end
// of the band.
func (m *Model) Peak(h int) (mean, upper float64) {
	for k := 1; k <= max(h, 1); k++ {
		f, _, hi := m.Forecast(k)
		mean, upper = max(mean, f), max(upper, hi)
	}
	return mean, upper
}
