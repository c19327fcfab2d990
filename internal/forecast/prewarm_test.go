package forecast

import (
	"strings"
	"testing"
	"time"
)

// TestPrewarmDecide walks a service through a morning: 3 servers of weight
// 1 in service, 2 in standby, 100 connections/s per unit of weight, with a
// fake clock.
func TestPrewarmDecide(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	in := PrewarmInput{Rate: 200, Peak: 260, PerWeight: 100, Active: 3, Waiting: []int{1, 1}}

	cold := NewPrewarmer(PrewarmConfig{})
	if d := cold.Decide(t0, in); d.Call != 0 || d.Need != 200 || d.Capacity != 270 {
		t.Fatalf("forecast-only, 200/s now: %+v, want nothing called (the forecast is not used)", d)
	}
	warm := NewPrewarmer(PrewarmConfig{Mode: ModePrewarm})
	if d := warm.Decide(t0, in); d.Call != 0 {
		t.Fatalf("prewarm, peak 260 under 270: %+v", d)
	}
	in.Peak = 300
	d := warm.Decide(t0, in)
	if d.Call != 1 || d.Need != 300 || !strings.Contains(d.Reason, "the forecast (300.0 connections/s) exceeds 90%") {
		t.Fatalf("prewarm, peak 300: %+v, want one server called on the forecast", d)
	}
	if d := cold.Decide(t0, in); d.Call != 0 {
		t.Fatalf("forecast-only ignores the forecast: %+v", d)
	}
	// The load itself gets there: forecast-only calls as many as needed.
	in.Rate = 380
	if d := cold.Decide(t0, in); d.Call != 2 || !strings.Contains(d.Reason, "the load now") {
		t.Fatalf("forecast-only at 380/s: %+v, want both called", d)
	}
	in.Rate = 290
	if d := cold.Decide(t0, in); d.Call != 1 {
		t.Fatalf("forecast-only at 290/s: %+v, want one", d)
	}
}

// TestPrewarmSustain: with Sustain, the need must last before anyone is
// called; a dip resets the wait.
func TestPrewarmSustain(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	p := NewPrewarmer(PrewarmConfig{Sustain: 30 * time.Second})
	over := PrewarmInput{Rate: 300, PerWeight: 100, Active: 3, Waiting: []int{2}}
	under := over
	under.Rate = 100
	steps := []struct {
		at   time.Duration
		in   PrewarmInput
		call int
	}{
		{0, over, 0}, {20 * time.Second, over, 0}, {25 * time.Second, under, 0},
		{30 * time.Second, over, 0}, {50 * time.Second, over, 0}, {60 * time.Second, over, 1},
	}
	for _, s := range steps {
		if d := p.Decide(t0.Add(s.at), s.in); d.Call != s.call {
			t.Fatalf("at %v, rate %.0f: called %d, want %d", s.at, s.in.Rate, d.Call, s.call)
		}
	}
}

// TestPrewarmEdges: nothing waiting, nothing known, nothing serving.
func TestPrewarmEdges(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	p := NewPrewarmer(PrewarmConfig{Mode: ModePrewarm})
	if d := p.Decide(t0, PrewarmInput{Rate: 1e6, PerWeight: 1, Active: 1}); d.Call != 0 {
		t.Errorf("no standby server: %+v", d)
	}
	if d := p.Decide(t0, PrewarmInput{Rate: 1e6, Peak: 1e6, Active: 1, Waiting: []int{1}}); d.Call != 0 {
		t.Errorf("capacity unknown: %+v, want nothing called", d)
	}
	if d := p.Decide(t0, PrewarmInput{Rate: 0, Waiting: []int{1, 1}}); d.Call != 1 || d.Reason == "" {
		t.Errorf("nothing in service: %+v, want one called", d)
	}
}

// TestModelPeak: the peak over the horizon is the highest forecast in it,
// here the end of the season's rise.
func TestModelPeak(t *testing.T) {
	m, err := New(Config{Season: 10})
	if err != nil {
		t.Fatal(err)
	}
	for s := range int64(400) {
		m.Observe(s, float64(10+s%10)) // a saw: 10..19 each season, the last step at 19
	}
	first, _, _ := m.Forecast(1)
	fifth, _, _ := m.Forecast(5)
	if p, hi := m.Peak(5); p != fifth || fifth <= first+3 || hi <= p {
		t.Errorf("peak over 5 steps %.2f, forecasts at 1 and 5 steps %.2f and %.2f: want the rising fifth", p, first, fifth)
	}
}

// TestModelSeasonal: a rush hour seen yesterday is expected today, whole
// and scaled to today's rate; Holt-Winters alone forecasts a fraction of
// it.
func TestModelSeasonal(t *testing.T) {
	m, err := New(Config{Season: 100})
	if err != nil {
		t.Fatal(err)
	}
	rate := func(s int64) float64 {
		base := 20.0
		if s >= 100 {
			base = 30 // the second day is busier
		}
		if s%100 >= 50 && s%100 < 60 {
			return 4 * base
		}
		return base
	}
	for s := range int64(100 + 46) { // a day, then to slot 45 of the second
		if m.Seasonal(5) != 0 && s <= 100 {
			t.Fatalf("a seasonal forecast before a whole season and a step: %v", m.Seasonal(5))
		}
		m.Observe(s, rate(s))
	}
	if r := m.Seasonal(4); r != 30 {
		t.Errorf("seasonal over 4 steps from slot 45: %.1f, want 30 (the rush is at 50)", r)
	}
	if r := m.Seasonal(5); r != 120 {
		t.Errorf("seasonal over 5 steps from slot 45: %.1f, want 120", r)
	}
	mean, _ := m.Peak(10)
	if e := m.Expect(10); e != 120 || mean >= 120 {
		t.Errorf("expect %.1f (want 120), Holt-Winters' peak %.1f (want less)", e, mean)
	}
	fresh, _ := New(Config{Season: 100})
	fresh.Observe(0, 5)
	if e := fresh.Expect(10); e != 0 {
		t.Errorf("a young model expects %.1f, want 0", e)
	}
}

// TestSeasonalNoisyBase: a moment of an outage yesterday (one step at 1/s
// where it was 20/s) does not make today's ratio over yesterday explode:
// the ratio is of the means of the last few steps.
func TestSeasonalNoisyBase(t *testing.T) {
	m, err := New(Config{Season: 100})
	if err != nil {
		t.Fatal(err)
	}
	rate := func(s int64) float64 {
		base := 20.0
		switch {
		case s == 44:
			return 1 // yesterday, a moment of an outage
		case s >= 100:
			base = 30
		}
		if s%100 >= 50 && s%100 < 60 {
			return 4 * base
		}
		return base
	}
	for s := range int64(100 + 45) { // to slot 44 of the second day
		m.Observe(s, rate(s))
	}
	// The truth is 120 (4 x 30); one step's ratio would say 30/1 x 80.
	if r := m.Seasonal(6); r < 120 || r > 160 {
		t.Fatalf("seasonal %.1f after yesterday's outage moment, want about 120 (at most 160)", r)
	}
}
