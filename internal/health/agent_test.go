package health

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

func TestParseAgent(t *testing.T) {
	none := NoAgentReply
	with := func(f func(*AgentReply)) AgentReply { a := none; f(&a); return a }
	for _, tc := range []struct {
		in   string
		want AgentReply
	}{
		{"", none},
		{"75%\n", with(func(a *AgentReply) { a.Percent = 75 })},
		{"up 100%\r\n", with(func(a *AgentReply) { a.Op, a.Percent = OpUp, 100 })},
		{"DRAIN", with(func(a *AgentReply) { a.Admin = AdminDrain })},
		{"maint,maxconn:30", with(func(a *AgentReply) { a.Admin, a.MaxConn = AdminMaint, 30 })},
		{"ready\tup", with(func(a *AgentReply) { a.Admin, a.Op = AdminReady, OpUp })},
		{"down#disk full", with(func(a *AgentReply) { a.Op, a.Desc = OpDown, "disk full" })},
		{"stopped # for upgrade ", with(func(a *AgentReply) { a.Op, a.Desc = OpDown, "for upgrade" })},
		{"failed", with(func(a *AgentReply) { a.Op = OpDown })},
		{"fail", with(func(a *AgentReply) { a.Op = OpDown })},
		{"up down", with(func(a *AgentReply) { a.Op = OpDown })},     // the last word counts
		{"x% -5% 12.5% maxconn: maxconn:-1 hello", none},             // nonsense is ignored
		{"50%\nmaint", with(func(a *AgentReply) { a.Percent = 50 })}, // one line only
		// govs's extensions
		{"75% inflight:12 latency:25ms", with(func(a *AgentReply) { a.Percent, a.InFlight, a.Latency = 75, 12, 25*time.Millisecond })},
		{"INFLIGHT:0,LATENCY:1.5MS", with(func(a *AgentReply) { a.InFlight, a.Latency = 0, 1500*time.Microsecond })},
		{"latency:800us up", with(func(a *AgentReply) { a.Latency, a.Op = 800*time.Microsecond, OpUp })},
		{"inflight:-1 inflight:1.5 inflight: latency:-5ms latency:25 latency:x", none}, // nonsense is ignored
		// govs agent's figures (docs/agent.md)
		{"73% ready cpu:41 mem:63 load:0.52 psi:3 io:0", with(func(a *AgentReply) {
			a.Percent, a.Admin, a.CPU, a.Mem, a.LoadPerCPU, a.PSI, a.IO = 73, AdminReady, 41, 63, 0.52, 3, 0
		})},
		{"cpu:101 mem:-1 load:-0.5 load:inf load:nan psi:x io:1.5 cpu:41%", none}, // out of range or malformed
	} {
		if got := ParseAgent(tc.in); got != tc.want {
			t.Errorf("ParseAgent(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseAgent(f *testing.F) {
	for _, s := range []string{"75%", "up", "down#why", "drain,maxconn:10", "ready 50% up\r\n", "maint # x # y", "", "%", "maxconn:",
		"inflight:3 latency:2ms", "latency:1h2m3.5s", "latency:0", "cpu:5 mem:10 load:0.125 psi:0 io:100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := ParseAgent(s)
		if a.Percent < -1 || a.Percent > 65535 || a.MaxConn < -1 || a.InFlight < -1 || a.Latency < -1 ||
			a.CPU < -1 || a.CPU > 100 || a.Mem < -1 || a.Mem > 100 || a.PSI < -1 || a.PSI > 100 || a.IO < -1 || a.IO > 100 ||
			a.LoadPerCPU < -1 || a.LoadPerCPU >= 1e6 {
			t.Fatalf("ParseAgent(%q) = %+v: out of range", s, a)
		}
		for _, c := range a.Desc {
			if c < ' ' || c == 0x7f {
				t.Fatalf("ParseAgent(%q): control character in description %q", s, a.Desc)
			}
		}
		// What the parser understood, written back, reads the same.
		if w := a.String(); len(w) <= maxAgentReply {
			if b := ParseAgent(w); b != a {
				t.Fatalf("ParseAgent(%q) = %+v; written back %q reads %+v", s, a, w, b)
			}
		}
	})
}

func TestAgentLoad(t *testing.T) {
	for _, tc := range []struct {
		in   string
		load float64
		ok   bool
	}{
		{"100%", 0, true},
		{"75%", 0.25, true},
		{"25%", 0.75, true},
		{"0%", 1, true},
		{"150%", 0, true}, // more than the configured weight: idle, clamped
		{"up", 0, false},  // no percentage, no load
		{"inflight:7", 0, false},
	} {
		load, ok := ParseAgent(tc.in).Load()
		if load != tc.load || ok != tc.ok {
			t.Errorf("ParseAgent(%q).Load() = %v, %v; want %v, %v", tc.in, load, ok, tc.load, tc.ok)
		}
	}
}

func TestAskAgent(t *testing.T) {
	addr := netip.MustParseAddrPort(loopback.Serve(t, func(c net.Conn) { io.WriteString(c, "80% inflight:4 latency:3ms\n") }))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := AskAgent(ctx, addr)
	if err != nil || a.Percent != 80 || a.InFlight != 4 || a.Latency != 3*time.Millisecond {
		t.Fatalf("AskAgent = %+v, %v", a, err)
	}
	closed := netip.AddrPortFrom(addr.Addr(), uint16(loopback.FreePort(t, "tcp")))
	if a, err := AskAgent(ctx, closed); err == nil || a != NoAgentReply {
		t.Fatalf("AskAgent of a closed port = %+v, %v", a, err)
	}
}
