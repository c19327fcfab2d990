package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govs-lb/govs/internal/director"
)

// Forecasts of each virtual service's connection rate (internal/forecast):
// the API samples every service's connection counter with its rates
// (runtime.go's estimate loop), feeds one model per service, and publishes
// the forecasts at a few horizons in /metrics and GET /api/v1/forecasts.
// The director acts on them as each service's forecast block says:
// pre-warming of standby real servers and the capacity alert
// (director/forecast.go, docs/forecast.md).

// ForecastHorizons are the horizons published, with their labels.
var ForecastHorizons = []struct {
	Label string
	D     time.Duration
}{{"5m", 5 * time.Minute}, {"15m", 15 * time.Minute}, {"1h", time.Hour}}

// ServiceForecast is one service's forecast, in GET /api/v1/forecasts.
type ServiceForecast struct {
	Service string `json:"service"`
	Key     string `json:"key"`
	// Observations is how many steps (a minute unless forecast.step says)
	// the model has seen; Ready that it has seen a whole season (a day
	// unless forecast.season says): before, the forecasts are the recent
	// level alone.
	Observations int        `json:"observations"`
	Ready        bool       `json:"ready"`
	Step         string     `json:"step"`
	Forecasts    []Forecast `json:"forecasts"`
	// Mode is the service's forecast mode: forecast-only or prewarm.
	Mode     string        `json:"mode"`
	Capacity Capacity      `json:"capacity"`
	Standby  StandbyCounts `json:"standby"`
}

// Capacity is the service's capacity as learned (or configured) and the
// capacity alert (docs/forecast.md).
type Capacity struct {
	// CPS is the connection rate at which the service's latency bends,
	// for its real servers up (standby ones included); 0: not known yet.
	CPS       float64 `json:"connections_per_second"`
	PerWeight float64 `json:"per_weight"`
	Source    string  `json:"source"` // learned, configured, or empty
	Samples   int     `json:"samples"`
	// Peak is the highest forecast within Horizon, which the alert
	// compares with CPS; Alert says the alert is raised.
	Horizon string  `json:"horizon"`
	Peak    float64 `json:"peak"`
	Alert   bool    `json:"alert"`
}

// StandbyCounts are the standby real servers waiting and called.
type StandbyCounts struct {
	Waiting int `json:"waiting"`
	Called  int `json:"called"`
}

// Forecast is the expected connection rate at one horizon and its band.
type Forecast struct {
	Horizon string  `json:"horizon"`
	At      string  `json:"at"` // RFC 3339: the end of the last step observed + the horizon
	CPS     float64 `json:"connections_per_second"`
	Lower   float64 `json:"lower"`
	Upper   float64 `json:"upper"`
}

// forecastBook is the API's door to the director's models
// (director.SampleForecasts, director/forecast.go), which the rate
// estimator's ticks drive.
type forecastBook struct{}

func newForecastBook() *forecastBook { return &forecastBook{} }

// sample feeds each service's counters to its models; the director acts
// on them (pre-warming, capacity alerts).
func (b *forecastBook) sample(d *director.Director, now time.Time) {
	if d != nil {
		d.SampleForecasts(now)
	}
}

// report returns the forecasts of vs, and false before the first step.
func (s *Server) forecastOf(vs *director.VirtualService) (ServiceForecast, bool) {
	hs := make([]time.Duration, len(ForecastHorizons))
	for i, h := range ForecastHorizons {
		hs[i] = h.D
	}
	r, ok := s.d.ServiceForecast(vs, hs)
	if !ok {
		return ServiceForecast{}, false
	}
	f := ServiceForecast{Service: vs.Settings().Name, Key: vs.Key, Observations: r.Observations,
		Ready: r.Ready, Step: r.Step.String(), Mode: r.Mode,
		Capacity: Capacity{CPS: r.Capacity, PerWeight: r.PerWeight, Source: r.Source, Samples: r.CapacitySamples,
			Horizon: r.Horizon.String(), Peak: r.Peak, Alert: r.Alert},
		Standby: StandbyCounts{Waiting: r.Waiting, Called: r.Called}}
	for i, h := range ForecastHorizons {
		p := r.Points[i]
		f.Forecasts = append(f.Forecasts, Forecast{Horizon: h.Label, At: r.End.Add(h.D).Format(time.RFC3339), CPS: p.Mean, Lower: p.Lower, Upper: p.Upper})
	}
	return f, true
}

