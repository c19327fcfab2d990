package director

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/sched"
)

// healthDataplane forwards nothing: these tests look at the director's
// state and schedulers directly.
type healthDataplane struct{ NullDataplane }

func healthLog() *slog.Logger {
	if os.Getenv("GOVS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// hcBackend is a loopback TCP listener that can go down and come back on
// the same port.
type hcBackend struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func startHCBackend(t *testing.T) *hcBackend {
	t.Helper()
	b := &hcBackend{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.down)
	return b
}

func (b *hcBackend) serve(ln net.Listener) {
	b.mu.Lock()
	b.ln = ln
	b.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (b *hcBackend) down() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		b.ln.Close()
		b.ln = nil
	}
}

func (b *hcBackend) up() {
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.serve(ln)
}

func startHealthDirector(t *testing.T, yaml string) *Director {
	t.Helper()
	d := New(healthLog(), healthDataplane{})
	applyYAML(t, d, yaml)
	t.Cleanup(func() { d.Shutdown(time.Second) })
	return d
}

func applyYAML(t *testing.T, d *Director, yaml string) {
	t.Helper()
	if !strings.Contains(yaml, "script_user") {
		// The scripts of these tests write to test directories only root
		// may enter.
		yaml = "script_user: root\n" + yaml
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
}

func realServer(vs *VirtualService, addr string) *RealServer {
	ap := netip.MustParseAddrPort(addr)
	for _, rs := range vs.RealServers() {
		if rs.Addr == ap {
			return rs
		}
	}
	return nil
}

// picks schedules n connections and counts them by real server.
func picks(vs *VirtualService, n int) map[string]int {
	out := map[string]int{}
	for i := 0; i < n; i++ {
		b := vs.Schedule(netip.AddrPortFrom(netip.MustParseAddr("10.1.2.3"), uint16(1000+i)), nil)
		if b.RealServer == nil {
			out["none"]++
			continue
		}
		out[b.RealServer.Addr.String()]++
		vs.Release(b)
	}
	return out
}

func fileHas(path, want string) func() bool {
	return func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), want)
	}
}

func TestHealthDownAndUp(t *testing.T) {
	a, b := startHCBackend(t), startHCBackend(t)
	log := filepath.Join(t.TempDir(), "notify.log")
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    scheduler: rr
    health_check: {type: tcp, interval: 20ms, timeout: 500ms, rise: 2, fall: 2}
    real_servers:
      - address: %s
        notify_up: echo "up $GOVS_REAL_SERVER" >> %s
        notify_down: echo "down $GOVS_REAL_SERVER" >> %s
      - address: %s
`, a.addr, log, log, b.addr))
	vs := d.Service("tcp/127.0.0.1:80")
	ra := realServer(vs, a.addr)
	loopback.WaitFor(t, "a first check", func() bool { return ra.Health().Checks > 0 })
	if got := picks(vs, 10); got[a.addr] != 5 || got[b.addr] != 5 {
		t.Fatalf("picks with both up: %v", got)
	}

	a.down()
	loopback.WaitFor(t, "a down", func() bool { return ra.Health().State == health.StateDown })
	h := ra.Health()
	if ra.Dest.Weight() != 0 || h.InService || h.Weight != 0 || h.Check != "tcp" ||
		!strings.Contains(h.Reason, "tcp check failed 2 times (fall 2): connect: connection refused") || h.Last.OK {
		t.Fatalf("a after failing: %+v", h)
	}
	if got := picks(vs, 10); got[b.addr] != 10 {
		t.Fatalf("picks with a down: %v", got)
	}
	loopback.WaitFor(t, "notify_down", fileHas(log, "down "+a.addr))

	a.up()
	loopback.WaitFor(t, "a up", func() bool { return ra.Health().State == health.StateUp })
	if h := ra.Health(); !strings.Contains(h.Reason, "passed 2 times (rise 2)") || !h.InService || h.Weight != 1 {
		t.Fatalf("a after recovering: %+v", h)
	}
	if got := picks(vs, 10); got[a.addr] != 5 {
		t.Fatalf("picks with a back: %v", got)
	}
	loopback.WaitFor(t, "notify_up", fileHas(log, "up "+a.addr))

	var evs []HealthEvent
	for _, ev := range d.HealthEvents() {
		if ev.Backend.String() == a.addr {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 2 || evs[0].To != health.StateDown || evs[1].To != health.StateUp || evs[0].Key != vs.Key ||
		evs[0].Service != "tcp/127.0.0.1:80" || !evs[1].Time.After(evs[0].Time) {
		t.Fatalf("events: %+v", evs)
	}
}

func TestHealthAlphaAndInhibit(t *testing.T) {
	a := startHCBackend(t)
	dead := startHCBackend(t)
	dead.down()
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    alpha: true
    inhibit_on_failure: true
    health_check: {type: tcp, interval: 50ms, rise: 3, fall: 1}
    real_servers:
      - address: %s
      - address: %s
`, a.addr, dead.addr))
	vs := d.Service("tcp/127.0.0.1:80")
	ra, rd := realServer(vs, a.addr), realServer(vs, dead.addr)
	// Alpha: both start down; with inhibit_on_failure they stay in the set at weight 0.
	if h := rd.Health(); h.Checks == 0 && (h.State != health.StateDown || !h.InService || h.Weight != 0) {
		t.Fatalf("alpha server before its first check: %+v", h)
	}
	// The first pass brings a up, not rise passes.
	loopback.WaitFor(t, "a up", func() bool { return ra.Health().Up })
	if h := ra.Health(); h.Checks != 1 || !strings.Contains(h.Reason, "first tcp check passed (alpha)") {
		t.Fatalf("alpha server after its first pass: %+v", h)
	}
	loopback.WaitFor(t, "checks of the dead one", func() bool { return rd.Health().Checks >= 2 })
	if h := rd.Health(); h.Up || !h.InService || rd.Dest.Weight() != 0 {
		t.Fatalf("inhibited down server: %+v", h)
	}
	if got := picks(vs, 10); got[a.addr] != 10 {
		t.Fatalf("picks: %v", got)
	}
}

