package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func builtins(t testing.TB) []*Scenario {
	t.Helper()
	var scs []*Scenario
	for _, name := range Builtins() {
		sc, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Name != name {
			t.Fatalf("built-in %s is named %s", name, sc.Name)
		}
		scs = append(scs, sc)
	}
	return scs
}

// scaled is n requests, or fewer under the race detector.
func scaled(n int) int {
	if raceEnabled {
		return n / 10
	}
	return n
}

func csvOf(t *testing.T, su *Suite) string {
	t.Helper()
	rs, err := su.Run()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, rs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestDeterministic runs every built-in scenario under every default
// scheduler twice, in parallel, and wants the same CSV; another seed must
// give another one.
func TestDeterministic(t *testing.T) {
	su := &Suite{Scenarios: builtins(t), Schedulers: append(DefaultSchedulers, Oracle), Seed: 42, Requests: scaled(20000), Parallel: 4}
	a := csvOf(t, su)
	su.Parallel = 1
	if b := csvOf(t, su); a != b {
		t.Fatalf("same seed, different results:\n%s\n%s", a, b)
	}
	if !strings.HasPrefix(a, "scenario,scheduler,p50_ms,p90_ms,p99_ms,p999_ms,throughput,util_spread\n") {
		t.Fatalf("CSV header: %q", strings.SplitN(a, "\n", 2)[0])
	}
	if n := strings.Count(a, "\n"); n != 1+len(su.Scenarios)*len(su.Schedulers) {
		t.Fatalf("%d CSV lines", n)
	}
	su.Seed = 43
	if b := csvOf(t, su); a == b {
		t.Fatal("another seed gave the same results")
	}
}

// queue is a scenario of one server with c slots, exponential service of
// mean 10 ms and Poisson arrivals at utilisation rho, with no health checks
// to add load.
func queue(c int, rho float64) *Scenario {
	return &Scenario{
		Name: "queue", Utilisation: rho, Requests: 400000, Retries: 1, ConnectTimeout: 1,
		Arrivals: Arrivals{Process: "poisson", States: []State{{Rate: 1, Mean: 1}}},
		Servers:  []Server{{Weight: 1, Capacity: c, Slowdown: 1, Service: Dist{Kind: Exponential, Mean: 0.01}}},
	}
}

// erlangC is the mean time in an M/M/c system: the probability of waiting
// (Erlang C) over (c mu - lambda), plus the service time.
func erlangC(c int, rho, mu float64) float64 {
	a := rho * float64(c) // offered load in Erlangs
	term, sum := 1.0, 1.0
	for k := 1; k < c; k++ {
		term *= a / float64(k)
		sum += term
	}
	top := term * a / float64(c) / (1 - rho)
	pw := top / (sum + top)
	return pw/(float64(c)*mu-rho*float64(c)*mu) + 1/mu
}

// TestQueueingTheory checks the simulator against M/M/1 (mean latency
// S / (1 - rho)) and M/M/c (Erlang C), within 5%.
func TestQueueingTheory(t *testing.T) {
	cases := []struct {
		c   int
		rho float64
	}{{1, 0.5}, {1, 0.7}, {4, 0.8}, {8, 0.9}}
	n := 400000
	if raceEnabled {
		cases, n = cases[2:3], 100000 // M/M/4 at 80% converges fast enough
	}
	for _, tc := range cases {
		r, err := Run(queue(tc.c, tc.rho), "wlc", RunOptions{Seed: 1, Requests: n})
		if err != nil {
			t.Fatal(err)
		}
		want := erlangC(tc.c, tc.rho, 100) * 1e3
		if tc.c == 1 {
			want = 10 / (1 - tc.rho)
		}
		t.Logf("M/M/%d at %.0f%%: mean %.3f ms, theory %.3f ms (%+.2f%%)", tc.c, tc.rho*100, r.Mean, want, (r.Mean/want-1)*100)
		if math.Abs(r.Mean-want)/want > 0.05 {
			t.Errorf("M/M/%d at %.0f%%: mean latency %.2f ms, theory %.2f ms", tc.c, tc.rho*100, r.Mean, want)
		}
		if u := r.Util[0]; math.Abs(u-tc.rho) > 0.02 {
			t.Errorf("M/M/%d at %.0f%%: utilisation %.3f", tc.c, tc.rho*100, u)
		}
		if r.Completed != r.Requests || r.Failed != 0 {
			t.Errorf("M/M/%d: %d of %d completed, %d failed", tc.c, r.Completed, r.Requests, r.Failed)
		}
	}
}

// TestScenarioEffects checks that the scenario features do what they say.
func TestScenarioEffects(t *testing.T) {
	scs := map[string]*Scenario{}
	for _, sc := range builtins(t) {
		scs[sc.Name] = sc
	}
	run := func(name, sched string) *Result {
		r, err := Run(scs[name], sched, RunOptions{Seed: 1, Requests: 60000})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Failures reset connections, make connects retry, and the health
	// checker takes the failed servers out.
	if r := run("failure", "rr"); r.Failed == 0 || r.Retried == 0 {
		t.Errorf("failure: %d failed, %d retried", r.Failed, r.Retried)
	}
	// Passive health checking takes a dead server out sooner: wlc, which
	// sends a dead server everything until then, gains most.
	passive := *scs["failure"]
	passive.PassiveHealth = true
	pr, _ := Run(&passive, "wlc", RunOptions{Seed: 1, Requests: 60000})
	if wr := run("failure", "wlc"); pr.P999 >= wr.P999/2 {
		t.Errorf("failure under wlc: p99.9 %.0f ms with passive health, %.0f ms without", pr.P999, wr.P999)
	}
	// rr ignores speed: the four-times-slower servers saturate (until
	// their health checks time out in the queue, and take them out).
	het := run("heterogeneous", "rr")
	if het.Util[15] < het.Util[0]+0.2 {
		t.Errorf("heterogeneous under rr: utilisation %.2f (fast) and %.2f (slow)", het.Util[0], het.Util[15])
	}
	// Bursts raise the tail above the same load without bursts.
	flat := *scs["burst"]
	flat.Arrivals = Arrivals{Process: "poisson", States: []State{{Rate: 1, Mean: 1}}}
	fr, _ := Run(&flat, "wlc", RunOptions{Seed: 1, Requests: 60000})
	if br := run("burst", "wlc"); br.P99 < 1.5*fr.P99 {
		t.Errorf("burst p99 %.1f ms, without bursts %.1f ms", br.P99, fr.P99)
	}
}

func TestOutputs(t *testing.T) {
	rs, err := (&Suite{Scenarios: builtins(t)[:2], Schedulers: []string{"wlc", "prequal"}, Seed: 1, Requests: 5000}).Run()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rs); err != nil || !strings.Contains(b.String(), "p99/wlc") {
		t.Fatalf("table: %v\n%s", err, b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, rs); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back) != 4 || back[1]["scheduler"] != "prequal" {
		t.Fatalf("JSON: %v %v", err, back)
	}
	b.Reset()
	if err := WriteSVG(&b, rs); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<polyline") != 4 || !strings.Contains(svg, ">heterogeneous<") {
		t.Fatalf("SVG:\n%.500s", svg)
	}
	if _, err := (&Suite{Scenarios: builtins(t)[:1], Schedulers: []string{"nope"}}).Run(); err == nil {
		t.Fatal("an unknown scheduler ran")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "s.yaml:1:1: empty scenario"},
		{"servers: [", "s.yaml:1:1: did not find expected node content"},
		{"servers:\n  - count: 2\nutilisation: lots\n", `s.yaml:3:14: utilisation: "lots" is not a number`},
		{"servers:\n  - count: 2\n    speed: 2\n", `s.yaml:3:5: unknown field "speed" in a server group`},
		{"servers:\n  - {count: 2}\nservice: {distribution: pareto}\n", `s.yaml:3:25: unknown distribution "pareto"`},
		{"servers:\n  - {count: 2}\nservice: {mean: 10}\n", `s.yaml:3:17: mean: "10" is not a duration`},
		{"servers:\n  - {count: 2}\nevents:\n  - {at: 10%, for: 1s, server: 2, fail: true}\n", "s.yaml:4:32: server must be between 0 and 1, not 2"},
		{"servers:\n  - {count: 2}\nevents:\n  - {at: 10%, for: 1s, server: 1}\n", "s.yaml:4:5: an event needs slowdown or fail: true"},
		{"servers:\n  - {count: 2}\narrivals: {process: onoff, states: []}\n", "s.yaml:3:36: states applies to process mmpp only"},
		{"servers:\n  - {count: 2}\narrivals: {process: mmpp}\n", "s.yaml:3:11: process mmpp needs a list of at least two states"},
		{"utilisation: 0.5\n", "s.yaml:1:1: the scenario has no servers"},
		{"servers:\n  - {count: 2}\nname: a\nname: b\n", `s.yaml:4:1: duplicate field "name"`},
	} {
		_, err := Parse("s.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	sc, err := Parse("dir/mine.yaml", []byte(`
utilisation: 0.5
passive_health: true
service: {distribution: constant, mean: 2ms}
arrivals:
  process: mmpp
  states: [{rate: 3, mean: 1s}, {rate: 1, mean: 3s}]
servers:
  - {count: 2, capacity: 8}
  - {weight: 3, slowdown: 2, service: {distribution: lognormal, sigma: 0.3}}
events:
  - {at: 2s, for: 50%, servers: [0, 2], slowdown: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "mine" || !sc.PassiveHealth || len(sc.Servers) != 3 || sc.Servers[1].Capacity != 8 || sc.Servers[2].Weight != 3 {
		t.Fatalf("%+v", sc)
	}
	if d := sc.Servers[2].Service; d.Kind != Lognormal || d.Mean != 0.002 || d.Sigma != 0.3 {
		t.Fatalf("service %+v", d)
	}
	// Rates are normalised to a time-average of 1: (3 x 1 + 1 x 3) / 4.
	if st := sc.Arrivals.States; math.Abs(st[0].Rate-2) > 1e-9 || math.Abs(st[1].Rate-2.0/3) > 1e-9 {
		t.Fatalf("states %+v", st)
	}
	if e := sc.Events[0]; e.At.In(10) != 2 || e.For.In(10) != 5 {
		t.Fatalf("event %+v", e)
	}
	// Capacity: 2 x 8 / 2ms + 1 / 4ms.
	if c := sc.Capacity(); math.Abs(c-8250) > 1e-6 {
		t.Fatalf("capacity %v", c)
	}
}

// BenchmarkRun measures the simulator: ns per simulated request.
func BenchmarkRun(b *testing.B) {
	for _, s := range []string{"wlc", "prequal"} {
		b.Run(s, func(b *testing.B) {
			sc, _ := Load("heterogeneous")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Run(sc, s, RunOptions{Seed: 1, Requests: 1000000}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/request")
		})
	}
}
