package health

import (
	"fmt"
	"time"
)

// States of a real server, as Tracker.State reports them.
const (
	StateUp       = "up"
	StateDown     = "down"
	StateDraining = "draining" // up, but takes no new connections
	StateMaint    = "maint"    // an agent put it in maintenance: out of service
)

// Params are the lifecycle settings of one real server.
type Params struct {
	Rise, Fall int
	Weight     int           // configured weight
	SlowStart  time.Duration // 0: none
	// Inhibit (keepalived's inhibit_on_failure) keeps a down real server in
	// the scheduler at weight 0, so its established connections finish,
	// instead of removing it.
	Inhibit bool
	// Checked says an active check runs. An unchecked real server is always
	// up: nothing could bring it back.
	Checked bool
	// Standby keeps the real server at weight 0 until Call: the service's
	// pre-warming calls it when the load needs it (docs/forecast.md).
	Standby bool
}

// Transition is a change of a real server's State, with what caused it.
type Transition struct {
	At       time.Time
	From, To string
	Reason   string
}

// Tracker is the lifecycle of one real server: the rise/fall state machine
// over its check results, and what an agent, an operator and passive health
// say, from which it computes the effective weight. It is pure: the caller
// passes the time, does the I/O, and serialises calls.
type Tracker struct {
	p     Params
	up    bool
	alpha bool // down since creation: the first passing check brings it up

	passes, fails int

	agentReply AgentReply // the last reply, for its figures
	agentAt    time.Time

	rampFrom time.Time // slow start began; zero: not ramping
	rampOnUp bool      // the next up ramps: the server was down, or is new

	weightMode WeightMode
	weight     int // from a dynamic script or a file check

	percent      int // agent's weight percentage, 100 until it says otherwise
	maxConn      int // agent's maxconn, -1 until it says
	agentDrain   bool
	agentMaint   bool
	agentDown    bool
	agentWhy     string // the description the agent gave with down
	operatorHold bool   // an operator's drain
	suspect      bool   // down because the dataplane saw a failure
	called       bool   // a standby server the pre-warming called in

	last    Result
	checks  uint64
	state   string
	changed time.Time
	reason  string
}

// NewTracker returns the tracker of a new real server. With alpha it starts
// down until its first check passes; otherwise up. ramp says the server
// joins a running service: it then slow-starts when it comes up.
func NewTracker(p Params, alpha, ramp bool, now time.Time) *Tracker {
	t := &Tracker{p: p, up: true, percent: 100, maxConn: -1, rampOnUp: ramp, changed: now}
	t.reason = "configured"
	if alpha && p.Checked {
		t.up, t.alpha = false, true
		t.reason = "alpha: down until the first check passes"
	} else if ramp {
		t.startRamp(now)
	}
	t.state = t.State()
	return t
}

// Params returns the tracker's settings.
func (t *Tracker) Params() Params { return t.p }

// Up reports whether the checks say the real server is up.
func (t *Tracker) Up() bool { return t.up }

// State is the real server's state: StateUp, StateDown, StateDraining or StateMaint.
func (t *Tracker) State() string {
	switch {
	case t.agentMaint:
		return StateMaint
	case !t.up:
		return StateDown
	case t.operatorHold || t.agentDrain:
		return StateDraining
	}
	return StateUp
}

// Observe takes a check's result. It returns the transition it caused, if any.
func (t *Tracker) Observe(r Result, now time.Time) (Transition, bool) {
	if r.OK && r.WeightMode == WeightAdd && t.p.Weight+r.Weight < 0 {
		r.OK = false
		r.Msg += fmt.Sprintf(" (weight %d%+d is below 0)", t.p.Weight, r.Weight)
	}
	t.last = r
	t.checks++
	var reason string
	if r.HasAgent {
		t.agentReply, t.agentAt = r.Agent, r.At
		reason = t.applyAgent(r.Agent)
	}
	if r.OK && r.WeightMode != WeightKeep {
		t.weightMode, t.weight = r.WeightMode, r.Weight
	}
	ok := r.OK && !t.agentDown
	msg := r.Msg
	if r.OK && t.agentDown {
		msg = "agent says down"
		if t.agentWhy != "" {
			msg += ": " + t.agentWhy
		}
	}
	if !t.p.Checked {
		return t.emit(now, reason)
	}
	if ok {
		t.fails = 0
		t.passes++
		if !t.up && (t.alpha || t.passes >= t.p.Rise) {
			if t.alpha {
				reason = fmt.Sprintf("first %s check passed (alpha): %s", r.Type, msg)
			} else {
				reason = fmt.Sprintf("%s check passed %d times (rise %d): %s", r.Type, t.passes, t.p.Rise, msg)
			}
			t.setUp(now)
		}
	} else {
		t.passes = 0
		t.fails++
		if t.up && t.fails >= t.p.Fall {
			reason = fmt.Sprintf("%s check failed %d times (fall %d): %s", r.Type, t.fails, t.p.Fall, msg)
			t.setDown()
		}
	}
	return t.emit(now, reason)
}