func TestHealthQuorumAndSorryServer(t *testing.T) {
	a, b := startHCBackend(t), startHCBackend(t)
	sorry := "127.0.0.1:9"
	log := filepath.Join(t.TempDir(), "quorum.log")
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    quorum: 2
    quorum_up: echo "quorum up $GOVS_SERVICE" >> %s
    quorum_down: echo "quorum down $GOVS_SERVICE" >> %s
    sorry_server: %s
    health_check: {type: tcp, interval: 20ms, rise: 1, fall: 1}
    real_servers:
      - address: %s
      - address: %s
`, log, log, sorry, a.addr, b.addr))
	vs := d.Service("tcp/127.0.0.1:80")
	if !vs.QuorumUp() {
		t.Fatal("quorum not up at start")
	}
	if s, active := vs.SorryServer(); s == nil || active || s.Addr.String() != sorry || s.Config().Address.String() != sorry {
		t.Fatalf("sorry server %v active %v", s, active)
	}
	b.down()
	loopback.WaitFor(t, "the quorum lost", func() bool { return !vs.QuorumUp() })
	if got := picks(vs, 10); got[sorry] != 10 {
		t.Fatalf("picks with the quorum lost: %v", got)
	}
	if _, active := vs.SorryServer(); !active {
		t.Fatal("sorry server not active")
	}
	if h := realServer(vs, a.addr).Health(); !h.Up || h.InService {
		t.Fatalf("a live real server while the sorry server serves: %+v", h)
	}
	loopback.WaitFor(t, "quorum_down", fileHas(log, "quorum down tcp/127.0.0.1:80"))
	b.up()
	loopback.WaitFor(t, "the quorum back", vs.QuorumUp)
	if got := picks(vs, 10); got[a.addr]+got[b.addr] != 10 {
		t.Fatalf("picks with the quorum back: %v", got)
	}
	loopback.WaitFor(t, "quorum_up", fileHas(log, "quorum up tcp/127.0.0.1:80"))
	var quorumEvents []string
	for _, ev := range d.HealthEvents() {
		if !ev.Backend.IsValid() {
			quorumEvents = append(quorumEvents, ev.To)
		}
	}
	if strings.Join(quorumEvents, ",") != "quorum lost,quorum up" {
		t.Fatalf("quorum events %v", quorumEvents)
	}
}

func TestHealthSlowStart(t *testing.T) {
	a, b := startHCBackend(t), startHCBackend(t)
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	d := New(healthLog(), healthDataplane{})
	d.hc.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(by time.Duration) { mu.Lock(); now = now.Add(by); mu.Unlock() }
	t.Cleanup(func() { d.Shutdown(time.Second) })
	cfg := fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    slow_start: 10s
    health_check: {type: tcp, interval: 20ms, rise: 1, fall: 1}
    real_servers:
      - address: %s
        weight: 101
`, a.addr)
	applyYAML(t, d, cfg)
	vs := d.Service("tcp/127.0.0.1:80")
	ra := realServer(vs, a.addr)
	if w := ra.Dest.Weight(); w != 101 {
		t.Fatalf("a real server of a new service slow-started: weight %d", w)
	}
	a.down()
	loopback.WaitFor(t, "a down", func() bool { return !ra.Health().Up })
	a.up()
	loopback.WaitFor(t, "a up", func() bool { return ra.Health().Up })
	if w := ra.Dest.Weight(); w != 1 {
		t.Fatalf("weight right after recovery %d, want 1", w)
	}
	advance(5 * time.Second)
	vs.rampTick()
	if w := ra.Dest.Weight(); w != 51 {
		t.Fatalf("weight halfway %d, want 51", w)
	}
	if h := ra.Health(); !h.RampEnd.Equal(now.Add(5 * time.Second)) {
		t.Fatalf("ramp end %v", h.RampEnd)
	}
	advance(5 * time.Second)
	vs.rampTick()
	if w := ra.Dest.Weight(); w != 101 {
		t.Fatalf("weight after the ramp %d, want 101", w)
	}
	// A real server added to the running service slow-starts too.
	applyYAML(t, d, cfg+fmt.Sprintf("      - address: %s\n        weight: 11\n", b.addr))
	if w := realServer(vs, b.addr).Dest.Weight(); w != 1 {
		t.Fatalf("new real server's weight %d, want 1", w)
	}
	advance(10 * time.Second)
	vs.rampTick()
	if w := realServer(vs, b.addr).Dest.Weight(); w != 11 {
		t.Fatalf("new real server's weight after the ramp %d, want 11", w)
	}
}

