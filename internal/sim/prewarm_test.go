package sim

import (
	"strings"
	"testing"

	"github.com/govs-lb/govs/internal/forecast"
)

// smallStandby is the standby scenario at a quarter of its size: 3
// servers in service, 1 in standby, fourteen 30 s days each with a peak
// hour, the last day busier.
const smallStandby = `
name: small-standby
utilisation: 0.45
requests: 330000
service: {distribution: lognormal, mean: 10ms, sigma: 0.5}
capacity: 4
weight: 10
timeout: 1s
load:
  day: 30s
  amplitude: 0.1
  week: [0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 1.15]
  flash:
    - {at: 10s, for: 10s, factor: 1.5, every: 30s}
prewarm: {step: 500ms, horizon: 2500ms, slow_start: 2500ms, window: {at: 400s, for: 10s}}
servers:
  - count: 3
  - {count: 1, standby: true, warmup: 2500ms, warmup_slowdown: 3}
`

// TestPrewarmInTheSimulator: the standby server takes nothing until the
// last day's peak hour needs it; the pre-warmed run calls it within the
// horizon before the peak hour begins (at 400 s), the cold run once it has
// begun, and the
// pre-warmed run's p99 during the peak hour is below the cold one's.
func TestPrewarmInTheSimulator(t *testing.T) {
	if raceEnabled {
		t.Skip("long under the race detector")
	}
	sc, err := Parse("small-standby.yaml", []byte(smallStandby))
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]*Result{}
	for _, mode := range []string{forecast.ModeForecastOnly, forecast.ModePrewarm} {
		c, err := sc.WithPrewarmMode(mode)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Run(c, "wlc", RunOptions{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: p99 %.1f ms, in the peak hour %.1f ms, called at %v", c.Name, r.P99, r.WindowP99, r.CalledAt)
		if len(r.CalledAt) != 1 || r.Util[3] == 0 {
			t.Fatalf("%s: called at %v, the standby server's utilisation %.3f: want it called once and used", mode, r.CalledAt, r.Util[3])
		}
		res[mode] = r
	}
	cold, warm := res[forecast.ModeForecastOnly], res[forecast.ModePrewarm]
	if cold.CalledAt[0] < 400 || warm.CalledAt[0] >= 400 || warm.CalledAt[0] < 397 {
		t.Errorf("called at %.1f s cold and %.1f s pre-warmed: want after the peak hour's start (400 s), and within the 2.5 s horizon and a step before it",
			cold.CalledAt[0], warm.CalledAt[0])
	}
	if warm.WindowP99 >= cold.WindowP99 {
		t.Errorf("p99 in the peak hour: pre-warmed %.1f ms, cold %.1f ms", warm.WindowP99, cold.WindowP99)
	}
	if cold.Requests != warm.Requests || cold.Completed+cold.Failed != warm.Completed+warm.Failed {
		t.Errorf("the two runs served different requests")
	}
}

func TestParsePrewarmErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"servers:\n  - {count: 2, standby: true}\n", "s.yaml:1:1: standby servers need a prewarm block"},
		{"servers:\n  - {count: 2}\nprewarm: {mode: eager}\n", `s.yaml:3:17: unknown prewarm mode "eager"`},
		{"servers:\n  - {count: 2}\nprewarm: {window: {at: 1s}}\n", "s.yaml:3:19: window needs for"},
		{"servers:\n  - {count: 2}\nload: {day: 1s, flash: [{at: 1s, for: 1s, every: often}]}\n", `every: "often" is not a duration`},
	} {
		_, err := Parse("s.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %s", tc.src, err, tc.want)
		}
	}
	sc, _ := Parse("s.yaml", []byte("servers:\n  - {count: 2}\n"))
	if _, err := sc.WithPrewarmMode("later"); err == nil {
		t.Error("mode later accepted")
	}
}
