package director

import (
	"context"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/sched"
)

// prequal's probes in the director ("Probes use the agent protocol where
// real servers speak it, and passive measurements otherwise").
//
// agentProber is the sched.Prober (and sched.ProbeFilter) the director gives
// prequal. A real server whose health check asks an HAProxy agent (type
// agent, or agent_port next to another type) is probed through that agent:
// a probe opens a TCP connection to the agent, reads its one line
// (health.AskAgent, the agent check's own reading and parsing), and answers
// prequal with a Probe signal:
//
//   - Load, the requests in flight (RIF): the agent's inflight:N if it sent
//     one; else derived from its weight percentage as round(load x C), load
//     being 1 - percent/100 clamped to [0, 1] (health.AgentReply.Load) and
//     C the agent's maxconn:N if it sent one, else probeCapacity. A
//     percentage says how much of its capacity a server has to spare, not
//     how many requests it holds; with a maxconn, load x maxconn is the
//     connections in use; without one, RIF counts in hundredths of
//     capacity, which ranks the servers of one service the same way as
//     their percentages do (prequal compares RIFs between servers only)
//     and moves by one as this director sends the server one connection
//     more (prequal's aging of a probe).
//   - Latency: the agent's latency:D if it sent one, else the probe's round
//     trip (connect and read).
//
// An agent that says down, drain or maint gets no answer sent to prequal
// (the health checker acts on those words; prequal skips the server once
// it is out); a reply with neither inflight nor a percentage, a failed
// connection or a timeout makes the server's probes passive (Probes false:
// prequal answers them itself from its own counts, as for a server without
// an agent) for probeBackoff, then the agent is asked again. So a dead agent
// costs one failed probe a second, and picks never wait for it.
//
// Bounds: Probe never blocks and does not allocate: it queues the probe
// (probeQueue at most, more are dropped) for a pool of at most probeWorkers
// goroutines per director, started as needed and ended after probeIdle
// without work, or when the director stops (stopHealthChecks). A real
// server has at most one probe in flight and probeGap between the starts of
// two, so a director asks each agent at most 1/probeGap times a second
// whatever prequal's pick rate (it sends 3 probes per pick: at a few
// hundred picks a second, more than an agent should take). A probe lasts at
// most probeTimeout (or the check's timeout, if shorter) and ends with the
// real server's context (its removal after the grace period, the
// director's shutdown). Removing a real server, its check or its service
// stops its probes at once (stopRealHealthLocked).
//
// Between two agent replies, a probe that the rate bound holds back is
// answered at once from the last reply, if younger than probeFresh, as
// prequal would read it now: its RIF plus the change in this director's
// connections to the server since (prequal's own aging of a probe), its
// latency scaled by the same (RIF + 1) ratio, and At the reply's time, so
// that prequal's maximum age counts from the agent's words. Without that,
// prequal's pool (which drops a probe after each pick) would run dry
// between replies and its picks fall back to two random choices.
//
// Mixing: a service whose real servers all answer probes compares like with
// like. One that mixes agents with passive servers compares agents' RIFs
// (every director's requests) with this director's own counts, and, without
// latency words, agents' round trips with passive request latencies; give
// every real server of a prequal service an agent, or make agents send
// latency:.
type agentProber struct{}

const (
	probeWorkers  = 32                     // probes in flight at once, per director
	probeQueue    = 256                    // probes waiting for a worker; more are dropped
	probeGap      = 20 * time.Millisecond  // between the starts of two probes of one real server
	probeTimeout  = 200 * time.Millisecond // a probe's bound (the check's timeout if shorter)
	probeBackoff  = time.Second            // passive probes after a failed agent probe
	probeFresh    = 250 * time.Millisecond // a reply answers held-back probes this long
	probeIdle     = 2 * time.Second        // an idle worker ends
	probeCapacity = 100                    // RIF of a saturated server (0%) whose agent sends no maxconn
)

// probeEpoch makes probeNow monotonic.
var probeEpoch = time.Now()

// probeNow is a monotonic clock in ns, for the probe state's atomics.
func probeNow() int64 { return int64(time.Since(probeEpoch)) }

// probeState is a real server's share of probing; its fields are atomics,
// read by Probe and Probes without any lock.
type probeState struct {
	target atomic.Pointer[probeTarget] // nil: no agent, probes are passive
	next   atomic.Int64                // probeNow before which no probe starts
	dead   atomic.Int64                // probeNow until which probes are passive
	last   atomic.Pointer[probeAnswer] // the agent's last answer; nil: none usable
}

// probeAnswer is an agent's answer, kept to answer held-back probes.
type probeAnswer struct {
	sig  sched.Signal // with At
	mono int64        // probeNow of At
	own  int          // this director's connections to the server at At
}

// now is a's answer read now: RIF moved by this director's connections to
// d since, latency in proportion.
func (a *probeAnswer) now(d *sched.Dest) sched.Signal {
	s := a.sig
	s.Load = max(a.sig.Load+float64(probeConns(d)-a.own), 0)
	s.Latency = time.Duration(float64(a.sig.Latency) * (s.Load + 1) / (a.sig.Load + 1))
	return s
}

// probeConns is the director's own connections to d, as prequal counts them.
func probeConns(d *sched.Dest) int { return max(d.ActiveConns()+d.InactiveConns(), 0) }

// probeTarget is where and how a real server's agent is probed.
type probeTarget struct {
	addr    netip.AddrPort
	timeout time.Duration
	ctx     context.Context // the real server's
	pool    *probePool
}

