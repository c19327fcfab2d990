package director

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

// forecastRig is a director with one service of an active and a standby
// real server (no checks: both up), a fake clock shared by the director
// and the samples, and the events its hook receives.
type forecastRig struct {
	t      *testing.T
	d      *Director
	vs     *VirtualService
	mu     sync.Mutex
	now    time.Time
	hooked []HealthEvent
}

func newForecastRig(t *testing.T, forecastBlock string) *forecastRig {
	r := &forecastRig{t: t, now: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
	r.d = New(healthLog(), healthDataplane{})
	r.d.hc.now = func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now }
	r.d.SetEventHook(func(ev HealthEvent) { r.mu.Lock(); r.hooked = append(r.hooked, ev); r.mu.Unlock() })
	t.Cleanup(func() { r.d.Shutdown(time.Second) })
	applyYAML(t, r.d, forecastRigYAML(forecastBlock))
	r.vs = r.d.Service("tcp/127.0.0.1:80")
	return r
}

// forecastRigYAML is the rig's configuration with forecastBlock.
func forecastRigYAML(forecastBlock string) string {
	return `
virtual_servers:
  - name: web
    address: 127.0.0.1:80
    slow_start: 10m
` + forecastBlock + `
    real_servers:
      - address: 127.0.0.1:9001
        weight: 10
      - address: 127.0.0.1:9002
        weight: 10
        standby: true
`
}

func (r *forecastRig) standby() *RealServer { return realServer(r.vs, "127.0.0.1:9002") }

// run advances the clock by a minute at a time for minutes minutes at
// rate(minute of the day) connections per second, sampling each minute.
func (r *forecastRig) run(minutes int, rate func(min int) float64) {
	for range minutes {
		r.mu.Lock()
		r.now = r.now.Add(time.Minute)
		now := r.now
		r.mu.Unlock()
		m := now.Hour()*60 + now.Minute()
		r.vs.Stats.Conns.Add(uint64(rate(m) * 60))
		r.d.SampleForecasts(now)
	}
}

func (r *forecastRig) events(kind string) []string {
	var out []string
	for _, ev := range r.d.HealthEvents() {
		if ev.Kind == kind && (kind != "" || ev.From == "standby") {
			out = append(out, ev.From+">"+ev.To+": "+ev.Reason)
		}
	}
	return out
}

// TestForecastOnlyCallsStandbyOnLoad: in the default mode the standby
// server waits at weight 0 while the servers in service carry the load,
// and is called (slow start from weight 1) once the load now exceeds 90%
// of their configured capacity.
func TestForecastOnlyCallsStandbyOnLoad(t *testing.T) {
	r := newForecastRig(t, "    forecast: {capacity: 10}\n") // 10/s a unit of weight: 100/s for the active server
	r.run(30, func(int) float64 { return 50 })
	if w := r.standby().Dest.Weight(); w != 0 || !r.standby().Health().Standby {
		t.Fatalf("standby server at 50/s: weight %d, health %+v", w, r.standby().Health())
	}
	if got := picks(r.vs, 20); got["127.0.0.1:9002"] != 0 {
		t.Fatalf("a waiting standby server was scheduled: %v", got)
	}
	r.run(2, func(int) float64 { return 95 })
	if w := r.standby().Dest.Weight(); w != 1 {
		t.Fatalf("standby server at 95/s: weight %d, want 1 (slow start begins)", w)
	}
	r.run(10, func(int) float64 { return 95 })
	r.vs.rampTick()
	if w := r.standby().Dest.Weight(); w != 10 {
		t.Fatalf("after the slow start: weight %d, want 10", w)
	}
	evs := r.events("")
	if len(evs) != 1 || !strings.Contains(evs[0], "standby>called: the load now (95.0 connections/s) exceeds 90%") {
		t.Fatalf("events %v", evs)
	}
	// The load falls: nothing takes it out again.
	r.run(30, func(int) float64 { return 5 })
	if w := r.standby().Dest.Weight(); w != 10 {
		t.Fatalf("after the load fell: weight %d", w)
	}
}

// rush is a day with a rush hour: 20/s, 80/s from 09:00 to 10:00.
func rush(m int) float64 {
	if m >= 9*60 && m < 10*60 {
		return 80
	}
	return 20
}

// busierRush is rush, 1.5 times busier: 30/s, 120/s.
func busierRush(m int) float64 { return 1.5 * rush(m) }