// applyAgent takes what an agent said; parameters it did not advertise are
// left as they were, as in HAProxy.
func (t *Tracker) applyAgent(a AgentReply) string {
	var reason string
	if a.Percent >= 0 {
		t.percent = a.Percent
	}
	if a.MaxConn >= 0 {
		t.maxConn = a.MaxConn
	}
	switch a.Admin {
	case AdminReady:
		if t.agentDrain || t.agentMaint {
			reason = "agent: ready"
		}
		t.agentDrain, t.agentMaint = false, false
	case AdminDrain:
		t.agentDrain, t.agentMaint = true, false
		reason = "agent: drain"
	case AdminMaint:
		t.agentMaint = true
		reason = "agent: maint"
	}
	switch a.Op {
	case OpUp:
		t.agentDown = false
	case OpDown:
		t.agentDown, t.agentWhy = true, a.Desc
	}
	if a.Desc != "" && reason != "" {
		reason += ": " + a.Desc
	}
	return reason
}

// Suspect takes the real server out of service at once, as if fall had been
// reached, because the dataplane saw it fail (a refused or timed out
// connect). Active checks bring it back after rise passes. It does nothing
// to an unchecked or already down server.
func (t *Tracker) Suspect(why string, now time.Time) (Transition, bool) {
	if !t.p.Checked || !t.up {
		return Transition{}, false
	}
	t.setDown()
	t.passes, t.fails = 0, t.p.Fall
	t.suspect = true
	return t.emit(now, "passive: "+why)
}

// SetDrain sets or clears an operator's drain: no new connections, the
// established ones finish.
func (t *Tracker) SetDrain(on bool, now time.Time) (Transition, bool) {
	if t.operatorHold == on {
		return Transition{}, false
	}
	t.operatorHold = on
	reason := "operator: drain"
	if !on {
		reason = "operator: drain off"
	}
	return t.emit(now, reason)
}

// Waiting reports a standby real server not called yet: it takes no new
// connections and counts for nothing in the quorum.
func (t *Tracker) Waiting() bool { return t.p.Standby && !t.called }

// Call brings a waiting standby server in: it then ramps as slow start
// says, from now (or when it comes up, if it is down). It reports whether
// it was waiting.
func (t *Tracker) Call(now time.Time) bool {
	if !t.Waiting() {
		return false
	}
	t.called = true
	if t.up {
		t.startRamp(now)
	} else {
		t.rampOnUp = true
	}
	return true
}

// Draining reports an operator's drain.
func (t *Tracker) Draining() bool { return t.operatorHold }

// Reconfigure applies new settings, keeping the state: a reload does not
// bring a down server up or take an up one down, except that a server
// whose check was removed is up (nothing could bring it back otherwise).
func (t *Tracker) Reconfigure(p Params, now time.Time) (Transition, bool) {
	old := t.p
	t.p = p
	var reason string
	if old.Checked && !p.Checked {
		t.percent, t.maxConn, t.weightMode = 100, -1, WeightKeep
		t.agentDrain, t.agentMaint, t.agentDown, t.suspect, t.alpha = false, false, false, false, false
		t.passes, t.fails = 0, 0
		if !t.up {
			t.setUp(now)
		}
		reason = "health check removed"
	}
	return t.emit(now, reason)
}

func (t *Tracker) setUp(now time.Time) {
	t.up, t.alpha, t.suspect = true, false, false
	if t.rampOnUp {
		t.startRamp(now)
	}
}

func (t *Tracker) setDown() {
	t.up, t.alpha = false, false
	t.rampFrom = time.Time{}
	t.rampOnUp = true
}

func (t *Tracker) startRamp(now time.Time) {
	t.rampOnUp = false
	if t.p.SlowStart > 0 {
		t.rampFrom = now
	}
}

// emit records a change of State and returns it as a Transition.
func (t *Tracker) emit(now time.Time, reason string) (Transition, bool) {
	s := t.State()
	if s == t.state {
		return Transition{}, false
	}
	tr := Transition{At: now, From: t.state, To: s, Reason: reason}
	if tr.Reason == "" {
		tr.Reason = "state changed"
	}
	t.state, t.changed, t.reason = s, now, tr.Reason
	return tr, true
}