// probeReq is a queued probe.
type probeReq struct {
	rs    *RealServer
	t     *probeTarget
	reply sched.SignalObserver
	at    int64 // probeNow when queued
}

// Probes reports whether d is probed through its agent now (sched.ProbeFilter).
func (agentProber) Probes(d *sched.Dest) bool {
	rs, ok := d.Owner.(*RealServer)
	if !ok {
		return false
	}
	ps := &rs.health.probe
	t := ps.target.Load()
	return t != nil && !t.pool.Closed() && probeNow() >= ps.dead.Load()
}

// Probe queues a probe of d's agent (sched.Prober).
func (agentProber) Probe(d *sched.Dest, reply sched.SignalObserver) {
	rs, ok := d.Owner.(*RealServer)
	if !ok {
		return
	}
	ps := &rs.health.probe
	t := ps.target.Load()
	if t == nil {
		return
	}
	now := probeNow()
	next := ps.next.Load()
	// One probe in flight: the next may start after this one's timeout at
	// the latest (a probe that ends sooner moves next to its end + gap).
	if now < next || !ps.next.CompareAndSwap(next, now+int64(t.timeout+probeGap)) {
		if a := ps.last.Load(); a != nil && now-a.mono <= int64(probeFresh) {
			reply.Observe(d, a.now(d))
		}
		return
	}
	if !t.pool.submit(probeReq{rs: rs, t: t, reply: reply, at: now}) {
		ps.next.Store(now + int64(probeGap))
	}
}

// agentTarget returns the agent's address of a check, if it asks one.
func agentTarget(spec *health.Spec) (netip.AddrPort, bool) {
	switch {
	case spec == nil:
		return netip.AddrPort{}, false
	case spec.Type == "agent":
		return spec.Target, true
	case spec.AgentPort != 0:
		return netip.AddrPortFrom(spec.Target.Addr(), spec.AgentPort), true
	}
	return netip.AddrPort{}, false
}

// configureProbeLocked points rs's probes at the agent of its running
// check, or makes them passive.
func (vs *VirtualService) configureProbeLocked(rs *RealServer) {
	h := &rs.health
	addr, ok := agentTarget(h.spec)
	if !ok || h.job == nil {
		h.probe.target.Store(nil)
		return
	}
	t := &probeTarget{addr: addr, timeout: probeTimeout, ctx: rs.ctx, pool: &vs.d().hc.probes}
	if h.spec.Timeout > 0 {
		t.timeout = min(t.timeout, h.spec.Timeout)
	}
	if old := h.probe.target.Load(); old != nil && *old == *t {
		return
	}
	h.probe.dead.Store(0)
	h.probe.next.Store(0)
	h.probe.last.Store(nil)
	h.probe.target.Store(t)
}

// probeSignal is prequal's answer from an agent's reply, measured in rtt;
// ok is false when the reply says nothing of the server's load.
func probeSignal(a health.AgentReply, rtt time.Duration) (sig sched.Signal, ok bool) {
	sig = sched.Signal{Kind: sched.Probe, Latency: rtt}
	switch load, hasLoad := a.Load(); {
	case a.InFlight >= 0:
		sig.Load = float64(a.InFlight)
	case hasLoad:
		c := probeCapacity
		if a.MaxConn > 0 {
			c = a.MaxConn
		}
		sig.Load = math.Round(load * float64(c))
	default:
		return sched.Signal{}, false
	}
	if a.Latency >= 0 {
		sig.Latency = a.Latency
	}
	return sig, true
}

// probePool runs a director's probes on a health.Pool, the design the
// health checks' Runner uses: at most probeWorkers, probeQueue waiting,
// workers ending after probeIdle.
type probePool struct {
	*health.Pool[probeReq]
}

func (p *probePool) init() {
	p.Pool = health.NewPool(context.Background(), probeWorkers, probeQueue, probeIdle, p.probe)
}

// close stops the probes and waits for the workers to end.
func (p *probePool) close() { p.Close() }

// submit queues r, starting a worker if none is free; false: the queue is
// full or the pool closed.
func (p *probePool) submit(r probeReq) bool { return p.TrySubmit(r) }

// probe asks r's agent and answers prequal.
func (p *probePool) probe(pctx context.Context, r probeReq) {
	ps := &r.rs.health.probe
	t := r.t
	if ps.target.Load() != t || probeNow()-r.at > int64(t.timeout) {
		return // reconfigured or removed since, or queued too long to matter
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	stop := context.AfterFunc(pctx, cancel)
	start := time.Now()
	a, err := health.AskAgent(ctx, t.addr)
	rtt := time.Since(start)
	stop()
	cancel()
	if pctx.Err() != nil || t.ctx.Err() != nil {
		return // the director or the real server stopped
	}
	now := probeNow()
	sig, ok := probeSignal(a, rtt)
	if err != nil || !ok {
		ps.last.Store(nil)
		ps.dead.Store(now + int64(probeBackoff))
		ps.next.Store(now + int64(probeBackoff))
		return
	}
	ps.next.Store(now + int64(probeGap))
	if a.Op == health.OpDown || a.Admin == health.AdminDrain || a.Admin == health.AdminMaint {
		ps.last.Store(nil)
		return
	}
	sig.At = time.Now()
	ps.last.Store(&probeAnswer{sig: sig, mono: now, own: probeConns(r.rs.Dest)})
	r.reply.Observe(r.rs.Dest, sig)
}
