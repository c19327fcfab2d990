package health

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The ServiceMachine's policy, with a fake clock and no sleeps: these are
// the policy assertions of the director's health tests (which still run the
// same scenarios end to end with real checks), one transition at a time.

var (
	rsA   = netip.MustParseAddrPort("10.0.0.1:80")
	rsB   = netip.MustParseAddrPort("10.0.0.2:80")
	sorry = netip.MustParseAddrPort("10.0.0.9:80")
)

func msrv(addr netip.AddrPort, weight, rise, fall int) ServerConfig {
	return ServerConfig{Addr: addr, Params: Params{Weight: weight, Rise: rise, Fall: fall, Checked: true}}
}

// state returns what d says of addr.
func state(t *testing.T, d Decision, addr netip.AddrPort) ServerState {
	t.Helper()
	for _, s := range d.Servers {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("%s not in the decision %+v", addr, d)
	return ServerState{}
}

// effects summarises d's effects as "kind:msg[:command]".
func effects(d Decision) string {
	var out []string
	for _, e := range d.Effects {
		s := e.Msg
		if e.Command != "" {
			s += ":" + e.Command
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func TestMachineDownAndUp(t *testing.T) {
	m := NewServiceMachine()
	a := msrv(rsA, 1, 2, 2)
	a.NotifyUp, a.NotifyDown = "up-cmd", "down-cmd"
	d := m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{a, msrv(rsB, 1, 2, 2)})
	if !d.Changed || !state(t, d, rsA).InSet || state(t, d, rsA).Weight != 1 || len(d.Effects) != 0 {
		t.Fatalf("initial decision %+v", d)
	}
	if d := m.Observe(t0, rsA, ok()); d.Changed || d.Servers != nil {
		t.Fatalf("a confirming result decided %+v", d)
	}
	if d := m.Observe(t0, rsA, bad()); d.Changed {
		t.Fatalf("one failure of fall 2 decided %+v", d)
	}
	d = m.Observe(t0.Add(time.Second), rsA, bad())
	if s := state(t, d, rsA); !d.Changed || s.InSet || s.Weight != 0 || !s.Left {
		t.Fatalf("a after fall: %+v", d)
	}
	if len(d.Effects) != 1 || d.Effects[0].Kind != EffectTransition || d.Effects[0].Command != "down-cmd" ||
		d.Effects[0].Level != slog.LevelWarn || d.Effects[0].Event.To != StateDown ||
		!strings.Contains(d.Effects[0].Event.Reason, "tcp check failed 2 times (fall 2)") {
		t.Fatalf("effects after fall: %+v", d.Effects)
	}
	if st, in, _ := m.Status(rsA, t0); st.State != StateDown || in {
		t.Fatalf("status %+v in set %v", st, in)
	}
	m.Observe(t0, rsA, ok())
	d = m.Observe(t0, rsA, ok())
	if s := state(t, d, rsA); !s.InSet || s.Weight != 1 || effects(d) != "real server up:up-cmd" {
		t.Fatalf("a after rise: %+v", d)
	}
}

func TestMachineAlphaAndInhibit(t *testing.T) {
	m := NewServiceMachine()
	a := msrv(rsA, 4, 3, 1)
	a.Alpha, a.Params.Inhibit = true, true
	d := m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{a})
	// Alpha: down; with inhibit_on_failure it stays in the set at weight 0.
	if s := state(t, d, rsA); !s.InSet || s.Weight != 0 || !strings.Contains(effects(d), "starts down") {
		t.Fatalf("alpha server: %+v", d)
	}
	// The first pass brings it up, not rise passes.
	d = m.Observe(t0, rsA, ok())
	if s := state(t, d, rsA); !s.InSet || s.Weight != 4 || !strings.Contains(d.Effects[0].Event.Reason, "(alpha)") {
		t.Fatalf("after the first pass: %+v", d)
	}
	d = m.Observe(t0, rsA, bad())
	if s := state(t, d, rsA); !s.InSet || s.Weight != 0 || s.Left {
		t.Fatalf("inhibited down server: %+v", d)
	}
}

func TestMachineQuorumHysteresisAndSorry(t *testing.T) {
	m := NewServiceMachine()
	svc := ServiceConfig{Quorum: 3, Hysteresis: 1, Explicit: true, QuorumUp: "qup", QuorumDown: "qdown", Sorry: sorry}
	d := m.Configure(t0, false, svc, []ServerConfig{msrv(rsA, 2, 1, 1), msrv(rsB, 2, 1, 1)})
	if !m.QuorumUp() || d.SorryActive || m.SorryInSet() {
		t.Fatalf("start: quorum %v sorry %v", m.QuorumUp(), d.SorryActive)
	}
	// Live weight 2: below 3 but not below 3-1: the quorum holds.
	d = m.Observe(t0, rsB, bad())
	if !m.QuorumUp() || d.SorryActive || !state(t, d, rsA).InSet {
		t.Fatalf("within the hysteresis: %+v", d)
	}
	// Live weight 0: lost; the sorry server takes the connections alone.
	d = m.Observe(t0, rsA, bad())
	if m.QuorumUp() || !d.SorryActive || !m.SorryInSet() || !d.Changed || state(t, d, rsA).InSet || !state(t, d, rsA).Left {
		t.Fatalf("quorum lost: %+v", d)
	}
	if got := effects(d); got != "real server down,quorum lost:qdown,quorum lost: new connections go to the sorry server" {
		t.Fatalf("effects %s", got)
	}
	// Live weight 2 < 3+1: still lost; a live real server stays out of the set.
	d = m.Observe(t0, rsA, ok())
	if m.QuorumUp() || !d.SorryActive || state(t, d, rsA).InSet {
		t.Fatalf("below need+hysteresis: %+v", d)
	}
	// Live weight 4: regained.
	d = m.Observe(t0, rsB, ok())
	if !m.QuorumUp() || d.SorryActive || !d.SorryLeft || !state(t, d, rsA).InSet || !state(t, d, rsB).InSet {
		t.Fatalf("quorum back: %+v", d)
	}
	if got := effects(d); got != "real server up,quorum up:qup,quorum regained: the sorry server takes no new connections" {
		t.Fatalf("effects %s", got)
	}
	// The quorum's events carry no backend and are recorded.
	if e := d.Effects[1]; e.Kind != EffectQuorum || e.Event.Backend.IsValid() || e.Event.Reason != "live weight 4" {
		t.Fatalf("quorum effect %+v", e)
	}
	// A reload that removes the sorry server says so.
	svc.Sorry = netip.AddrPort{}
	if d := m.Configure(t0, true, svc, []ServerConfig{msrv(rsA, 2, 1, 1), msrv(rsB, 2, 1, 1)}); effects(d) != "sorry server removed" {
		t.Fatalf("sorry removed: %s", effects(d))
	}
}

func TestMachineImplicitQuorumLogsAtDebug(t *testing.T) {
	m := NewServiceMachine()
	m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{msrv(rsA, 1, 1, 1)})
	d := m.Observe(t0, rsA, bad())
	if len(d.Effects) != 2 || d.Effects[1].Kind != EffectQuorum || d.Effects[1].Level != slog.LevelDebug {
		t.Fatalf("effects %+v", d.Effects)
	}
}

func TestMachineSlowStart(t *testing.T) {
	m := NewServiceMachine()
	a := msrv(rsA, 101, 1, 1)
	a.Params.SlowStart = 10 * time.Second
	d := m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{a})
	if s := state(t, d, rsA); s.Weight != 101 || !d.Next.IsZero() {
		t.Fatalf("a real server of a new service slow-started: %+v", d)
	}
	m.Observe(t0, rsA, bad())
	d = m.Observe(t0, rsA, ok())
	if s := state(t, d, rsA); s.Weight != 1 || d.Next.IsZero() || !d.Next.After(t0) {
		t.Fatalf("right after recovery: %+v", d)
	}
	if d.Next.Sub(t0) != 10*time.Second/32 {
		t.Fatalf("next step at %v", d.Next.Sub(t0))
	}
	d = m.Tick(t0.Add(5 * time.Second))
	if s := state(t, d, rsA); s.Weight != 51 || !d.Changed {
		t.Fatalf("halfway: %+v", d)
	}
	if st, _, _ := m.Status(rsA, t0.Add(5*time.Second)); !st.RampEnd.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("ramp end %v", st.RampEnd)
	}
	d = m.Tick(t0.Add(10 * time.Second))
	if s := state(t, d, rsA); s.Weight != 101 || !d.Next.IsZero() {
		t.Fatalf("after the ramp: %+v", d)
	}
	// A real server added to the running service slow-starts too.
	b := msrv(rsB, 11, 1, 1)
	b.Params.SlowStart = 10 * time.Second
	d = m.Configure(t0.Add(20*time.Second), true, ServiceConfig{Quorum: 1}, []ServerConfig{a, b})
	if s := state(t, d, rsB); s.Weight != 1 || !s.InSet {
		t.Fatalf("new real server: %+v", d)
	}
	if d := m.Tick(t0.Add(30 * time.Second)); state(t, d, rsB).Weight != 11 {
		t.Fatalf("new real server after the ramp: %+v", d)
	}
}

