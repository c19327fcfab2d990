package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forecast"
)

// Forecasts of each virtual service's connection rate (internal/forecast):
// the API samples every service's connection counter with its rates
// (runtime.go's estimate loop), feeds one model per service, and publishes
// the forecasts at a few horizons in /metrics and GET /api/v1/forecasts.
// Forecast-only: nothing acts on them (docs/forecast.md).

// ForecastHorizons are the horizons published, with their labels.
var ForecastHorizons = []struct {
	Label string
	D     time.Duration
}{{"5m", 5 * time.Minute}, {"15m", 15 * time.Minute}, {"1h", time.Hour}}

// ServiceForecast is one service's forecast, in GET /api/v1/forecasts.
type ServiceForecast struct {
	Service string `json:"service"`
	Key     string `json:"key"`
	// Observations is how many steps (minutes) the model has seen; Ready
	// that it has seen a whole season (a day): before, the forecasts are
	// the recent level alone.
	Observations int        `json:"observations"`
	Ready        bool       `json:"ready"`
	Step         string     `json:"step"`
	Forecasts    []Forecast `json:"forecasts"`
}

// Forecast is the expected connection rate at one horizon and its band.
type Forecast struct {
	Horizon string  `json:"horizon"`
	At      string  `json:"at"` // RFC 3339: the end of the last step observed + the horizon
	CPS     float64 `json:"connections_per_second"`
	Lower   float64 `json:"lower"`
	Upper   float64 `json:"upper"`
}

// forecastBook holds a series per service, keyed by its counters as the
// rates are (a service deleted and created again starts afresh).
type forecastBook struct {
	mu     sync.Mutex
	series map[*director.Stats]*forecast.Series
}

func newForecastBook() *forecastBook {
	return &forecastBook{series: map[*director.Stats]*forecast.Series{}}
}

// sample feeds each service's connection counter to its model and forgets
// the services no longer served.
func (b *forecastBook) sample(d *director.Director, now time.Time) {
	if d == nil {
		return
	}
	alive := map[*director.Stats]bool{}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, vs := range d.Services() {
		st := &vs.Stats
		alive[st] = true
		se := b.series[st]
		if se == nil {
			se, _ = forecast.NewSeries(forecast.Config{}) // the defaults are valid
			b.series[st] = se
		}
		se.Sample(now, st.Snapshot().Conns)
	}
	for st := range b.series {
		if !alive[st] {
			delete(b.series, st)
		}
	}
}

// report returns the forecasts of vs, and false before the first step.
func (b *forecastBook) report(vs *director.VirtualService) (ServiceForecast, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	se := b.series[&vs.Stats]
	if se == nil || se.M.Observations() == 0 {
		return ServiceForecast{}, false
	}
	cfg := se.M.Config()
	end := time.Unix(0, (se.M.LastStep()+1)*int64(cfg.Step)).UTC()
	f := ServiceForecast{Service: vs.Settings().Name, Key: vs.Key, Observations: se.M.Observations(),
		Ready: se.M.Ready(), Step: cfg.Step.String()}
	for _, h := range ForecastHorizons {
		m, lo, hi := se.Forecast(h.D)
		f.Forecasts = append(f.Forecasts, Forecast{Horizon: h.Label, At: end.Add(h.D).Format(time.RFC3339), CPS: m, Lower: lo, Upper: hi})
	}
	return f, true
}

func (s *Server) getForecasts(w http.ResponseWriter, r *http.Request) error {
	out := []ServiceForecast{}
	for _, vs := range s.d.Services() {
		if f, ok := s.forecasts.report(vs); ok {
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
	descForecastReady = prometheus.NewDesc("govs_service_forecast_ready",
		"1 once the service's model has seen a whole day, 0 before (its forecasts are then the recent level alone).",
		[]string{"service"}, nil)
)

// forecastCollector publishes the forecasts at scrape time.
type forecastCollector struct{ s *Server }

func (c forecastCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descForecast, descForecastLower, descForecastUpper, descForecastReady} {
		ch <- d
	}
}

func (c forecastCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.d == nil {
		return
	}
	for _, vs := range c.s.d.Services() {
		f, ok := c.s.forecasts.report(vs)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descForecastReady, prometheus.GaugeValue, b2f(f.Ready), f.Service)
		for _, h := range f.Forecasts {
			ch <- prometheus.MustNewConstMetric(descForecast, prometheus.GaugeValue, h.CPS, f.Service, h.Horizon)
			ch <- prometheus.MustNewConstMetric(descForecastLower, prometheus.GaugeValue, h.Lower, f.Service, h.Horizon)
			ch <- prometheus.MustNewConstMetric(descForecastUpper, prometheus.GaugeValue, h.Upper, f.Service, h.Horizon)
		}
	}
}
