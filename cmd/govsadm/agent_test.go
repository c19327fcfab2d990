package main

import (
	"strings"
	"testing"

	"github.com/govs-lb/govs/internal/api"
)

func TestListAgent(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	out, errs, code := govsadm(t, sock, "", "-L", "-n", "--agent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := "  -> RemoteAddress:Port           Weight Agent% CPU% Mem% Load  PSI% IO% InFlight Latency\n"
	if !strings.Contains(out, want) || !strings.Contains(out, "  -> 127.0.0.1:9002               2      -      -    -    -     -    -   -        -\n") {
		t.Errorf("-L -n --agent without agents:\n%s", out)
	}
	if _, errs, code := govsadm(t, sock, "", "-A", "-t", "127.0.0.1:1", "--agent"); code == 0 || !strings.Contains(errs, "agent") {
		t.Errorf("--agent outside -L accepted (exit %d): %s", code, errs)
	}
	pct, cpu, mem, flight := 40, 61, 30, 7
	load, lat := 1.25, 0.0042
	got := agentColumns(api.RealServerStatus{Weight: 4, Agent: &api.AgentFigures{WeightPercent: &pct, CPUPercent: &cpu,
		MemoryPercent: &mem, LoadPerCPU: &load, InFlight: &flight, LatencySeconds: &lat}})
	if got != "4      40     61   30   1.25  -    -   7        4.2ms" {
		t.Errorf("agentColumns = %q", got)
	}
}