func TestMachineDrain(t *testing.T) {
	m := NewServiceMachine()
	cfg := []ServerConfig{msrv(rsA, 3, 1, 1), msrv(rsB, 1, 1, 1)}
	m.Configure(t0, false, ServiceConfig{Quorum: 1}, cfg)
	d, known := m.SetDrain(t0, rsA, true)
	if s := state(t, d, rsA); !known || !s.InSet || s.Weight != 0 || effects(d) != "real server draining" ||
		d.Effects[0].Event.Reason != "operator: drain" {
		t.Fatalf("drained: %+v", d)
	}
	// A reload keeps the drain.
	if d := m.Configure(t0, true, ServiceConfig{Quorum: 1}, cfg); state(t, d, rsA).Weight != 0 {
		t.Fatalf("drain lost by a reload: %+v", d)
	}
	d, _ = m.SetDrain(t0, rsA, false)
	if s := state(t, d, rsA); s.Weight != 3 || d.Effects[0].Event.Reason != "operator: drain off" {
		t.Fatalf("undrained: %+v", d)
	}
	if _, known := m.SetDrain(t0, sorry, true); known {
		t.Fatal("drained an unknown real server")
	}
}

func TestMachinePassive(t *testing.T) {
	m := NewServiceMachine()
	unchecked := ServerConfig{Addr: rsA, Params: Params{Weight: 1, Rise: 1, Fall: 1}}
	m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{unchecked, msrv(rsB, 1, 3, 10)})
	if d := m.Suspect(t0, rsA, "connect failed: refused"); d.Changed || len(d.Effects) != 0 {
		t.Fatalf("an unchecked server was suspected: %+v", d)
	}
	d := m.Suspect(t0, rsB, "connect failed: refused")
	if s := state(t, d, rsB); s.InSet || d.Effects[0].Event.Reason != "passive: connect failed: refused" {
		t.Fatalf("suspect: %+v", d)
	}
	m.Observe(t0, rsB, ok())
	m.Observe(t0, rsB, ok())
	if d := m.Observe(t0, rsB, ok()); !state(t, d, rsB).InSet {
		t.Fatalf("rise passes did not bring it back: %+v", d)
	}
}

