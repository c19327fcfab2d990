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
}

// The forecast modes.
const (
	ForecastOnly    = "forecast-only"
	ForecastPrewarm = "prewarm"
	// DefaultForecastHorizon is how far ahead pre-warming and the capacity
	// alert look unless told.
	DefaultForecastHorizon = 15 * time.Minute
)

// HorizonOrDefault is the horizon in force.
func (f *Forecast) HorizonOrDefault() time.Duration {
	if f == nil || f.Horizon == 0 {
		return DefaultForecastHorizon
	}
	return f.Horizon.D()
}

// AlertOn says whether the capacity alert is on.
func (f *Forecast) AlertOn() bool { return f == nil || f.CapacityAlert == nil || *f.CapacityAlert }

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
	}
	for _, rs := range vs.RealServers {
		if rs != nil && rs.Standby && rs.Origin != "" {
			errs.add(rs.At("standby"), "a discovered real server cannot be standby")
		}
	}
}
