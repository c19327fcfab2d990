package director

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/sched"
)

// fakeAgent is an HAProxy agent on loopback: it writes its reply to each
// connection and closes it; with hold, it accepts and never answers (a
// stalled agent).
type fakeAgent struct {
	port  int
	asked atomic.Int64
	mu    sync.Mutex
	reply string
	hold  bool
}

func startAgent(t *testing.T, reply string, hold bool) *fakeAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{port: ln.Addr().(*net.TCPAddr).Port, reply: reply, hold: hold}
	done := make(chan struct{})
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.asked.Add(1)
			if a.hold {
				held = append(held, c)
				continue
			}
			a.mu.Lock()
			io.WriteString(c, a.reply)
			a.mu.Unlock()
			c.Close()
		}
	}()
	return a
}

func (a *fakeAgent) set(reply string) { a.mu.Lock(); a.reply = reply; a.mu.Unlock() }

// signalLog is a SignalObserver that keeps what it is told.
type signalLog struct {
	mu   sync.Mutex
	sigs []loggedSignal
}

type loggedSignal struct {
	d *sched.Dest
	s sched.Signal
}

func (l *signalLog) Observe(d *sched.Dest, s sched.Signal) {
	l.mu.Lock()
	l.sigs = append(l.sigs, loggedSignal{d, s})
	l.mu.Unlock()
}

// of returns the signals of kind k about d.
func (l *signalLog) of(d *sched.Dest, k sched.SignalKind) []sched.Signal {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sched.Signal
	for _, x := range l.sigs {
		if x.d == d && x.s.Kind == k {
			out = append(out, x.s)
		}
	}
	return out
}

// probeWorkersNow is the number of probe workers running.
func probeWorkersNow(d *Director) int {
	return d.hc.probes.Workers()
}

// agentPrequal is prequal with the director's agent Prober, in front of the
// service's real servers.
func agentPrequal(t *testing.T, vs *VirtualService) sched.Scheduler {
	t.Helper()
	s, err := sched.New("prequal", sched.Options{Prober: agentProber{}})
	if err != nil {
		t.Fatal(err)
	}
	var ds []*sched.Dest
	for _, rs := range vs.RealServers() {
		ds = append(ds, rs.Dest)
	}
	s.Update(ds)
	t.Cleanup(func() { s.Update(nil) })
	return s
}