func TestMachineAgentLimitAndWeight(t *testing.T) {
	m := NewServiceMachine()
	a := msrv(rsA, 10, 1, 1)
	a.MaxConn = 7
	d := m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{a})
	if s := state(t, d, rsA); s.Limit != 7 || !d.LimitsChanged {
		t.Fatalf("configured limit: %+v", d)
	}
	// An agent's percentage and maxconn change no state, but the weight
	// and limit: the machine notices without a transition.
	d = m.Observe(t0, rsA, agent("50% maxconn:3"))
	if s := state(t, d, rsA); s.Weight != 5 || s.Limit != 3 || !d.Changed || !d.LimitsChanged {
		t.Fatalf("after the agent: %+v", d)
	}
}

func TestMachineOmega(t *testing.T) {
	m := NewServiceMachine()
	a, b := msrv(rsA, 1, 1, 1), msrv(rsB, 1, 1, 1)
	a.NotifyDown, b.NotifyDown = "a-down", "b-down"
	m.Configure(t0, false, ServiceConfig{Quorum: 1, QuorumDown: "qdown", Omega: true}, []ServerConfig{a, b})
	m.Observe(t0, rsB, bad())
	d := m.Shutdown(t0)
	if got := effects(d); got != "real server down:a-down,quorum lost:qdown" {
		t.Fatalf("omega effects %s", got)
	}
	if d.Effects[0].Event.Reason != "shutdown (omega)" {
		t.Fatalf("omega reason %q", d.Effects[0].Event.Reason)
	}
	m2 := NewServiceMachine()
	m2.Configure(t0, false, ServiceConfig{Quorum: 1, QuorumDown: "qdown"}, []ServerConfig{a})
	if d := m2.Shutdown(t0); len(d.Effects) != 0 {
		t.Fatalf("shutdown without omega: %s", effects(d))
	}
}

