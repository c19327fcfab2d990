package sim

import (
	"math"
	"strings"
	"testing"
)

func mustLoad(t *testing.T, name string) *Scenario {
	t.Helper()
	sc, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestHardCases checks that each new mechanism does what it says: several
// directors blind wlc to the others' connections, antagonists slow their
// servers, the ramp times requests out only beyond capacity, warm-up and
// the daily cycle change the load they should.
func TestHardCases(t *testing.T) {
	run := func(sc *Scenario, sched string, n int) *Result {
		t.Helper()
		r, err := Run(sc, sched, RunOptions{Seed: 1, Requests: n})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Eight directors that each count only their own connections spread
	// them worse than one: twos (the less loaded of two) herds.
	md := mustLoad(t, "multi-director")
	one := *md
	one.Directors = 1
	if r1, r8 := run(&one, "twos", 60000), run(md, "twos", 60000); r8.P99 < 1.5*r1.P99 {
		t.Errorf("twos p99: %.1f ms with one director, %.1f ms with eight", r1.P99, r8.P99)
	}
	// Antagonists cost latency, also to the oracle.
	ma := mustLoad(t, "multi-director-antagonist")
	if a, b := run(md, Oracle, 60000), run(ma, Oracle, 60000); b.P99 <= a.P99 {
		t.Errorf("oracle p99 %.1f ms without antagonists, %.1f ms with", a.P99, b.P99)
	}
	// The ramp: nothing times out below capacity under the oracle, and
	// something does beyond it; the first timeout is reported.
	r := run(mustLoad(t, "ramp"), Oracle, 100000)
	if r.Timeouts == 0 || r.FirstTimeoutLoad < 1 || r.FirstTimeoutLoad > 1.5 || r.Failed < r.Timeouts {
		t.Errorf("ramp under oracle: %d timeouts, first at %.2fx, %d failed", r.Timeouts, r.FirstTimeoutLoad, r.Failed)
	}
	if r.Completed+r.Failed != r.Requests {
		t.Errorf("ramp: %d completed + %d failed != %d requests", r.Completed, r.Failed, r.Requests)
	}
	// rr ignores speed and times out early.
	if rr := run(mustLoad(t, "ramp"), "rr", 100000); rr.FirstTimeoutLoad >= r.FirstTimeoutLoad {
		t.Errorf("ramp: rr's first timeout at %.2fx, the oracle's at %.2fx", rr.FirstTimeoutLoad, r.FirstTimeoutLoad)
	}
	// Warm-up: a cold server is slower than a warm one.
	srv := server{slow: 1, spec: Server{Warmup: 10, WarmupSlowdown: 3}}
	if a, b, c := srv.slowAt(0), srv.slowAt(5), srv.slowAt(10); a != 3 || b != 2 || c != 1 {
		t.Errorf("warm-up multipliers %v %v %v, want 3 2 1", a, b, c)
	}
	srv.steal = 0.5
	if m := srv.slowAt(20); m != 2 {
		t.Errorf("a server with half its capacity stolen serves %vx slower, want 2", m)
	}
	// The load profile: trough at the start of a day, peak at noon, the
	// weekly factor, a flash crowd.
	l := LoadProfile{Day: 20, Amplitude: 0.3, Week: []float64{1, 0.5}, Flash: []Flash{{At: When{Seconds: 25}, For: When{Seconds: 2}, Factor: 2}}}
	for _, c := range []struct{ t, want float64 }{{0, 0.7}, {10, 1.3}, {20, 0.35}, {30, 0.65}, {26, 2 * 0.5 * (1 - 0.3*math.Cos(2*math.Pi*26/20))}} {
		if got := l.factor(c.t, 100); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("load factor at %vs = %v, want %v", c.t, got, c.want)
		}
	}
	if m := l.meanFactor(); m != 0.75 {
		t.Errorf("mean factor %v, want 0.75", m)
	}
	// The diurnal scenario serves everything.
	if d := run(mustLoad(t, "diurnal"), "wlc", 60000); d.Completed+d.Failed != d.Requests || d.Completed == 0 {
		t.Errorf("diurnal: %d completed, %d failed of %d", d.Completed, d.Failed, d.Requests)
	}
}

func TestParseHardErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"servers:\n  - {count: 2}\ndirectors: 0\n", "s.yaml:3:12: directors must be between 1 and 255, not 0"},
		{"servers:\n  - {count: 2}\ntimeout: soon\n", `s.yaml:3:10: timeout: "soon" is not a duration`},
		{"servers:\n  - {count: 2}\nload: {amplitude: 0.3}\n", "s.yaml:3:19: amplitude needs day"},
		{"servers:\n  - {count: 2}\nload: {ramp: {from: 0.5, upto: 2}}\n", `s.yaml:3:26: unknown field "upto" in ramp`},
		{"servers:\n  - {count: 2}\nantagonists:\n  - {share: 0.5}\n", "s.yaml:4:5: an antagonist needs server or servers"},
		{"servers:\n  - {count: 2}\nantagonists:\n  - {server: 0, share: [0.6, 0.2]}\n", "s.yaml:4:24: share: [min, max] with min at most max"},
		{"servers:\n  - {count: 2}\nantagonists:\n  - {server: 0, lengths: fixed}\n", `s.yaml:4:26: lengths "fixed": want exponential or uniform`},
		{"servers:\n  - {count: 2, warmup_slowdown: 2}\n", "s.yaml:2:33: warmup_slowdown needs warmup"},
	} {
		_, err := Parse("s.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
}

// TestPredictInTheSimulator guards what docs/sim.md reports of predict, at
// a smaller scale (the runs are deterministic, so these are outcomes, not
// timings): better than wlc on unequal servers, with one director or eight,
// with antagonists, and no timeout in the ramp below capacity.
func TestPredictInTheSimulator(t *testing.T) {
	if raceEnabled {
		t.Skip("long under the race detector; the schedulers' races are tested in internal/sched")
	}
	run := func(name, sched string) *Result {
		t.Helper()
		r, err := Run(mustLoad(t, name), sched, RunOptions{Seed: 1, Requests: 100000})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, name := range []string{"heterogeneous", "noisy-neighbour", "multi-director", "multi-director-antagonist"} {
		p, w, o := run(name, "predict"), run(name, "wlc"), run(name, Oracle)
		t.Logf("%s: p99 predict %.1f ms, wlc %.1f, oracle %.1f", name, p.P99, w.P99, o.P99)
		if p.P99 > w.P99 || p.P99 > 1.15*o.P99 {
			t.Errorf("%s: p99 predict %.1f ms, wlc %.1f, oracle %.1f", name, p.P99, w.P99, o.P99)
		}
	}
	if r := run("ramp", "predict"); r.FirstTimeoutLoad < 1 {
		t.Errorf("ramp: predict's first timeout at %.2fx the capacity", r.FirstTimeoutLoad)
	}
}

// TestAntagonistLengths: uniform lengths (the live bench's antagonist) stay
// within [0.5, 1.5] x the mean, exponential ones (the default) do not.
func TestAntagonistLengths(t *testing.T) {
	sc, err := Parse("s.yaml", []byte("servers:\n  - {count: 2}\nantagonists:\n  - {server: 1, share: 0.8, on: 4s, off: 6s, lengths: uniform}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := sc.Antagonists[0]
	if !a.Uniform || a.On != 4 || a.Off != 6 {
		t.Fatalf("parsed %+v", a)
	}
	s := &sim{antag: stream(1, "s", 6)}
	for range 1000 {
		if l := a.length(s, 4); l < 2 || l >= 6 {
			t.Fatalf("uniform length %v outside [2, 6)", l)
		}
	}
	a.Uniform = false
	long := false
	for range 1000 {
		long = long || a.length(s, 4) >= 6
	}
	if !long {
		t.Error("exponential lengths never reached 1.5x the mean in 1000 draws")
	}
}

// TestLiveTwin guards what docs/sim.md reports of bench/adaptive.sh's
// multi-director antagonist setup as a scenario: three directors, four
// equal servers, one slowed 8x by a hidden antagonist for about 4 s of
// every 10 s, at 65% load: predict's p99 at most 0.6x wlc's, and the
// oracle's below predict's (deterministic outcomes at a smaller scale).
func TestLiveTwin(t *testing.T) {
	if raceEnabled {
		t.Skip("long under the race detector; the schedulers' races are tested in internal/sched")
	}
	sc, err := Parse("live-setup.yaml", []byte(`name: live-setup
utilisation: 0.648
directors: 3
service: {distribution: lognormal, mean: 24ms, sigma: 0.5}
capacity: 2
servers:
  - {count: 4}
antagonists:
  - {server: 3, share: 0.875, on: 4s, off: 6s, lengths: uniform}
`))
	if err != nil {
		t.Fatal(err)
	}
	p99 := map[string]float64{}
	for _, s := range []string{"wlc", "predict", Oracle} {
		r, err := Run(sc, s, RunOptions{Seed: 1, Requests: 200000})
		if err != nil {
			t.Fatal(err)
		}
		p99[s] = r.P99
	}
	t.Logf("p99 wlc %.1f ms, predict %.1f, oracle %.1f", p99["wlc"], p99["predict"], p99[Oracle])
	if p99["predict"] > 0.6*p99["wlc"] || p99[Oracle] >= p99["predict"] {
		t.Errorf("p99 wlc %.1f ms, predict %.1f, oracle %.1f: want predict at most 0.6x wlc, the oracle below it",
			p99["wlc"], p99["predict"], p99[Oracle])
	}
}