func TestHealthDrain(t *testing.T) {
	a, b := startHCBackend(t), startHCBackend(t)
	cfg := fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    health_check: {type: tcp, interval: 50ms}
    real_servers:
      - address: %s
        weight: 3
      - address: %s
`, a.addr, b.addr)
	d := startHealthDirector(t, cfg)
	vs := d.Service("tcp/127.0.0.1:80")
	ra := realServer(vs, a.addr)
	if err := d.SetDrain(vs.Key, ra.Addr, true); err != nil {
		t.Fatal(err)
	}
	if h := ra.Health(); h.State != health.StateDraining || !h.Draining || !h.InService || ra.Dest.Weight() != 0 {
		t.Fatalf("drained: %+v weight %d", h, ra.Dest.Weight())
	}
	if got := picks(vs, 10); got[b.addr] != 10 {
		t.Fatalf("picks with a drained: %v", got)
	}
	applyYAML(t, d, cfg) // a reload keeps the drain
	if h := ra.Health(); !h.Draining || ra.Dest.Weight() != 0 {
		t.Fatalf("drain lost by a reload: %+v", h)
	}
	if err := d.SetDrain(vs.Key, ra.Addr, false); err != nil {
		t.Fatal(err)
	}
	if h := ra.Health(); h.State != health.StateUp || ra.Dest.Weight() != 3 {
		t.Fatalf("undrained: %+v", h)
	}
	if err := d.SetDrain("tcp/127.0.0.1:81", ra.Addr, true); err != ErrNoService {
		t.Fatalf("unknown service: %v", err)
	}
	if err := d.SetDrain(vs.Key, netip.MustParseAddrPort("127.0.0.1:1"), true); err != ErrNoDest {
		t.Fatalf("unknown real server: %v", err)
	}
	var reasons []string
	for _, ev := range d.HealthEvents() {
		reasons = append(reasons, ev.Reason)
	}
	if strings.Join(reasons, ",") != "operator: drain,operator: drain off" {
		t.Fatalf("events %v", reasons)
	}
}

func TestHealthSurvivesReload(t *testing.T) {
	a := startHCBackend(t)
	cfg := func(check string) string {
		return fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
%s
    real_servers:
      - address: %s
        weight: 2
`, check, a.addr)
	}
	d := startHealthDirector(t, cfg("    health_check: {type: tcp, interval: 20ms, rise: 50, fall: 1}"))
	vs := d.Service("tcp/127.0.0.1:80")
	ra := realServer(vs, a.addr)
	a.down()
	loopback.WaitFor(t, "a down", func() bool { return !ra.Health().Up })
	a.up()
	job := ra.health.job

	// Same check: same job, still down (rise 50 is far).
	applyYAML(t, d, cfg("    # moved down a line\n    health_check: {type: tcp, interval: 20ms, rise: 50, fall: 1}"))
	if ra.health.job != job || ra.Health().Up {
		t.Fatalf("a reload without a check change restarted the check (%v) or changed the state (%+v)", ra.health.job != job, ra.Health())
	}
	// Another rise: same job, and the new rise applies.
	applyYAML(t, d, cfg("    health_check: {type: tcp, interval: 20ms, rise: 2, fall: 1}"))
	if ra.health.job != job {
		t.Fatal("a change of rise restarted the check")
	}
	loopback.WaitFor(t, "a up with the new rise", func() bool { return ra.Health().Up })
	a.down()
	loopback.WaitFor(t, "a down", func() bool { return !ra.Health().Up })
	// Another interval: a new job, the state kept.
	applyYAML(t, d, cfg("    health_check: {type: tcp, interval: 30ms, rise: 2, fall: 1}"))
	if ra.health.job == job || ra.Health().Up {
		t.Fatalf("an interval change: new job %v, state %+v", ra.health.job != job, ra.Health())
	}
	// No check any more: up, since nothing else could bring it up.
	applyYAML(t, d, cfg(""))
	if h := ra.Health(); !h.Up || h.Reason != "health check removed" || ra.health.job != nil || ra.Dest.Weight() != 2 {
		t.Fatalf("check removed: %+v", h)
	}
}

