package config

import "time"

// Forecast is a virtual service's use of its load forecast
// (docs/forecast.md): pre-warming of its standby real servers and the
// capacity alert.
type Forecast struct {
	Meta `yaml:"-"`

	// Mode is forecast-only (the default: standby servers are called when
	// the load now needs them) or prewarm (also when the forecast says it
	// will within Horizon).
	Mode string `yaml:"mode,omitempty"`
	// Horizon is how far ahead pre-warming and the capacity alert look;
	// default 15m.
	Horizon Duration `yaml:"horizon,omitempty"`
	// Capacity is the connections per second a real server of weight 1
	// carries before its latency bends; 0: learned from the latencies the
	// proxy measures.
	Capacity int `yaml:"capacity,omitempty"`
	// CapacityAlert (default true) raises an alert when the forecast
	// crosses the service's capacity.
	CapacityAlert *bool `yaml:"capacity_alert,omitempty"`
	// Step is the length of one observation of the model (default 1m) and
	// Season the length of the cycle it learns (default 24h, a multiple of
	// Step): a service whose load recurs every hour sets season: 1h. The
	// seasons are aligned on the Unix epoch (a 24h season is the UTC day).
	Step   Duration `yaml:"step,omitempty"`
	Season Duration `yaml:"season,omitempty"`
}

// The forecast modes.
const (
	ForecastOnly    = "forecast-only"
	ForecastPrewarm = "prewarm"
	// DefaultForecastHorizon is how far ahead pre-warming and the capacity
	// alert look unless told.
	DefaultForecastHorizon = 15 * time.Minute
	// DefaultForecastStep and DefaultForecastSeason are the model's step
	// and season unless told: a minute and a day.
	DefaultForecastStep   = time.Minute
	DefaultForecastSeason = 24 * time.Hour
	// MinForecastStep is the shortest step: the API's rate estimator
	// samples every 2 s, and a shorter step would only split its samples.
	MinForecastStep = 2 * time.Second
	// MaxForecastSeasonSteps bounds a season's length in steps: the model
	// keeps a few numbers for each (about 40 bytes).
	MaxForecastSeasonSteps = 100_000
)

// StepOrDefault is the model's step in force.
func (f *Forecast) StepOrDefault() time.Duration {
	if f == nil || f.Step == 0 {
		return DefaultForecastStep
	}
	return f.Step.D()
}

// SeasonOrDefault is the model's season in force.
func (f *Forecast) SeasonOrDefault() time.Duration {
	if f == nil || f.Season == 0 {
		return DefaultForecastSeason
	}
	return f.Season.D()
}

// HorizonOrDefault is the horizon in force.
func (f *Forecast) HorizonOrDefault() time.Duration {
	if f == nil || f.Horizon == 0 {
		return DefaultForecastHorizon
	}
	return f.Horizon.D()
}

// AlertOn says whether the capacity alert is on.
func (f *Forecast) AlertOn() bool { return f == nil || f.CapacityAlert == nil || *f.CapacityAlert }

// validateSeason checks step, season and horizon together: the season a
// whole number of steps, the horizon shorter than the season (pre-warming
// reads the last season's rates over the horizon ahead; at most the
// season).
func (f *Forecast) validateSeason(errs *ErrorList) {
	step, season := f.StepOrDefault(), f.SeasonOrDefault()
	if step < MinForecastStep || step > time.Hour {
		errs.add(f.At("step"), "forecast step %s must be between %s and 1h", step, MinForecastStep)
		return
	}
	switch {
	case season%step != 0:
		errs.add(f.At("season"), "forecast season %s must be a whole number of steps (step %s)", season, step)
		return
	case season < 2*step || season/step > MaxForecastSeasonSteps:
		errs.add(f.At("season"), "forecast season %s must be 2 to %d steps of %s", season, MaxForecastSeasonSteps, step)
		return
	}
	if h := f.HorizonOrDefault(); h > season && f.Horizon.D() >= 0 && f.Horizon.D() <= 24*time.Hour {
		key, what := "horizon", "forecast horizon "+h.String()
		if f.Horizon == 0 {
			key, what = "season", "the default forecast horizon "+h.String()
		}
		errs.add(f.At(key), "%s must not be longer than the season %s (set horizon)", what, season)
	}
}

func (vs *VirtualServer) validateForecast(errs *ErrorList) {
	if f := vs.Forecast; f != nil {
		switch f.Mode {
		case "":
			f.Mode = ForecastOnly
		case ForecastOnly, ForecastPrewarm:
		default:
			errs.add(f.At("mode"), "unknown forecast mode %q (forecast-only or prewarm)", f.Mode)
		}
		if f.Horizon.D() < 0 || f.Horizon.D() > 24*time.Hour {
			errs.add(f.At("horizon"), "forecast horizon %s must be between 0 and 24h", f.Horizon.D())
		}
		if f.Capacity < 0 || f.Capacity > 100_000_000 {
			errs.add(f.At("capacity"), "forecast capacity must be a number of connections per second, 0 to 100000000")
		}
		f.validateSeason(errs)
	}
	for _, rs := range vs.RealServers {
		if rs != nil && rs.Standby && rs.Origin != "" {
			errs.add(rs.At("standby"), "a discovered real server cannot be standby")
		}
	}
}