func TestMachineRetiresRemovedServers(t *testing.T) {
	m := NewServiceMachine()
	both := []ServerConfig{msrv(rsA, 1, 1, 1), msrv(rsB, 1, 1, 1)}
	m.Configure(t0, false, ServiceConfig{Quorum: 1}, both)
	m.Observe(t0, rsA, bad())
	d := m.Configure(t0, true, ServiceConfig{Quorum: 1}, both[1:])
	if len(d.Servers) != 1 || m.Known(rsA) {
		t.Fatalf("removed server kept: %+v", d)
	}
	if d := m.Observe(t0, rsA, ok()); d.Changed || len(d.Effects) != 0 {
		t.Fatalf("a result for a removed server decided %+v", d)
	}
	// Back within its grace period: its state is kept.
	d = m.Configure(t0, true, ServiceConfig{Quorum: 1}, both)
	if s := state(t, d, rsA); s.InSet || s.Weight != 0 {
		t.Fatalf("a down server back from retirement: %+v", d)
	}
	m.Configure(t0, true, ServiceConfig{Quorum: 1}, both[1:])
	if st, _, ok := m.Status(rsA, t0); !ok || st.State != StateDown {
		t.Fatalf("a retired server's status: %+v %v", st, ok)
	}
	m.Forget(rsA)
	if _, _, ok := m.Status(rsA, t0); ok {
		t.Fatal("a forgotten server has a status")
	}
}

// A result that confirms the state decides nothing and allocates nothing:
// at 10,000 checked real servers, it is nearly every result.
func TestMachineObserveDoesNotAllocate(t *testing.T) {
	m := NewServiceMachine()
	m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{msrv(rsA, 1, 1, 1), msrv(rsB, 1, 1, 1)})
	res := ok()
	if n := testing.AllocsPerRun(1000, func() { m.Observe(t0, rsA, res) }); n != 0 {
		t.Fatalf("%v allocations per confirming result", n)
	}
}

// TestMachineStandby: a standby server stays at weight 0, out of the
// quorum's count, until called; then it ramps as slow start says, and a
// reload keeps it called.
func TestMachineStandby(t *testing.T) {
	m := NewServiceMachine()
	a := msrv(rsA, 10, 1, 1)
	b := msrv(rsB, 20, 1, 1)
	b.Params.Standby, b.Params.SlowStart = true, 10*time.Second
	d := m.Configure(t0, false, ServiceConfig{Quorum: 1}, []ServerConfig{a, b})
	if s := state(t, d, rsB); s.Weight != 0 || !s.InSet {
		t.Fatalf("waiting standby server: %+v", s)
	}
	if active, waiting, weights := m.Standby(); active != 10 || len(waiting) != 1 || waiting[0] != rsB || weights[0] != 20 {
		t.Fatalf("Standby() = %d %v %v", active, waiting, weights)
	}
	if st, _, _ := m.Status(rsB, t0); !st.Standby || st.State != StateUp {
		t.Fatalf("status %+v", st)
	}
	// Its checks pass and fail as anyone's; it stays at 0 meanwhile.
	if d := m.Observe(t0, rsB, ok()); d.Changed {
		t.Fatalf("a passing check changed a waiting server: %+v", d)
	}
	// Losing the active server loses the quorum: the standby one counts 0.
	if d := m.Observe(t0, rsA, bad()); m.QuorumUp() || !strings.Contains(effects(d), "quorum lost") {
		t.Fatalf("quorum with only a standby server up: %v, %s", m.QuorumUp(), effects(d))
	}
	m.Observe(t0, rsA, ok())
	d, called := m.Call(t0.Add(time.Second), rsB, "the forecast")
	if !called || state(t, d, rsB).Weight != 1 || d.Next.IsZero() || !strings.Contains(effects(d), "standby real server called: the forecast") {
		t.Fatalf("called: %v %+v %s", called, d, effects(d))
	}
	if _, again := m.Call(t0.Add(time.Second), rsB, "again"); again {
		t.Fatal("called twice")
	}
	if d := m.Tick(t0.Add(11 * time.Second)); state(t, d, rsB).Weight != 20 {
		t.Fatalf("after the ramp: %+v", d)
	}
	if active, waiting, _ := m.Standby(); active != 30 || len(waiting) != 0 {
		t.Fatalf("Standby() after the call = %d %v", active, waiting)
	}
	d = m.Configure(t0.Add(20*time.Second), true, ServiceConfig{Quorum: 1}, []ServerConfig{a, b})
	if s := state(t, d, rsB); s.Weight != 20 {
		t.Fatalf("a reload sent the called server back to standby: %+v", s)
	}
}
