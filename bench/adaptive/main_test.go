package main

import (
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestWorkEnd(t *testing.T) {
	eps := []episode{{100 * ms, 200 * ms}, {300 * ms, 400 * ms}}
	for _, tc := range []struct {
		x, w, want time.Duration
	}{
		{0, 50 * ms, 50 * ms},             // before any episode: full speed
		{90 * ms, 10 * ms, 100 * ms},      // ends as the antagonist comes
		{90 * ms, 20 * ms, 140 * ms},      // 10 ms free, then 10 ms of work at 1/4: 40 ms
		{100 * ms, 25 * ms, 200 * ms},     // all in the episode: 4x
		{150 * ms, 20 * ms, 207.5 * 1e6},  // 50 ms there do 12.5 ms; 7.5 ms after it
		{150 * ms, 200 * ms, 462.5 * 1e6}, // 12.5 + 100 free + 25 in the second + 62.5 after
		{500 * ms, 10 * ms, 510 * ms},     // after the last episode
	} {
		if got := workEnd(eps, 4, tc.x, tc.w); got != tc.want {
			t.Errorf("workEnd(x %v, w %v) = %v, want %v", tc.x, tc.w, got, tc.want)
		}
	}
}

func TestAntagonistEpisodes(t *testing.T) {
	a := antagonistEpisodes(7, 4*time.Second, 6*time.Second, 10*time.Minute)
	b := antagonistEpisodes(7, 4*time.Second, 6*time.Second, 10*time.Minute)
	if len(a) < 40 || len(a) != len(b) {
		t.Fatalf("%d and %d episodes in 10 minutes of 10 s cycles", len(a), len(b))
	}
	prev := time.Duration(0)
	for i, ep := range a {
		if ep != b[i] {
			t.Fatalf("episode %d differs with the same seed: %v, %v", i, ep, b[i])
		}
		if l := ep.to - ep.from; l < 2*time.Second || l >= 6*time.Second {
			t.Errorf("episode %d lasts %v, want [2s, 6s)", i, l)
		}
		if gap := ep.from - prev; gap < 3*time.Second || gap >= 9*time.Second {
			t.Errorf("gap before episode %d is %v, want [3s, 9s)", i, gap)
		}
		prev = ep.to
	}
	share, n := antagonistShare(a, 10*time.Minute)
	if share < 0.3 || share > 0.5 || n != len(a) {
		t.Errorf("present %.2f of the time in %d episodes, want about 0.4", share, n)
	}
}

func TestParseServer(t *testing.T) {
	s, err := parseServer("s3=127.0.0.1:9000,12ms,antagonist=8x/4s/6s,agent=127.0.0.1:9400")
	if err != nil {
		t.Fatal(err)
	}
	if s.antFactor != 8 || s.antOn != 4*time.Second || s.antOff != 6*time.Second || !s.agent.IsValid() {
		t.Errorf("parsed %+v", s)
	}
	if s, err = parseServer("s3=127.0.0.1:9000,12ms,stall=200ms/2s"); err != nil || s.stall != 200*ms {
		t.Errorf("stall: %v %+v", err, s)
	}
	for _, bad := range []struct{ in, want string }{
		{"s=127.0.0.1:1,1ms,antagonist=1x/1s/1s", "factor"},
		{"s=127.0.0.1:1,1ms,antagonist=8/1s", "FACTORx/ON/OFF"},
		{"s=127.0.0.1:1,1ms,antagonist=8x/1ms/1s", "ON"},
		{"s=127.0.0.1:1,1ms,stall=1ms/1s,antagonist=8x/1s/1s", "choose one"},
		{"s=127.0.0.1:1,1ms,slow=2", "unknown option"},
		{"s=127.0.0.1:1,1ms,stall=1ms/1s,stall=1ms/1s", "each option once"},
	} {
		if _, err := parseServer(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("parseServer(%q) = %v, want an error with %q", bad.in, err, bad.want)
		}
	}
}
