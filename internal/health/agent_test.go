package health

import (
	"testing"
)

func TestParseAgent(t *testing.T) {
	none := AgentReply{Percent: -1, MaxConn: -1}
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
	} {
		if got := ParseAgent(tc.in); got != tc.want {
			t.Errorf("ParseAgent(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseAgent(f *testing.F) {
	for _, s := range []string{"75%", "up", "down#why", "drain,maxconn:10", "ready 50% up\r\n", "maint # x # y", "", "%", "maxconn:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := ParseAgent(s)
		if a.Percent < -1 || a.Percent > 65535 || a.MaxConn < -1 {
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