func (s *Server) getForecasts(w http.ResponseWriter, r *http.Request) error {
	out := []ServiceForecast{}
	for _, vs := range s.d.Services() {
		if f, ok := s.forecastOf(vs); ok {
			out = append(out, f)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

var (
	descForecast = prometheus.NewDesc("govs_service_forecast_connections_per_second",
		"The connection rate a virtual service's Holt-Winters model expects at the horizon (docs/forecast.md).",
		[]string{"service", "horizon"}, nil)
	descForecastLower = prometheus.NewDesc("govs_service_forecast_connections_per_second_lower",
		"The lower end of the forecast's band (95% if the model's errors were normal).", []string{"service", "horizon"}, nil)
	descForecastUpper = prometheus.NewDesc("govs_service_forecast_connections_per_second_upper",
		"The upper end of the forecast's band.", []string{"service", "horizon"}, nil)
	descCapacity = prometheus.NewDesc("govs_service_capacity_connections_per_second",
		"The connection rate at which the virtual service's latency bends, learned or configured, for its real servers up (docs/forecast.md); absent while unknown.",
		[]string{"service", "source"}, nil)
	descCapacityAlert = prometheus.NewDesc("govs_service_capacity_alert",
		"1 while the forecast within the service's horizon exceeds its capacity (the capacity alert), else 0.",
		[]string{"service"}, nil)
	descStandby = prometheus.NewDesc("govs_service_standby_real_servers",
		"The service's standby real servers, waiting or called by the pre-warming.", []string{"service", "state"}, nil)
	descForecastReady = prometheus.NewDesc("govs_service_forecast_ready",
		"1 once the service's model has seen a whole season (a day unless forecast.season says), 0 before (its forecasts are then the recent level alone).",
		[]string{"service"}, nil)
)

// forecastCollector publishes the forecasts at scrape time.
type forecastCollector struct{ s *Server }

func (c forecastCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descForecast, descForecastLower, descForecastUpper, descForecastReady,
		descCapacity, descCapacityAlert, descStandby} {
		ch <- d
	}
}

func (c forecastCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.d == nil {
		return
	}
	for _, vs := range c.s.d.Services() {
		f, ok := c.s.forecastOf(vs)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descForecastReady, prometheus.GaugeValue, b2f(f.Ready), f.Service)
		if f.Capacity.CPS > 0 {
			ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, f.Capacity.CPS, f.Service, f.Capacity.Source)
		}
		ch <- prometheus.MustNewConstMetric(descCapacityAlert, prometheus.GaugeValue, b2f(f.Capacity.Alert), f.Service)
		ch <- prometheus.MustNewConstMetric(descStandby, prometheus.GaugeValue, float64(f.Standby.Waiting), f.Service, "waiting")
		ch <- prometheus.MustNewConstMetric(descStandby, prometheus.GaugeValue, float64(f.Standby.Called), f.Service, "called")
		for _, h := range f.Forecasts {
			if f.Observations == 0 {
				break // no step closed yet: no forecast
			}
			ch <- prometheus.MustNewConstMetric(descForecast, prometheus.GaugeValue, h.CPS, f.Service, h.Horizon)
			ch <- prometheus.MustNewConstMetric(descForecastLower, prometheus.GaugeValue, h.Lower, f.Service, h.Horizon)
			ch <- prometheus.MustNewConstMetric(descForecastUpper, prometheus.GaugeValue, h.Upper, f.Service, h.Horizon)
		}
	}
}