func TestPassiveHealth(t *testing.T) {
	a := startHCBackend(t)
	b := startHCBackend(t)
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    health_check: {type: tcp, interval: 30ms, rise: 3, fall: 10}
    real_servers:
      - address: %s
        health_check: {type: none}
      - address: %s
`, a.addr, b.addr))
	vs := d.Service("tcp/127.0.0.1:80")
	ra, rb := realServer(vs, a.addr), realServer(vs, b.addr)
	// Failures that say nothing about the real server change nothing.
	vs.ConnectFailed(rb, syscall.EMFILE)
	vs.ConnectFailed(rb, context.Canceled)
	vs.ConnectFailed(ra, syscall.ECONNREFUSED) // not checked: nothing would bring it back
	if !ra.Health().Up || !rb.Health().Up {
		t.Fatal("a passive failure that should be ignored was not")
	}
	vs.ConnectFailed(rb, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	h := rb.Health()
	if h.Up || !h.Suspect || h.InService || rb.Dest.Weight() != 0 || h.Reason != "passive: connect failed: connection refused" {
		t.Fatalf("suspect: %+v", h)
	}
	if got := picks(vs, 4); got[a.addr] != 4 {
		t.Fatalf("picks with b suspect: %v", got)
	}
	// b is fine: its checks bring it back after rise passes.
	loopback.WaitFor(t, "b back", func() bool { return rb.Health().Up })
	if h := rb.Health(); h.Passes < 3 || !strings.Contains(h.Reason, "passed 3 times (rise 3)") {
		t.Fatalf("b back: %+v", h)
	}
	vs.ConnectFailed(rb, context.DeadlineExceeded)
	if h := rb.Health(); h.Up || h.Reason != "passive: connect timed out" {
		t.Fatalf("timeout: %+v", h)
	}
}

func TestHealthAgentAndDynamicWeight(t *testing.T) {
	agentReply := make(chan string, 1)
	agentReply <- "75%\n"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	reply := "75%\n"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			io.WriteString(c, reply)
			mu.Unlock()
			c.Close()
		}
	}()
	set := func(s string) { mu.Lock(); reply = s; mu.Unlock() }
	script := filepath.Join(t.TempDir(), "code")
	os.WriteFile(script, []byte("12"), 0o644)
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    real_servers:
      - address: %s
        weight: 100
        health_check: {type: agent, port: %d, interval: 20ms, rise: 1, fall: 1}
      - address: 127.0.0.2:80
        weight: 1
        health_check: {type: script, command: "exit $(cat %s)", dynamic: true, interval: 20ms, rise: 1, fall: 1}
`, ln.Addr(), ln.Addr().(*net.TCPAddr).Port, script))
	vs := d.Service("tcp/127.0.0.1:80")
	ra, rs := vs.RealServers()[0], vs.RealServers()[1]
	loopback.WaitFor(t, "the agent's 75%", func() bool { return ra.Dest.Weight() == 75 })
	set("drain maxconn:7\n")
	loopback.WaitFor(t, "the agent's drain", func() bool { return ra.Health().State == health.StateDraining })
	if ra.Dest.Weight() != 0 || !ra.Health().InService {
		t.Fatalf("agent drain: %+v", ra.Health())
	}
	set("maint\n")
	loopback.WaitFor(t, "the agent's maint", func() bool { return ra.Health().State == health.StateMaint })
	if ra.Health().InService {
		t.Fatal("maint server in service")
	}
	set("ready up 100%\n")
	loopback.WaitFor(t, "the agent's ready", func() bool { return ra.Dest.Weight() == 100 })

	loopback.WaitFor(t, "the script's weight", func() bool { return rs.Dest.Weight() == 10 })
	os.WriteFile(script, []byte("1"), 0o644)
	loopback.WaitFor(t, "the script's failure", func() bool { return !rs.Health().Up })
}