func TestProberAsksAgent(t *testing.T) {
	agent := startAgent(t, "up 50% inflight:7 latency:3ms\n", false)
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    scheduler: wlc
    real_servers:
      - address: 127.0.0.1:9
        health_check: {type: agent, port: %d, interval: 1h}
      - address: 127.0.0.1:10
`, agent.port))
	vs := d.Service("tcp/127.0.0.1:80")
	ra, rb := vs.RealServers()[0], vs.RealServers()[1]
	var p agentProber
	if !p.Probes(ra.Dest) || p.Probes(rb.Dest) {
		t.Fatalf("Probes: agent %v, no agent %v; want true, false", p.Probes(ra.Dest), p.Probes(rb.Dest))
	}
	var log signalLog
	// until probes ra until an answer satisfies ok, and returns it.
	until := func(what string, ok func(sched.Signal) bool) sched.Signal {
		t.Helper()
		var last sched.Signal
		loopback.WaitFor(t, what, func() bool {
			p.Probe(ra.Dest, &log)
			time.Sleep(time.Millisecond)
			got := log.of(ra.Dest, sched.Probe)
			if len(got) == 0 {
				return false
			}
			last = got[len(got)-1]
			return ok(last)
		})
		return last
	}
	until("inflight 7, latency 3ms", func(s sched.Signal) bool {
		return s.Load == 7 && s.Latency == 3*time.Millisecond && !s.At.IsZero()
	})
	// Without inflight, RIF from the percentage and maxconn; without
	// latency, the probe's round trip.
	agent.set("25% maxconn:40\n")
	s := until("0.75 x 40 = 30 in flight", func(s sched.Signal) bool { return s.Load == 30 })
	if s.Latency <= 0 || s.Latency > time.Second {
		t.Fatalf("latency %v: want the probe's round trip", s.Latency)
	}
	// At most one probe in flight and one per health.ProbeGap: a burst of probes
	// asks the agent once.
	// The burst must take less than ProbeGap for "once" to hold: a
	// loaded machine that stops the test between two calls for longer
	// makes a second probe due. Such a burst proves nothing either way:
	// it is run again (not the assertion loosened).
	for attempt := 0; ; attempt++ {
		time.Sleep(2 * health.ProbeGap)
		before := agent.asked.Load()
		t0 := time.Now()
		for range 100 {
			p.Probe(ra.Dest, &log)
		}
		if el := time.Since(t0); el >= health.ProbeGap {
			if attempt == 50 {
				t.Fatalf("50 bursts of 100 probes each took a probe gap (%v) or more: the machine is too loaded to tell", health.ProbeGap)
			}
			continue
		}
		time.Sleep(health.ProbeGap / 2)
		if n := agent.asked.Load() - before; n > 1 {
			t.Fatalf("100 probes at once asked the agent %d times, want 1", n)
		}
		break
	}
	// Between replies, held-back probes are answered from the last one
	// (aged by this director's connections since: health's
	// TestProbeAnswerAges).
	if last, ok := ra.health.probe.Last(); !ok || last.Load != 30 {
		t.Fatalf("last answer %+v, want 30 in flight", last)
	}
	// Draining: no answer, the agent is still asked.
	agent.set("drain inflight:1\n")
	asked := agent.asked.Load()
	loopback.WaitFor(t, "the agent asked after the change", func() bool {
		p.Probe(ra.Dest, &log)
		time.Sleep(time.Millisecond)
		return agent.asked.Load() > asked
	})
	time.Sleep(2 * health.ProbeGap)
	answers := len(log.of(ra.Dest, sched.Probe))
	asked = agent.asked.Load()
	loopback.WaitFor(t, "more probes", func() bool {
		p.Probe(ra.Dest, &log)
		time.Sleep(time.Millisecond)
		return agent.asked.Load() > asked+3
	})
	if n := len(log.of(ra.Dest, sched.Probe)); n > answers {
		t.Fatalf("%d answers from a draining agent", n-answers)
	}
	// No word about load: the server's probes turn passive.
	agent.set("up\n")
	loopback.WaitFor(t, "passive probes", func() bool {
		p.Probe(ra.Dest, &log)
		time.Sleep(time.Millisecond)
		return !p.Probes(ra.Dest)
	})
}

// TestPrequalAgentProbes: prequal with the director's agent Prober prefers
// the real servers whose agents report fewer requests in flight.
func TestPrequalAgentProbes(t *testing.T) {
	run := func(t *testing.T, replies ...string) map[string]int {
		t.Helper()
		yaml := "virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n"
		for i, r := range replies {
			a := startAgent(t, r, false)
			yaml += fmt.Sprintf("      - address: 127.0.0.1:%d\n        health_check: {type: agent, port: %d, interval: 1h}\n", 9+i, a.port)
		}
		d := startHealthDirector(t, yaml)
		vs := d.Service("tcp/127.0.0.1:80")
		s := agentPrequal(t, vs)
		counts := map[string]int{}
		for i := range 600 {
			d := s.Pick(nil)
			if d == nil {
				t.Fatal("no pick")
			}
			if i >= 100 { // the pool fills during the first picks
				counts[d.Owner.(*RealServer).Addr.String()]++
			}
			time.Sleep(200 * time.Microsecond)
		}
		t.Logf("picks %v", counts)
		return counts
	}
	t.Run("equal latency", func(t *testing.T) {
		// Both cold (the 0.6 quantile of RIFs probed half at 1, half at
		// 30, is 30); at equal latency the lower RIF wins.
		c := run(t, "up inflight:1 latency:5ms\n", "up inflight:30 latency:5ms\n")
		if c["127.0.0.1:9"] < 400 {
			t.Fatalf("picks %v: want most to 127.0.0.1:9 (1 in flight, against 30)", c)
		}
	})
	t.Run("hot", func(t *testing.T) {
		// Two servers with nothing in flight and one with 50: the 0.6
		// quantile is 0, the third is hot and chosen only when the pool
		// has nothing else.
		c := run(t, "up 100% inflight:0\n", "up 100% inflight:0\n", "up 10% inflight:50\n")
		if c["127.0.0.1:11"] > 50 {
			t.Fatalf("picks %v: want few to 127.0.0.1:11 (50 in flight, against 0)", c)
		}
	})
}

// TestPrequalDeadAgent: a refused and a stalled agent turn their servers'
// probes passive, and picks never wait for them.
func TestPrequalDeadAgent(t *testing.T) {
	web := startHCBackend(t)
	stalled := startAgent(t, "", true)
	refused := loopback.FreePort(t, "tcp")
	d := startHealthDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    real_servers:
      - address: %s
        health_check: {type: tcp, agent_port: %d, interval: 1h}
      - address: 127.0.0.1:9
        health_check: {type: tcp, port: %d, agent_port: %d, interval: 1h}
`, web.addr, refused, netip.MustParseAddrPort(web.addr).Port(), stalled.port))
	vs := d.Service("tcp/127.0.0.1:80")
	ra, rb := vs.RealServers()[0], vs.RealServers()[1]
	s := agentPrequal(t, vs)
	// Passive probes read these latencies: A is the faster.
	o := s.(sched.SignalObserver)
	counts := map[*RealServer]int{}
	var slowest time.Duration
	start := time.Now()
	for time.Since(start) < 3*health.ProbeTimeout {
		o.Observe(ra.Dest, sched.Signal{Kind: sched.FirstByte, Latency: 2 * time.Millisecond})
		o.Observe(rb.Dest, sched.Signal{Kind: sched.FirstByte, Latency: 20 * time.Millisecond})
		t0 := time.Now()
		d := s.Pick(nil)
		slowest = max(slowest, time.Since(t0))
		if d == nil {
			t.Fatal("no pick")
		}
		counts[d.Owner.(*RealServer)]++
		time.Sleep(200 * time.Microsecond)
	}
	// A pick that waited for the stalled agent would wait out its probe's
	// bound (ProbeTimeout); below that, a slow pick is the machine's load
	// (two shared cores can hold a goroutine off for tens of ms), which a
	// fixed 50 ms took for a wait.
	if slowest >= health.ProbeTimeout*3/4 {
		t.Errorf("slowest pick %v: picks wait for agents (a probe's bound is %v)", slowest, health.ProbeTimeout)
	}
	var p agentProber
	if p.Probes(ra.Dest) || p.Probes(rb.Dest) {
		t.Errorf("probes still sent to the dead agents: refused %v, stalled %v", p.Probes(ra.Dest), p.Probes(rb.Dest))
	}
	if stalled.asked.Load() == 0 {
		t.Error("the stalled agent was never asked")
	}
	// Passive probes, as without a Prober: the faster server gets most
	// picks (without any answer at all, picks would split evenly).
	if total := counts[ra] + counts[rb]; counts[ra] < total*3/4 {
		t.Fatalf("picks: A %d, B %d; want most to A, by passive latency", counts[ra], counts[rb])
	}
}

