package config

import (
	"testing"
	"time"
)

func TestCompactDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h", 61 * time.Minute: "1h1m",
		2*time.Hour + 5*time.Second: "2h0m5s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := compactDuration(d); got != want {
			t.Errorf("compactDuration(%v) = %s, want %s", d, got, want)
		}
		if back, err := time.ParseDuration(compactDuration(d)); err != nil || back != d {
			t.Errorf("%s does not parse back", compactDuration(d))
		}
	}
}
