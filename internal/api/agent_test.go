package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/health"
)

func TestAgentFigures(t *testing.T) {
	if agentFigures(director.HealthStatus{}) != nil {
		t.Error("figures without any agent answer")
	}
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	a := health.ParseAgent("40% drain inflight:7 latency:4ms cpu:61 mem:30 load:1.25")
	f := agentFigures(director.HealthStatus{Status: health.Status{Agent: a, AgentAt: at}})
	b, _ := json.Marshal(f)
	want := `{"at":"2026-12-03T10:00:00Z","weight_percent":40,"cpu_percent":61,"memory_percent":30,"load_per_cpu":1.25,` +
		`"in_flight":7,"latency_seconds":0.004,"admin":"drain"}`
	if string(b) != want {
		t.Errorf("agent figures\n got %s\nwant %s", b, want)
	}
	// A plain HAProxy agent: the weight only.
	f = agentFigures(director.HealthStatus{Status: health.Status{Agent: health.ParseAgent("75%"), AgentAt: at}})
	if b, _ := json.Marshal(f); string(b) != `{"at":"2026-12-03T10:00:00Z","weight_percent":75}` {
		t.Errorf("plain agent: %s", b)
	}
}