// TestProbersStop: probe workers end when the director stops, and when the
// service whose agents they asked is removed.
func TestProbersStop(t *testing.T) {
	agent := startAgent(t, "up inflight:1\n", false)
	stalled := startAgent(t, "", true)
	cfg := fmt.Sprintf(`
virtual_servers:
  - address: 127.0.0.1:80
    real_servers:
      - address: 127.0.0.1:9
        health_check: {type: agent, port: %d, interval: 1h}
      - address: 127.0.0.1:10
        health_check: {type: agent, port: %d, interval: 1h, timeout: 1h}
`, agent.port, stalled.port)
	d := New(healthLog(), healthDataplane{})
	applyYAML(t, d, cfg)
	vs := d.Service("tcp/127.0.0.1:80")
	s := agentPrequal(t, vs)
	for range 50 {
		s.Pick(nil)
		time.Sleep(time.Millisecond)
	}
	if probeWorkersNow(d) == 0 {
		t.Fatal("no probe worker started")
	}
	// Removal: the service's real servers are probed no more, and the
	// workers end once idle.
	applyYAML(t, d, "virtual_servers: []\n")
	var p agentProber
	for _, rs := range vs.RealServers() {
		if p.Probes(rs.Dest) {
			t.Fatalf("%s still probed after its service was removed", rs.Addr)
		}
	}
	asked := agent.asked.Load()
	for range 50 {
		s.Pick(nil)
	}
	loopback.WaitFor(t, "idle probe workers to end", func() bool { return probeWorkersNow(d) == 0 })
	if agent.asked.Load() != asked {
		t.Fatal("the agent of a removed service was asked")
	}

	// Shutdown: the workers end, a probe of a stalled agent included.
	d2 := New(healthLog(), healthDataplane{})
	applyYAML(t, d2, cfg)
	s2 := agentPrequal(t, d2.Service("tcp/127.0.0.1:80"))
	loopback.WaitFor(t, "the stalled agent asked", func() bool {
		s2.Pick(nil)
		time.Sleep(time.Millisecond)
		return stalled.asked.Load() > 0
	})
	// A grace of 10 s and a bound of 5: a shutdown that waited for the
	// stalled probe would take the whole grace; one that cancels it takes
	// milliseconds, and a loaded machine's pause stays far from either.
	t0 := time.Now()
	if err := d2.Shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := probeWorkersNow(d2); n != 0 {
		t.Fatalf("%d probe workers after shutdown", n)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Fatalf("shutdown took %v: it waited for the stalled probe", el)
	}
	if p.Probes(d2.Service("tcp/127.0.0.1:80").RealServers()[0].Dest) {
		t.Fatal("probes after shutdown")
	}
	d.Shutdown(time.Second)
}
