package director

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/forecast"
)

// The director's use of its forecasts, an adapter: each service's
// connection counter feeds its Holt-Winters model (internal/forecast), its
// rate and its real servers' mean connection time feed a capacity learner,
// and the service's forecast block (config.Forecast) says what to do with
// them. The decisions are internal/forecast's, pure: forecast.Prewarmer
// says when a standby real server is needed (the service's health machine
// then calls it in, with a slow-start ramp), and the capacity alert is a
// comparison with a hysteresis. A forecast never takes a real server out.
// The clock is the caller's: the API's rate estimator calls SampleForecasts
// every few seconds.

// CapacityAlertKind marks a HealthEvent about a service's capacity (not a
// quorum change); From and To are "capacity ok" and "capacity exceeded".
const CapacityAlertKind = "capacity"

// capacityClear is the share of the capacity the forecast must fall below
// for an alert to clear: a forecast hovering at the capacity does not
// raise and clear it at every sample.
const capacityClear = 0.9

type forecastBook struct {
	mu  sync.Mutex
	svc map[*Stats]*svcForecast
}

type svcForecast struct {
	series *forecast.Series
	capa   *forecast.Capacity
	pw     *forecast.Prewarmer

	at        time.Time // the last sample
	conns     uint64
	latN      uint64
	latSum    float64
	rate      float64
	alert     bool
	called    int
	lastPeak  float64
	lastCapa  float64
	perWeight float64
	source    string
	waiting   int
}

// ForecastReport is a service's forecast and what the director made of it,
// for the API and /metrics.
type ForecastReport struct {
	Observations int
	Ready        bool
	Step         time.Duration
	End          time.Time // the end of the last step observed
	Points       []ForecastPoint
	// Capacity is the service's learned (or configured) capacity: the
	// connection rate at which its latency bends, for the real servers up
	// (standby ones included); 0 when not known. PerWeight is the same for
	// one unit of weight; Source says learned or configured.
	Capacity, PerWeight float64
	Source              string
	CapacitySamples     int
	// Peak is the highest forecast within Horizon, which the alert and
	// pre-warming compare; Alert says the alert is raised.
	Peak    float64
	Horizon time.Duration
	Alert   bool
	// Mode is the forecast mode (forecast-only or prewarm); Waiting the
	// standby servers not called yet, Called those called so far.
	Mode            string
	Waiting, Called int
}

// ForecastPoint is the forecast at one horizon.
type ForecastPoint struct {
	Horizon            time.Duration
	Mean, Lower, Upper float64
}

// SampleForecasts samples every service's counters at now, feeds the
// models, and acts: standby servers called, capacity alerts raised or
// cleared (recorded as events and sent to the event hook).
func (d *Director) SampleForecasts(now time.Time) {
	var events []HealthEvent
	var calls []*healthActions
	b := &d.fc
	b.mu.Lock()
	if b.svc == nil {
		b.svc = map[*Stats]*svcForecast{}
	}
	alive := map[*Stats]bool{}
	for _, vs := range d.Services() {
		st := vs.Settings()
		if st == nil {
			continue
		}
		alive[&vs.Stats] = true
		f := b.svc[&vs.Stats]
		mc := modelConfig(st.cfg.Forecast)
		if f == nil || f.series.M.Config().Step != mc.Step || f.series.M.Config().Season != mc.Season {
			// A new step or season (a reload) makes the old observations
			// meaningless: the model starts afresh; the capacity learned
			// and the servers called stay.
			se, err := forecast.NewSeries(mc)
			if err != nil { // config validated step and season: not reached
				d.log.Error("forecast model", "service", st.cfg.Name, "err", err)
				continue
			}
			if f == nil {
				f = &svcForecast{capa: forecast.NewCapacity(forecast.CapacityConfig{}), pw: forecast.NewPrewarmer(forecast.PrewarmConfig{})}
				b.svc[&vs.Stats] = f
			}
			f.series = se
		}
		evs, acts := f.sample(vs, st.cfg, now)
		events = append(events, evs...)
		if acts != nil {
			calls = append(calls, acts)
		}
	}
	for st := range b.svc {
		if !alive[st] {
			delete(b.svc, st)
		}
	}
	b.mu.Unlock()
	for _, acts := range calls { // logs, and the dataplanes told, outside every lock
		acts.run()
	}
	for _, ev := range events {
		switch {
		case ev.Kind != CapacityAlertKind: // a call, logged by the health machine
		case ev.To == "capacity exceeded":
			d.log.Warn("capacity alert: the forecast exceeds the service's capacity", "service", ev.Service, "reason", ev.Reason)
		default:
			d.log.Info("capacity alert cleared", "service", ev.Service, "reason", ev.Reason)
		}
		d.hc.record(ev)
		d.emit(ev)
	}
}

// modelConfig is the model's settings for a service's forecast block:
// its step and season (config validated them), the smoothing weights the
// defaults.
func modelConfig(fc *config.Forecast) forecast.Config {
	step := fc.StepOrDefault()
	return forecast.Config{Step: step, Season: int(fc.SeasonOrDefault() / step)}
}