func TestHealthOmega(t *testing.T) {
	a := startHCBackend(t)
	log := filepath.Join(t.TempDir(), "omega.log")
	d := New(healthLog(), healthDataplane{})
	applyYAML(t, d, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    omega: true
    quorum_down: echo "quorum down" >> %s
    health_check: {type: tcp, interval: 20ms}
    real_servers:
      - address: %s
        notify_down: echo "down $GOVS_REAL_SERVER" >> %s
`, log, a.addr, log))
	if err := d.Shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	// Shutdown waits for the notifiers.
	if !fileHas(log, "down "+a.addr)() || !fileHas(log, "quorum down")() {
		b, _ := os.ReadFile(log)
		t.Fatalf("omega notifiers did not run: %q", b)
	}
}

func TestHealthEventsBounded(t *testing.T) {
	d := New(healthLog(), healthDataplane{})
	defer d.Shutdown(time.Second)
	for i := 0; i < HealthEventsKept+10; i++ {
		d.hc.record(HealthEvent{Reason: fmt.Sprint(i)})
	}
	evs := d.HealthEvents()
	if len(evs) != HealthEventsKept || evs[0].Reason != "10" || evs[len(evs)-1].Reason != fmt.Sprint(HealthEventsKept+9) {
		t.Fatalf("%d events from %s to %s", len(evs), evs[0].Reason, evs[len(evs)-1].Reason)
	}
}

func TestHealthStopsWithService(t *testing.T) {
	a := startHCBackend(t)
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    health_check: {type: tcp, interval: 20ms}
    real_servers:
      - address: %s
`, a.addr))
	if d.hc.runner.Len() != 1 {
		t.Fatalf("%d jobs", d.hc.runner.Len())
	}
	applyYAML(t, d, "virtual_servers: []\n")
	loopback.WaitFor(t, "the check stopped", func() bool { return d.hc.runner.Len() == 0 })
}

// notifyingDataplane records the snapshots applied after health decisions.
type notifyingDataplane struct {
	healthDataplane
	mu      sync.Mutex
	applied []*Snapshot
}

func (n *notifyingDataplane) Apply(s *Snapshot) error {
	n.mu.Lock()
	n.applied = append(n.applied, s)
	n.mu.Unlock()
	return nil
}

