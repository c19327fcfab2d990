package sim

import (
	"fmt"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/govs-lb/govs/internal/forecast"
	"github.com/govs-lb/govs/internal/health"
)

// Pre-warming in the simulator: standby servers (a server group with
// standby: true) take no connections until the director calls them; then
// they warm up (their warm-up clock starts: a standby server is cold) and
// their weight ramps from 1 as slow start does (health.SlowStart, the
// director's own rule). When to call them is forecast.Prewarmer's decision,
// the director's own code, fed each step with the arrival rate the
// directors saw and a Holt-Winters model of it (forecast.Model): in
// forecast-only mode when the rate now exceeds what the servers in service
// carry, in prewarm mode also when the forecast says it will within the
// horizon. Comparing the two modes on the same scenario and seed gives the
// cold run and the pre-warmed one.

// Prewarm is a scenario's pre-warming.
type Prewarm struct {
	Mode      string  // forecast.ModeForecastOnly or forecast.ModePrewarm
	Step      float64 // the model's step, seconds
	Horizon   float64 // seconds
	SlowStart float64 // the called server's weight ramp, seconds
	Headroom  float64 // of the capacity; 0: the Prewarmer's default
	// PerWeight is the capacity per unit of weight the directors know
	// (requests per second); 0: the nominal one, the servers' slots over
	// their mean service time per unit of weight.
	PerWeight float64
	// Window is the part of the run whose requests' p99 the report gives
	// apart (the ramp); For 0: none.
	Window struct{ At, For When }
}

// prewarmState is a run's.
type prewarmState struct {
	p        *forecast.Prewarmer
	model    *forecast.Model
	step     int64
	arrived  int       // arrivals counted at the last tick
	called   []float64 // when each server was called; -1: not (or not standby)
	calledAt []float64 // in call order, for the report
	ramping  bool
	perW     float64
	winFrom  float64
	winTo    float64
}

// startPrewarm sets the standby servers at weight 0 and schedules the
// first tick.
func (s *sim) startPrewarm(length float64) error {
	pw := s.sc.Prewarm
	if pw == nil {
		return nil
	}
	season := 0
	if s.sc.Load.Day > 0 {
		season = max(int(s.sc.Load.Day/pw.Step+0.5), 1)
	}
	m, err := forecast.New(forecast.Config{Step: time.Duration(pw.Step * 1e9), Season: season, Alpha: 0.1, Gamma: 0.3})
	if err != nil {
		return fmt.Errorf("scenario %s: %w", s.sc.Name, err)
	}
	st := &prewarmState{p: forecast.NewPrewarmer(forecast.PrewarmConfig{Mode: pw.Mode, Headroom: pw.Headroom}),
		model: m, called: make([]float64, len(s.servers)), perW: pw.PerWeight}
	if st.perW <= 0 {
		var c, w float64
		for _, srv := range s.sc.Servers {
			c += float64(srv.Capacity) / (srv.Service.Mean * srv.Slowdown)
			w += float64(srv.Weight)
		}
		st.perW = c / max(w, 1)
	}
	if pw.Window.For.In(length) > 0 {
		st.winFrom = pw.Window.At.In(length)
		st.winTo = st.winFrom + pw.Window.For.In(length)
	}
	for i := range s.servers {
		st.called[i] = -1
		if s.servers[i].spec.Standby {
			for k := range s.dirs {
				s.dirs[k].dests[i].SetWeight(0)
			}
		}
	}
	for k := range s.dirs {
		s.dirs[k].sched.Update(slices.Clone(s.dirs[k].dests))
	}
	s.pw = st
	s.at(pw.Step, evPrewarm, 0, 0)
	return nil
}

// weightNow is server i's weight when up: 0 while in standby, ramping
// after its call.
func (s *sim) weightNow(i int) int {
	w := s.servers[i].spec.Weight
	if s.pw == nil || !s.servers[i].spec.Standby {
		return w
	}
	at := s.pw.called[i]
	if at < 0 {
		return 0
	}
	from := simEpoch.Add(time.Duration(at * 1e9))
	return health.SlowStart(w, from, s.clock(), time.Duration(s.sc.Prewarm.SlowStart*1e9))
}