// BaseWeight is the configured weight as a dynamic check and the agent's
// percentage change it, before slow start and drain.
func (t *Tracker) BaseWeight() int {
	w := t.p.Weight
	switch t.weightMode {
	case WeightSet:
		w = t.weight
	case WeightAdd:
		w += t.weight
	}
	w = clampWeight(w)
	if t.percent != 100 {
		p := w * t.percent / 100
		if p == 0 && w > 0 && t.percent > 0 {
			p = 1
		}
		w = clampWeight(p)
	}
	return w
}

// Weight is the effective weight at now: the base weight during slow start
// ramps linearly from 1; it is 0 when the server is down, drained or in
// maintenance.
func (t *Tracker) Weight(now time.Time) int {
	if !t.up || t.agentMaint || t.operatorHold || t.agentDrain || t.Waiting() {
		return 0
	}
	w := t.BaseWeight()
	return SlowStart(w, t.rampFrom, now, t.p.SlowStart)
}

// InService reports whether the real server belongs in the scheduler's set:
// when up, and when down with inhibit_on_failure (at weight 0), unless an
// agent put it in maintenance.
func (t *Tracker) InService() bool {
	if t.agentMaint {
		return false
	}
	return t.up || t.p.Inhibit
}

// LiveWeight is what the server counts towards its service's quorum: its
// base weight when up, else 0.
func (t *Tracker) LiveWeight() int {
	if !t.up || t.agentMaint || t.Waiting() {
		return 0
	}
	return t.BaseWeight()
}

// MaxConn is the connection limit an agent advertised, or -1.
func (t *Tracker) MaxConn() int { return t.maxConn }

// RampEnd is when the running slow start ends, or the zero time when the
// weight is not ramping at now.
func (t *Tracker) RampEnd(now time.Time) time.Time {
	if t.rampFrom.IsZero() || !t.up {
		return time.Time{}
	}
	end := t.rampFrom.Add(t.p.SlowStart)
	if !now.Before(end) {
		t.rampFrom = time.Time{}
		return time.Time{}
	}
	return end
}

// Status is a snapshot of a Tracker, for the API and the dashboard.
type Status struct {
	State      string
	Checked    bool
	Up         bool
	Suspect    bool // down on the dataplane's word, waiting for checks to confirm
	Draining   bool // an operator's drain
	AgentDrain bool
	AgentMaint bool
	AgentDown  bool
	Percent    int // agent's weight percentage
	Checks     uint64
	Passes     int // consecutive
	Fails      int // consecutive
	Last       Result
	Changed    time.Time
	Reason     string
	RampEnd    time.Time
	Standby    bool // a standby server the pre-warming has not called yet
	// Agent is the agent's last reply (its figures for the API and
	// /metrics), received at AgentAt; zero AgentAt: none yet.
	Agent   AgentReply
	AgentAt time.Time
}

// Status returns a snapshot of the tracker at now.
func (t *Tracker) Status(now time.Time) Status {
	return Status{
		State: t.State(), Checked: t.p.Checked, Up: t.up, Suspect: t.suspect,
		Draining: t.operatorHold, AgentDrain: t.agentDrain, AgentMaint: t.agentMaint, AgentDown: t.agentDown,
		Percent: t.percent, Checks: t.checks, Passes: t.passes, Fails: t.fails, Last: t.last,
		Changed: t.changed, Reason: t.reason, RampEnd: t.RampEnd(now), Standby: t.Waiting(),
		Agent: t.agentReply, AgentAt: t.agentAt,
	}
}

// SlowStart is weight w ramped linearly from 1 over d since from: 1 at
// from, w at from+d and after. A zero from or d means no ramp.
func SlowStart(w int, from, now time.Time, d time.Duration) int {
	if w <= 1 || from.IsZero() || d <= 0 {
		return w
	}
	el := now.Sub(from)
	if el >= d {
		return w
	}
	if el < 0 {
		el = 0
	}
	return 1 + int(int64(w-1)*int64(el)/int64(d))
}

func clampWeight(w int) int { return min(max(w, 0), 65535) }

// Quorum is a virtual service's quorum (keepalived's): it is lost when the
// live weight falls below need-hysteresis and gained back when it reaches
// need+hysteresis.
type Quorum struct {
	need, hyst int
	up         bool
}

// NewQuorum returns a quorum whose state follows total at once.
func NewQuorum(need, hysteresis, total int) Quorum {
	return Quorum{need: need, hyst: hysteresis, up: total >= need}
}

// Up reports whether the quorum is reached.
func (q *Quorum) Up() bool { return q.up }

// Set changes need and hysteresis, keeping the state.
func (q *Quorum) Set(need, hysteresis int) { q.need, q.hyst = need, hysteresis }

// Update takes the current live weight and reports whether the state changed.
func (q *Quorum) Update(total int) bool {
	switch {
	case q.up && total < q.need-q.hyst:
		q.up = false
		return true
	case !q.up && total >= q.need+q.hyst:
		q.up = true
		return true
	}
	return false
}
