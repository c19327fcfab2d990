package health

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func ok() Result  { return Result{OK: true, Type: "tcp", Msg: "connected"} }
func bad() Result { return Result{Type: "tcp", Msg: "connect: connection refused"} }
func agent(s string) Result {
	return Result{OK: true, Type: "agent", Msg: "agent: " + s, HasAgent: true, Agent: ParseAgent(s)}
}

// step is one event fed to a Tracker, and what must hold after it.
type step struct {
	res     *Result       // a check result, or
	suspect bool          // a passive failure, or
	drain   *bool         // an operator's drain
	advance time.Duration // time passing before the event
	// expectations
	state  string
	weight int
	in     bool
	trans  bool   // a transition happened
	reason string // part of the transition's reason
}

func r(x Result) *Result { return &x }
func b(v bool) *bool     { return &v }

func TestTracker(t *testing.T) {
	base := Params{Rise: 2, Fall: 3, Weight: 10, Checked: true}
	for _, tc := range []struct {
		name  string
		p     Params
		alpha bool
		ramp  bool
		steps []step
	}{
		{"starts up; fall failures take it down; rise passes bring it up", base, false, false, []step{
			{res: r(ok()), state: StateUp, weight: 10, in: true},
			{res: r(bad()), state: StateUp, weight: 10, in: true},
			{res: r(bad()), state: StateUp, weight: 10, in: true},
			{res: r(bad()), state: StateDown, weight: 0, in: false, trans: true, reason: "tcp check failed 3 times (fall 3): connect: connection refused"},
			{res: r(bad()), state: StateDown, weight: 0, in: false},
			{res: r(ok()), state: StateDown, weight: 0, in: false},
			{res: r(bad()), state: StateDown, weight: 0, in: false},
			{res: r(ok()), state: StateDown, weight: 0, in: false},
			{res: r(ok()), state: StateUp, weight: 10, in: true, trans: true, reason: "tcp check passed 2 times (rise 2)"},
		}},
		{"a pass resets the failure count", base, false, false, []step{
			{res: r(bad()), state: StateUp, weight: 10, in: true},
			{res: r(bad()), state: StateUp, weight: 10, in: true},
			{res: r(ok()), state: StateUp, weight: 10, in: true},
			{res: r(bad()), state: StateUp, weight: 10, in: true},
			{res: r(bad()), state: StateUp, weight: 10, in: true},
		}},
		{"alpha: down until the first pass", base, true, false, []step{
			{res: r(bad()), state: StateDown, weight: 0, in: false},
			{res: r(ok()), state: StateUp, weight: 10, in: true, trans: true, reason: "first tcp check passed (alpha)"},
			{res: r(bad()), state: StateUp, weight: 10, in: true},
		}},
		{"inhibit_on_failure keeps a down server in the set at weight 0", Params{Rise: 1, Fall: 1, Weight: 5, Checked: true, Inhibit: true}, false, false, []step{
			{res: r(bad()), state: StateDown, weight: 0, in: true, trans: true},
			{res: r(ok()), state: StateUp, weight: 5, in: true, trans: true},
		}},
		{"passive suspicion takes it out at once; rise passes bring it back", base, false, false, []step{
			{suspect: true, state: StateDown, weight: 0, in: false, trans: true, reason: "passive: connect failed"},
			{suspect: true, state: StateDown, weight: 0, in: false},
			{res: r(ok()), state: StateDown, weight: 0, in: false},
			{res: r(ok()), state: StateUp, weight: 10, in: true, trans: true, reason: "passed 2 times"},
		}},
		{"an unchecked server is always up and never suspect", Params{Rise: 1, Fall: 1, Weight: 3}, true, false, []step{
			{suspect: true, state: StateUp, weight: 3, in: true},
		}},
		{"operator drain: weight 0, stays in the set, survives check results", base, false, false, []step{
			{drain: b(true), state: StateDraining, weight: 0, in: true, trans: true, reason: "operator: drain"},
			{res: r(ok()), state: StateDraining, weight: 0, in: true},
			{drain: b(false), state: StateUp, weight: 10, in: true, trans: true, reason: "operator: drain off"},
		}},
		{"agent percentage, drain, ready, maint", base, false, false, []step{
			{res: r(agent("50%")), state: StateUp, weight: 5, in: true},
			{res: r(agent("up")), state: StateUp, weight: 5, in: true}, // percentage kept
			{res: r(agent("drain")), state: StateDraining, weight: 0, in: true, trans: true, reason: "agent: drain"},
			{res: r(agent("ready 100%")), state: StateUp, weight: 10, in: true, trans: true, reason: "agent: ready"},
			{res: r(agent("maint #upgrade")), state: StateMaint, weight: 0, in: false, trans: true, reason: "agent: maint: upgrade"},
			{res: r(agent("ready")), state: StateUp, weight: 10, in: true, trans: true},
			{res: r(agent("1%")), state: StateUp, weight: 1, in: true}, // never rounds to 0
			{res: r(agent("0%")), state: StateUp, weight: 0, in: true},
		}},
		{"agent down counts as failures and sticks until up", Params{Rise: 1, Fall: 2, Weight: 10, Checked: true}, false, false, []step{
			{res: r(agent("down #disk full")), state: StateUp, weight: 10, in: true},
			{res: r(agent("75%")), state: StateDown, weight: 0, in: false, trans: true, reason: "agent says down: disk full"},
			{res: r(agent("up")), state: StateUp, weight: 7, in: true, trans: true},
		}},
		{"dynamic weight from a script, kept on plain passes", base, false, false, []step{
			{res: &Result{OK: true, Type: "script", WeightMode: WeightSet, Weight: 42}, state: StateUp, weight: 42, in: true},
			{res: r(ok()), state: StateUp, weight: 42, in: true},
			{res: &Result{OK: true, Type: "script", WeightMode: WeightSet, Weight: 0}, state: StateUp, weight: 0, in: true},
		}},
		{"file weight added; below zero fails", Params{Rise: 1, Fall: 1, Weight: 10, Checked: true}, false, false, []step{
			{res: &Result{OK: true, Type: "file", WeightMode: WeightAdd, Weight: 5}, state: StateUp, weight: 15, in: true},
			{res: &Result{OK: true, Type: "file", WeightMode: WeightAdd, Weight: -11}, state: StateDown, weight: 0, in: false, trans: true, reason: "is below 0"},
		}},
		{"slow start ramps a recovered server linearly from 1", Params{Rise: 1, Fall: 1, Weight: 101, Checked: true, SlowStart: 10 * time.Second}, false, false, []step{
			{res: r(ok()), state: StateUp, weight: 101, in: true}, // not ramping at creation
			{res: r(bad()), state: StateDown, weight: 0, in: false, trans: true},
			{res: r(ok()), state: StateUp, weight: 1, in: true, trans: true},
			{advance: 5 * time.Second, res: r(ok()), state: StateUp, weight: 51, in: true},
			{advance: 4 * time.Second, res: r(ok()), state: StateUp, weight: 91, in: true},
			{advance: time.Second, res: r(ok()), state: StateUp, weight: 101, in: true},
		}},
		{"a server added to a running service slow-starts", Params{Rise: 1, Fall: 1, Weight: 11, Checked: true, SlowStart: 10 * time.Second}, false, true, []step{
			{res: r(ok()), state: StateUp, weight: 1, in: true},
			{advance: 5 * time.Second, res: r(ok()), state: StateUp, weight: 6, in: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			tr := NewTracker(tc.p, tc.alpha, tc.ramp, now)
			for i, s := range tc.steps {
				now = now.Add(s.advance)
				var got Transition
				var changed bool
				switch {
				case s.res != nil:
					got, changed = tr.Observe(*s.res, now)
				case s.suspect:
					got, changed = tr.Suspect("connect failed: connection refused", now)
				case s.drain != nil:
					got, changed = tr.SetDrain(*s.drain, now)
				}
				if st := tr.State(); st != s.state {
					t.Fatalf("step %d: state %s, want %s", i, st, s.state)
				}
				if w := tr.Weight(now); w != s.weight {
					t.Fatalf("step %d: weight %d, want %d", i, w, s.weight)
				}
				if in := tr.InService(); in != s.in {
					t.Fatalf("step %d: in service %v, want %v", i, in, s.in)
				}
				if changed != s.trans {
					t.Fatalf("step %d: transition %v (%+v), want %v", i, changed, got, s.trans)
				}
				if changed && (got.To != s.state || !strings.Contains(got.Reason, s.reason) || !got.At.Equal(now)) {
					t.Fatalf("step %d: transition %+v, want to %s with reason containing %q", i, got, s.state, s.reason)
				}
			}
		})
	}
}

func TestTrackerReconfigure(t *testing.T) {
	tr := NewTracker(Params{Rise: 1, Fall: 1, Weight: 4, Checked: true}, false, false, t0)
	tr.Observe(bad(), t0)
	if tr.Up() {
		t.Fatal("still up")
	}
	// A reload that changes the weight keeps the state.
	if _, changed := tr.Reconfigure(Params{Rise: 1, Fall: 1, Weight: 8, Checked: true}, t0); changed || tr.Up() {
		t.Fatal("a reload changed the state")
	}
	// Removing the check brings it up: nothing else could.
	tr2, changed := tr.Reconfigure(Params{Rise: 1, Fall: 1, Weight: 8}, t0)
	if !changed || !tr.Up() || tr2.Reason != "health check removed" || tr.Weight(t0) != 8 {
		t.Fatalf("check removed: %+v up=%v weight=%d", tr2, tr.Up(), tr.Weight(t0))
	}
}

func TestTrackerStatus(t *testing.T) {
	tr := NewTracker(Params{Rise: 2, Fall: 1, Weight: 4, Checked: true, SlowStart: time.Minute}, false, false, t0)
	tr.Suspect("connect timed out", t0)
	tr.Observe(ok(), t0.Add(time.Second))
	s := tr.Status(t0.Add(time.Second))
	if s.State != StateDown || !s.Suspect || s.Passes != 1 || s.Checks != 1 || s.Last.Msg != "connected" ||
		s.Reason != "passive: connect timed out" || !s.Changed.Equal(t0) {
		t.Fatalf("status %+v", s)
	}
	tr.Observe(ok(), t0.Add(2*time.Second))
	s = tr.Status(t0.Add(3 * time.Second))
	if s.State != StateUp || s.Suspect || !s.RampEnd.Equal(t0.Add(2*time.Second+time.Minute)) {
		t.Fatalf("status %+v", s)
	}
	if s := tr.Status(t0.Add(2 * time.Minute)); !s.RampEnd.IsZero() {
		t.Fatalf("ramp still running after its end: %+v", s)
	}
}

func TestSlowStart(t *testing.T) {
	d := 10 * time.Second
	for _, tc := range []struct {
		w    int
		el   time.Duration
		want int
	}{
		{100, 0, 1}, {100, d / 2, 50}, {100, d, 100}, {100, 2 * d, 100}, {1, 0, 1}, {0, 0, 0}, {2, d - 1, 1}, {65535, d / 2, 32768},
	} {
		if got := SlowStart(tc.w, t0, t0.Add(tc.el), d); got != tc.want {
			t.Errorf("SlowStart(%d, +%s) = %d, want %d", tc.w, tc.el, got, tc.want)
		}
	}
	if got := SlowStart(7, time.Time{}, t0, d); got != 7 {
		t.Errorf("no ramp: %d", got)
	}
}

func TestQuorum(t *testing.T) {
	// quorum 10, hysteresis 2: lost below 8, gained at 12.
	q := NewQuorum(10, 2, 10)
	for i, tc := range []struct {
		total   int
		up      bool
		changed bool
	}{
		{9, true, false}, {8, true, false}, {7, false, true}, {10, false, false}, {11, false, false},
		{12, true, true}, {8, true, false}, {0, false, true},
	} {
		changed := q.Update(tc.total)
		if q.Up() != tc.up || changed != tc.changed {
			t.Fatalf("step %d total %d: up %v changed %v, want %v %v", i, tc.total, q.Up(), changed, tc.up, tc.changed)
		}
	}
	if q := NewQuorum(1, 0, 0); q.Up() {
		t.Fatal("a quorum of 1 with no live weight is up")
	}
}