// TestPrewarmCallsStandbyAhead: two days with a rush hour the server in
// service carries (80/s, 90% of its capacity is 90/s), then a busier day
// (30/s, 120/s in the rush hour). In prewarm mode the standby server is
// called before the third day's rush hour begins; in forecast-only mode,
// once it has begun.
func TestPrewarmCallsStandbyAhead(t *testing.T) {
	calledAt := map[string]time.Time{}
	for _, mode := range []string{"forecast-only", "prewarm"} {
		r := newForecastRig(t, "    forecast: {mode: "+mode+", capacity: 10, horizon: 15m}\n")
		r.run(2*1440, rush)
		r.run(8*60, busierRush) // to 08:00 on the third day
		if w := r.standby().Dest.Weight(); w != 0 {
			t.Fatalf("%s: the standby server called before the third day: %v", mode, r.events(""))
		}
		for range 120 {
			r.run(1, busierRush)
			if r.standby().Dest.Weight() > 0 {
				calledAt[mode] = r.now
				break
			}
		}
		t.Logf("%s: called at %s; %v", mode, calledAt[mode].Format("15:04"), r.events(""))
	}
	rushStart := time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)
	if c := calledAt["forecast-only"]; c.Before(rushStart) {
		t.Errorf("forecast-only called the standby server at %s, before the rush hour", c.Format("15:04"))
	}
	if c := calledAt["prewarm"]; c.IsZero() || !c.Before(rushStart) || c.Before(rushStart.Add(-20*time.Minute)) {
		t.Errorf("prewarm called the standby server at %s, want within the 15 minutes before 09:00", c.Format("15:04"))
	}
}

// TestCapacityAlertEvents: the forecast crossing the configured capacity
// raises the alert once (an event in the log, one through the hook), and
// it clears once the forecast falls below 90% of it.
func TestCapacityAlertEvents(t *testing.T) {
	r := newForecastRig(t, "    forecast: {capacity: 5, horizon: 15m}\n") // 100/s with both servers (the standby one counts)
	r.run(2*1440+8*60, rush)
	before := len(r.events(CapacityAlertKind))
	if before != 0 {
		t.Fatalf("capacity events with the load under it: %v", r.events(CapacityAlertKind))
	}
	// The third day is busier: 120/s in the rush hour.
	r.run(3*60, busierRush)
	evs := r.events(CapacityAlertKind)[before:]
	if len(evs) != 2 || !strings.HasPrefix(evs[0], "capacity ok>capacity exceeded: forecast ") ||
		!strings.Contains(evs[0], "exceeds the configured capacity 100.0") || !strings.HasPrefix(evs[1], "capacity exceeded>capacity ok") {
		t.Fatalf("capacity events %v", evs)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var hooked int
	for _, ev := range r.hooked {
		if ev.Kind == CapacityAlertKind {
			hooked++
		}
	}
	if hooked != before+2 {
		t.Fatalf("hook got %d capacity events, want %d", hooked, before+2)
	}
	rep, ok := r.d.ServiceForecast(r.vs, []time.Duration{5 * time.Minute})
	if !ok || rep.Capacity != 100 || rep.Source != "configured" || rep.Alert || rep.Horizon != 15*time.Minute || rep.Called != 1 {
		t.Fatalf("report %+v", rep)
	}
}

// TestCapacityLearned: the mean connection time of the proxy's real
// servers grows with the rate as a queue's; the director learns where it
// bends from its samples alone.
func TestCapacityLearned(t *testing.T) {
	r := newForecastRig(t, "")
	active := realServer(r.vs, "127.0.0.1:9001")
	// 10 ms when idle, a queue of capacity 50/s a unit of weight (500/s
	// for the active server's weight 10): the bend (latency doubled) at
	// 25/s a unit, 250/s for the service's 20 units up.
	for i := range 200 {
		rate := float64(i%10) * 45 // 0..405 /s
		lat := 0.01 / (1 - rate/500)
		r.mu.Lock()
		r.now = r.now.Add(time.Minute)
		now := r.now
		r.mu.Unlock()
		n := int(rate * 60)
		r.vs.Stats.Conns.Add(uint64(n))
		for range max(n/100, 1) {
			active.Latency.observe(sched.Signal{Kind: sched.Duration, Latency: time.Duration(lat * 1e9)})
		}
		r.d.SampleForecasts(now)
	}
	rep, ok := r.d.ServiceForecast(r.vs, nil)
	if !ok || rep.Source != "learned" || rep.PerWeight < 22 || rep.PerWeight > 28 || rep.Capacity != rep.PerWeight*20 {
		t.Fatalf("report %+v, want learned about 25/s a unit of weight", rep)
	}
	t.Logf("learned %.1f/s a unit of weight, %.0f/s for the service, from %d samples", rep.PerWeight, rep.Capacity, rep.CapacitySamples)
}

// cycleRate is a minute-long cycle with a rush: base/s, a ramp from 30 s
// to 38 s to 6 times base, held to 46 s, then base again (the live test's
// shape, test/forecast_live_test.go).
func cycleRate(base float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		p := float64(t.UnixNano()%int64(time.Minute)) / 1e9
		switch {
		case p >= 30 && p < 38:
			return base * (1 + 5*(p-30)/8)
		case p >= 38 && p < 46:
			return base * 6
		}
		return base
	}
}