func TestHealthNotifiesDataplane(t *testing.T) {
	a := startHCBackend(t)
	dp := &notifyingDataplane{}
	d := New(healthLog(), dp)
	t.Cleanup(func() { d.Shutdown(time.Second) })
	applyYAML(t, d, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    health_check: {type: tcp, interval: 20ms, rise: 1, fall: 1}
    real_servers:
      - address: %s
`, a.addr))
	// The last snapshot applied says whether the real server takes new
	// connections.
	available := func() (bool, bool) {
		dp.mu.Lock()
		defer dp.mu.Unlock()
		if len(dp.applied) == 0 {
			return false, false
		}
		last := dp.applied[len(dp.applied)-1]
		if len(last.Services) != 1 || last.Services[0].Desired.Key != "tcp/127.0.0.1:80" {
			t.Errorf("applied %+v", last.Services)
			return false, false
		}
		return last.Services[0].Desired.Reals[0].Available, true
	}
	loopback.WaitFor(t, "a snapshot with the real server up", func() bool { up, ok := available(); return ok && up })
	a.down()
	loopback.WaitFor(t, "a snapshot with the real server down", func() bool { up, ok := available(); return ok && !up })
}

// signalSched is a scheduler (the first available real server) that keeps
// the signals it observes, registered for these tests as "test-signals".
type signalSched struct {
	signalLog
	mu    sync.Mutex
	dests []*sched.Dest
}

func init() {
	sched.Register("test-signals", func(sched.Options) (sched.Scheduler, error) { return &signalSched{}, nil })
}

func (s *signalSched) Update(dests []*sched.Dest) { s.mu.Lock(); s.dests = dests; s.mu.Unlock() }

func (s *signalSched) Pick(*sched.Key) *sched.Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.dests {
		if d.Available() {
			return d
		}
	}
	return nil
}

// TestHealthAgentLoadSignal: an agent's percentage reaches a scheduler that
// observes signals as AgentLoad, 1 - percent/100 clamped to [0, 1], from an
// agent check and from agent_port next to another check.
func TestHealthAgentLoadSignal(t *testing.T) {
	web := startHCBackend(t)
	a1 := startAgent(t, "up 25%\n", false)
	a2 := startAgent(t, "150% maxconn:10\n", false)
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    scheduler: test-signals
    real_servers:
      - address: 127.0.0.1:9
        weight: 100
        health_check: {type: agent, port: %d, interval: 20ms, rise: 1, fall: 1}
      - address: %s
        health_check: {type: tcp, agent_port: %d, interval: 20ms, rise: 1, fall: 1}
`, a1.port, web.addr, a2.port))
	vs := d.Service("tcp/127.0.0.1:80")
	s := vs.Settings().Scheduler.(*signalSched)
	r1, r2 := vs.RealServers()[0], vs.RealServers()[1]
	loadOf := func(rs *RealServer) (float64, int) {
		got := s.of(rs.Dest, sched.AgentLoad)
		if len(got) == 0 {
			return -1, 0
		}
		if got[len(got)-1].At.IsZero() {
			t.Fatal("AgentLoad without its time")
		}
		return got[len(got)-1].Load, len(got)
	}
	loopback.WaitFor(t, "AgentLoad 0.75 from 25%", func() bool { l, _ := loadOf(r1); return l == 0.75 })
	loopback.WaitFor(t, "AgentLoad 0 from 150%", func() bool { l, _ := loadOf(r2); return l == 0 })
	if r1.Dest.Weight() != 25 {
		t.Fatalf("weight %d: the percentage still scales the weight", r1.Dest.Weight())
	}
	a1.set("up 0%\n")
	loopback.WaitFor(t, "AgentLoad 1 from 0%", func() bool { l, _ := loadOf(r1); return l == 1 })
	// A reply without a percentage says nothing of the load.
	a1.set("up\n")
	checks := func() int { return len(s.of(r1.Dest, sched.HealthLatency)) }
	n := checks()
	loopback.WaitFor(t, "two checks", func() bool { return checks() > n+2 })
	_, loads := loadOf(r1)
	n = checks()
	loopback.WaitFor(t, "three more checks", func() bool { return checks() > n+3 })
	if _, now := loadOf(r1); now != loads {
		t.Fatalf("%d AgentLoad signals from replies without a percentage", now-loads)
	}
}
