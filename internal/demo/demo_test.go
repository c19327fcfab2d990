package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The demo balances real traffic: every real server takes connections, the
// fast one more than the slow one (wlc), and nothing fails.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	err := Run(context.Background(), &out, Options{
		Listen: "127.0.0.1:0", Scheduler: "wlc", Rate: 150, Duration: 3 * time.Second,
		Interval: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Log("\n" + s)
	final := s[strings.LastIndex(s, "elapsed"):]
	if m := regexp.MustCompile(`failed (\d+)`).FindStringSubmatch(final); m == nil || m[1] != "0" {
		t.Errorf("failed requests in final summary: %v", m)
	}
	conns := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^127\.0\.0\.1:\d+\s+(\w+)\s+\d+\s+\d+\s+\d+\s+(\d+)`).FindAllStringSubmatch(final, -1) {
		conns[m[1]], _ = strconv.Atoi(m[2])
	}
	if len(conns) != 3 || conns["fast"] == 0 || conns["medium"] == 0 || conns["slow"] == 0 {
		t.Fatalf("per-backend connections = %v", conns)
	}
	if conns["fast"] <= conns["medium"] || conns["medium"] <= conns["slow"] {
		t.Errorf("wlc shares not in order of speed: %v", conns)
	}
}