// runEvery advances the clock by step n times at rate(now) connections
// per second, sampling after each step.
func (r *forecastRig) runEvery(step time.Duration, n int, rate func(time.Time) float64) {
	for range n {
		r.mu.Lock()
		r.now = r.now.Add(step)
		now := r.now
		r.mu.Unlock()
		r.vs.Stats.Conns.Add(uint64(rate(now) * step.Seconds()))
		r.d.SampleForecasts(now)
	}
}

// TestPrewarmShortSeason: a service whose load recurs every minute sets
// step 2s and season 1m; two quiet minutes with a rush the server in
// service carries (12/s against 90% of 20/s), then a busier one (8/s,
// 48/s in the rush). In prewarm mode the standby server is called before
// the busier rush's ramp begins (at 30 s); in forecast-only mode once the
// ramp is under way. The capacity alert (40/s with both servers) is raised
// before the busier rush and cleared after it.
func TestPrewarmShortSeason(t *testing.T) {
	calledAt := map[string]time.Time{}
	for _, mode := range []string{"forecast-only", "prewarm"} {
		r := newForecastRig(t, "    forecast: {mode: "+mode+", capacity: 2, step: 2s, season: 1m, horizon: 20s}\n")
		r.runEvery(2*time.Second, 60, cycleRate(2))
		if w := r.standby().Dest.Weight(); w != 0 || len(r.events(CapacityAlertKind)) != 0 {
			t.Fatalf("%s: called or alerted in the quiet minutes: %v %v", mode, r.events(""), r.events(CapacityAlertKind))
		}
		rep, _ := r.d.ServiceForecast(r.vs, nil)
		if !rep.Ready || rep.Step != 2*time.Second || rep.Observations < 30 {
			t.Fatalf("%s: after two minutes: %+v", mode, rep)
		}
		for range 30 {
			r.runEvery(2*time.Second, 1, cycleRate(8))
			if r.standby().Dest.Weight() > 0 && calledAt[mode].IsZero() {
				calledAt[mode] = r.now
			}
		}
		evs := r.events(CapacityAlertKind)
		if len(evs) != 2 || !strings.HasPrefix(evs[0], "capacity ok>capacity exceeded") || !strings.HasPrefix(evs[1], "capacity exceeded>capacity ok") {
			t.Errorf("%s: capacity events %v", mode, evs)
		}
		t.Logf("%s: called at %s; %v %v", mode, calledAt[mode].Format("15:04:05"), r.events(""), evs)
	}
	rampStart := time.Date(2026, 11, 2, 0, 2, 30, 0, time.UTC)
	if c := calledAt["forecast-only"]; c.IsZero() || c.Before(rampStart) {
		t.Errorf("forecast-only called the standby server at %s, want once the ramp from 00:02:30 is under way", c.Format("15:04:05"))
	}
	if c := calledAt["prewarm"]; c.IsZero() || !c.Before(rampStart) || c.Before(rampStart.Add(-20*time.Second)) {
		t.Errorf("prewarm called the standby server at %s, want within the 20 s before 00:02:30", c.Format("15:04:05"))
	}
}

// TestForecastStepReload: a reload that changes the step or the season
// starts the model afresh (its observations are of another step); one
// that keeps them keeps the model.
func TestForecastStepReload(t *testing.T) {
	r := newForecastRig(t, "    forecast: {step: 2s, season: 1m, horizon: 20s}\n")
	r.runEvery(2*time.Second, 40, cycleRate(2))
	rep, _ := r.d.ServiceForecast(r.vs, nil)
	if rep.Observations < 38 || rep.Step != 2*time.Second {
		t.Fatalf("before the reload: %+v", rep)
	}
	reload := func(block string) { applyYAML(t, r.d, forecastRigYAML(block)) }
	reload("    forecast: {step: 2s, season: 1m, horizon: 10s}\n")
	r.runEvery(2*time.Second, 1, cycleRate(2))
	if rep, _ := r.d.ServiceForecast(r.vs, nil); rep.Observations < 39 {
		t.Fatalf("a new horizon lost the model: %+v", rep)
	}
	reload("    forecast: {step: 4s, season: 1m, horizon: 10s}\n")
	r.runEvery(4*time.Second, 3, cycleRate(2))
	if rep, _ := r.d.ServiceForecast(r.vs, nil); rep.Observations > 3 || rep.Step != 4*time.Second {
		t.Fatalf("a new step kept the old model: %+v", rep)
	}
}