// sample is one service's step; called under the book's lock. It returns
// the events to record and, when it called standby servers, the actions
// of their decisions, to run once the lock is released.
func (f *svcForecast) sample(vs *VirtualService, vc *config.VirtualServer, now time.Time) ([]HealthEvent, *healthActions) {
	var out []HealthEvent
	conns := vs.Stats.Snapshot().Conns
	f.series.Sample(now, conns)
	var n uint64
	var sum float64
	weight := 0
	for _, rs := range vs.RealServers() {
		h := rs.Latency.Duration.Snapshot()
		n += h.Count
		sum += h.Sum
		weight += rs.Dest.Weight()
	}
	if dt := now.Sub(f.at).Seconds(); !f.at.IsZero() && dt > 0 && conns >= f.conns && n >= f.latN {
		f.rate = float64(conns-f.conns) / dt
		// A UDP flow's duration is mostly its idle timeout: only TCP
		// connections say how long the real servers took.
		if dn := n - f.latN; dn > 0 && weight > 0 && vc.Protocol == config.TCP {
			f.capa.Observe(now, f.rate/float64(weight), (sum-f.latSum)/float64(dn))
		}
	}
	f.at, f.conns, f.latN, f.latSum = now, conns, n, sum

	fc := vc.Forecast
	horizon := fc.HorizonOrDefault()
	mode := forecast.ModeForecastOnly
	if fc != nil && fc.Mode == config.ForecastPrewarm {
		mode = forecast.ModePrewarm
	}
	f.pw.SetConfig(forecast.PrewarmConfig{Mode: mode})
	f.perWeight, f.source = 0, ""
	if fc != nil && fc.Capacity > 0 {
		f.perWeight, f.source = float64(fc.Capacity), "configured"
	} else if k, ok := f.capa.Estimate(); ok {
		f.perWeight, f.source = k, "learned"
	}
	f.lastPeak = f.series.M.Expect(max(int(horizon/f.series.M.Config().Step), 1))

	// Pre-warming: the service's machine lists its standby servers.
	vs.mu.Lock()
	m := vs.health.m
	active, waiting, weights := m.Standby()
	all := active
	for _, w := range weights {
		all += w
	}
	dec := f.pw.Decide(now, forecast.PrewarmInput{Rate: f.rate, Peak: f.lastPeak, PerWeight: f.perWeight,
		Active: active, Waiting: weights})
	acts := &healthActions{}
	var called []netip.AddrPort
	for _, addr := range waiting[:dec.Call] {
		hd, ok := m.Call(now, addr, dec.Reason)
		if ok {
			vs.applyLocked(vs.Settings().Scheduler, vs.RealServers(), hd, false, acts)
			called = append(called, addr)
		}
	}
	f.waiting = len(waiting) - len(called)
	vs.mu.Unlock()
	if len(called) == 0 {
		acts = nil
	}
	for _, addr := range called {
		f.called++
		out = append(out, HealthEvent{Time: now, Service: vc.Name, Key: vs.Key, Backend: addr, From: "standby", To: "called", Reason: dec.Reason})
	}

	// The capacity alert: the forecast's peak within the horizon against
	// what every real server up carries, standby ones included.
	f.lastCapa = f.perWeight * float64(all)
	if !fc.AlertOn() || f.lastCapa <= 0 {
		f.alert = false
		return out, acts
	}
	switch {
	case !f.alert && f.lastPeak > f.lastCapa:
		f.alert = true
		out = append(out, HealthEvent{Time: now, Service: vc.Name, Key: vs.Key, Kind: CapacityAlertKind,
			From: "capacity ok", To: "capacity exceeded",
			Reason: fmt.Sprintf("forecast %.1f connections/s within %s exceeds the %s capacity %.1f", f.lastPeak, horizon, f.source, f.lastCapa)})
	case f.alert && f.lastPeak < capacityClear*f.lastCapa:
		f.alert = false
		out = append(out, HealthEvent{Time: now, Service: vc.Name, Key: vs.Key, Kind: CapacityAlertKind,
			From: "capacity exceeded", To: "capacity ok",
			Reason: fmt.Sprintf("forecast %.1f connections/s within %s is below %.0f%% of the %s capacity %.1f", f.lastPeak, horizon, capacityClear*100, f.source, f.lastCapa)})
	}
	return out, acts
}

// ServiceForecast returns vs's forecast at the horizons asked, and false
// before its first sample (its forecasts are 0 until its first step, a
// minute; its capacity and standby servers are there from the first
// sample).
func (d *Director) ServiceForecast(vs *VirtualService, horizons []time.Duration) (ForecastReport, bool) {
	b := &d.fc
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.svc[&vs.Stats]
	if f == nil {
		return ForecastReport{}, false
	}
	m := f.series.M
	cfg := m.Config()
	end := f.at.Truncate(cfg.Step).UTC()
	if m.Observations() > 0 {
		end = time.Unix(0, (m.LastStep()+1)*int64(cfg.Step)).UTC()
	}
	r := ForecastReport{Observations: m.Observations(), Ready: m.Ready(), Step: cfg.Step, End: end, Capacity: f.lastCapa, PerWeight: f.perWeight,
		Source: f.source, CapacitySamples: f.capa.Samples(), Peak: f.lastPeak, Alert: f.alert,
		Mode: f.pw.Config().Mode, Waiting: f.waiting, Called: f.called}
	if st := vs.Settings(); st != nil {
		r.Horizon = st.cfg.Forecast.HorizonOrDefault()
	}
	for _, h := range horizons {
		mean, lo, hi := f.series.Forecast(h)
		r.Points = append(r.Points, ForecastPoint{Horizon: h, Mean: mean, Lower: lo, Upper: hi})
	}
	return r, true
}
