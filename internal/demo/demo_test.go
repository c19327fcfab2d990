package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
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
	if !regexp.MustCompile(`(?m)^dashboard: http://127\.0\.0\.1:\d+/$`).MatchString(s) {
		t.Errorf("no dashboard URL printed")
	}
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

// The demo serves the dashboard and the API it reads, read-only.
func TestDemoDashboard(t *testing.T) {
	addr := loopback.Addr(t, "tcp") // not a port the kernel hands out meanwhile
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), io.Discard, Options{
			Listen: "127.0.0.1:0", Scheduler: "rr", Rate: 20, Duration: 2 * time.Second, Dashboard: addr,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	var page string
	loopback.WaitFor(t, "the dashboard", func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if !strings.Contains(page, "<html") {
		t.Errorf("dashboard page: %.200q", page)
	}
	resp, err := http.Get("http://" + addr + "/api/v1/services")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET services: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post("http://"+addr+"/api/v1/services", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST through the demo's dashboard listener: %d, want 405", resp.StatusCode)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