// prewarmTick closes a step of the rate's model and asks the Prewarmer.
func (s *sim) prewarmTick() {
	st, pw := s.pw, s.sc.Prewarm
	rate := float64(s.arrived-st.arrived) / pw.Step
	st.arrived = s.arrived
	st.model.Observe(st.step, rate)
	st.step++
	if s.arrived < s.total {
		s.at(s.now+pw.Step, evPrewarm, 0, 0)
	}
	in := forecast.PrewarmInput{Rate: rate, PerWeight: st.perW, Peak: st.model.Expect(max(int(pw.Horizon/pw.Step+0.5), 1))}
	var waiting []int
	for i := range s.servers {
		srv := &s.servers[i]
		if !srv.up || s.dirs[0].down[i] {
			continue
		}
		if srv.spec.Standby && st.called[i] < 0 {
			in.Waiting = append(in.Waiting, srv.spec.Weight)
			waiting = append(waiting, i)
		} else {
			in.Active += srv.spec.Weight
		}
	}
	d := st.p.Decide(s.clock(), in)
	for _, i := range waiting[:d.Call] {
		st.called[i] = s.now
		st.calledAt = append(st.calledAt, s.now)
		s.servers[i].started = s.now // cold until now: it warms up as it serves
	}
	if d.Call > 0 && !st.ramping {
		st.ramping = true
		s.rampTick()
	}
}

// rampTick applies the called servers' slow-start weights, 32 steps a ramp
// as the director's health machine does.
func (s *sim) rampTick() {
	st, pw := s.pw, s.sc.Prewarm
	more := false
	for i, at := range st.called {
		if at < 0 {
			continue
		}
		w := s.weightNow(i)
		more = more || s.now < at+pw.SlowStart
		for k := range s.dirs {
			if d := s.dirs[k].dests[i]; !s.dirs[k].down[i] && d.Weight() != w {
				d.SetWeight(w)
				s.dirs[k].sched.Update(slices.Clone(s.dirs[k].dests))
			}
		}
	}
	st.ramping = more
	if more {
		s.at(s.now+max(pw.SlowStart/32, 0.01), evRamp, 0, 0)
	}
}

// inWindow reports whether a request that arrived at t counts in the
// window's percentiles.
func (st *prewarmState) inWindow(t float64) bool { return st != nil && t >= st.winFrom && t < st.winTo }

func (p *parser) prewarm(n *yaml.Node) *Prewarm {
	f := p.fields(n, "prewarm", "mode", "step", "horizon", "slow_start", "headroom", "per_weight", "window")
	pw := &Prewarm{Mode: forecast.ModePrewarm, Step: 1, Horizon: 5, SlowStart: 5}
	if v := f["mode"]; v != nil {
		pw.Mode, _ = p.scalar(v, "mode")
		if pw.Mode != forecast.ModePrewarm && pw.Mode != forecast.ModeForecastOnly {
			p.errorf(v, "unknown prewarm mode %q (forecast-only or prewarm)", pw.Mode)
		}
	}
	if v := f["step"]; v != nil {
		pw.Step = p.duration(v, "step", time.Millisecond)
	}
	if v := f["horizon"]; v != nil {
		pw.Horizon = p.duration(v, "horizon", time.Millisecond)
	}
	if v := f["slow_start"]; v != nil {
		pw.SlowStart = p.duration(v, "slow_start", 0)
	}
	if v := f["headroom"]; v != nil {
		pw.Headroom = p.number(v, "headroom", 0.05, 1)
	}
	if v := f["per_weight"]; v != nil {
		pw.PerWeight = p.number(v, "per_weight", 0.001, 1e9)
	}
	if v := f["window"]; v != nil {
		wf := p.fields(v, "window", "at", "for")
		if x := wf["at"]; x != nil {
			pw.Window.At = p.when(x, "at")
		}
		if x := wf["for"]; x != nil {
			pw.Window.For = p.when(x, "for")
		} else {
			p.errorf(v, "window needs for (how long)")
		}
	}
	return pw
}

// WithPrewarmMode returns a copy of sc in mode, named NAME/MODE, for
// comparing the cold run with the pre-warmed one; sc unchanged when it has
// no prewarm block.
func (sc *Scenario) WithPrewarmMode(mode string) (*Scenario, error) {
	if mode != forecast.ModePrewarm && mode != forecast.ModeForecastOnly {
		return nil, fmt.Errorf("unknown prewarm mode %q (forecast-only or prewarm)", mode)
	}
	if sc.Prewarm == nil {
		return sc, nil
	}
	c := *sc
	pw := *sc.Prewarm
	pw.Mode = mode
	c.Prewarm = &pw
	c.Name = sc.Name + "/" + mode
	c.base = sc.streamName()
	return &c, nil
}

// streamName is the name the random streams are drawn for: a copy in
// another prewarm mode serves the same requests as its original.
func (sc *Scenario) streamName() string {
	if sc.base != "" {
		return sc.base
	}
	return sc.Name
}
