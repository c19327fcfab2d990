package health

import (
	"context"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

// prequal's probes ("Probes use the agent protocol where real servers
// speak it, and passive measurements otherwise"): AgentProbes is the
// bounded pool that runs them, beside the Runner's on the same Pool
// design, and AgentProbe a real server's probing state. The director's
// sched.Prober (and sched.ProbeFilter) for prequal is a thin adapter from
// a sched.Dest to its real server's AgentProbe
// (internal/director/prober.go).
//
// A real server whose health check asks an HAProxy agent (type
// agent, or agent_port next to another type) is probed through that agent:
// a probe opens a TCP connection to the agent, reads its one line
// (AskAgent, the agent check's own reading and parsing), and answers
// prequal with a Probe signal:
//
//   - Load, the requests in flight (RIF): the agent's inflight:N if it sent
//     one; else derived from its weight percentage as round(load x C), load
//     being 1 - percent/100 clamped to [0, 1] (AgentReply.Load) and
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
// without work, or when the pool closes (the director's stop). A real
// server has at most one probe in flight and probeGap between the starts of
// two, so a director asks each agent at most 1/probeGap times a second
// whatever prequal's pick rate (it sends 3 probes per pick: at a few
// hundred picks a second, more than an agent should take). A probe lasts at
// most probeTimeout (or the check's timeout, if shorter) and ends with the
// real server's context (its removal after the grace period, the
// director's shutdown). Removing a real server, its check or its service
// stops its probes at once (AgentProbe.Stop).
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

const (
	probeWorkers  = 32                     // probes in flight at once, per pool
	probeQueue    = 256                    // probes waiting for a worker; more are dropped
	ProbeGap      = 20 * time.Millisecond  // between the starts of two probes of one real server
	ProbeTimeout  = 200 * time.Millisecond // a probe's bound (the check's timeout if shorter)
	probeBackoff  = time.Second            // passive probes after a failed agent probe
	probeFresh    = 250 * time.Millisecond // a reply answers held-back probes this long
	probeIdle     = 2 * time.Second        // an idle worker ends
	probeCapacity = 100                    // RIF of a saturated server (0%) whose agent sends no maxconn
)

// probeEpoch makes probeNow monotonic.
var probeEpoch = time.Now()

// probeNow is a monotonic clock in ns, for the probe state's atomics.
func probeNow() int64 { return int64(time.Since(probeEpoch)) }

// AgentProbes runs agent probes on a Pool, the design the Runner's checks
// use: at most probeWorkers, probeQueue waiting, workers ending after
// probeIdle without work.
type AgentProbes struct {
	pool *Pool[probeReq]
}

// NewAgentProbes returns a pool of agent probes; Close stops it.
func NewAgentProbes() *AgentProbes {
	p := &AgentProbes{}
	p.pool = NewPool(context.Background(), probeWorkers, probeQueue, probeIdle, p.probe)
	return p
}

// Close stops the probes and waits for the workers to end.
func (p *AgentProbes) Close() { p.pool.Close() }

// Workers is the number of probe workers running.
func (p *AgentProbes) Workers() int { return p.pool.Workers() }

// AgentProbe is a real server's share of probing; its fields are atomics,
// read by Probe and Probes without any lock.
type AgentProbe struct {
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
	pool    *AgentProbes
}

// probeReq is a queued probe.
type probeReq struct {
	ps    *AgentProbe
	d     *sched.Dest
	t     *probeTarget
	reply sched.SignalObserver
	at    int64 // probeNow when queued
}

// Probes reports whether the server is probed through its agent now
// (sched.ProbeFilter).
func (ps *AgentProbe) Probes() bool {
	t := ps.target.Load()
	return t != nil && !t.pool.pool.Closed() && probeNow() >= ps.dead.Load()
}

// Probe queues a probe of the agent of d's server (sched.Prober): the
// answer goes to reply. It never blocks and does not allocate.
func (ps *AgentProbe) Probe(d *sched.Dest, reply sched.SignalObserver) {
	t := ps.target.Load()
	if t == nil {
		return
	}
	now := probeNow()
	next := ps.next.Load()
	// One probe in flight: the next may start after this one's timeout at
	// the latest (a probe that ends sooner moves next to its end + gap).
	if now < next || !ps.next.CompareAndSwap(next, now+int64(t.timeout+ProbeGap)) {
		if a := ps.last.Load(); a != nil && now-a.mono <= int64(probeFresh) {
			reply.Observe(d, a.now(d))
		}
		return
	}
	if !t.pool.pool.TrySubmit(probeReq{ps: ps, d: d, t: t, reply: reply, at: now}) {
		ps.next.Store(now + int64(ProbeGap))
	}
}

// Last is the agent's last usable answer, as given to prequal.
func (ps *AgentProbe) Last() (sched.Signal, bool) {
	if a := ps.last.Load(); a != nil {
		return a.sig, true
	}
	return sched.Signal{}, false
}

// agentTarget returns the agent's address of a check, if it asks one.
func agentTarget(spec *Spec) (netip.AddrPort, bool) {
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

// Point points the server's probes at the agent of its running check spec
// (nil: no check runs), on pool, for as long as ctx (the real server's)
// lives; a check without an agent makes them passive.
func (ps *AgentProbe) Point(pool *AgentProbes, spec *Spec, ctx context.Context) {
	addr, ok := agentTarget(spec)
	if !ok {
		ps.target.Store(nil)
		return
	}
	t := &probeTarget{addr: addr, timeout: ProbeTimeout, ctx: ctx, pool: pool}
	if spec.Timeout > 0 {
		t.timeout = min(t.timeout, spec.Timeout)
	}
	if old := ps.target.Load(); old != nil && *old == *t {
		return
	}
	ps.dead.Store(0)
	ps.next.Store(0)
	ps.last.Store(nil)
	ps.target.Store(t)
}

// Stop makes the server's probes passive: its check or the server is gone.
func (ps *AgentProbe) Stop() { ps.target.Store(nil) }

// probeSignal is prequal's answer from an agent's reply, measured in rtt;
// ok is false when the reply says nothing of the server's load.
func probeSignal(a AgentReply, rtt time.Duration) (sig sched.Signal, ok bool) {
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

// probe asks r's agent and answers prequal.
func (p *AgentProbes) probe(pctx context.Context, r probeReq) {
	ps := r.ps
	t := r.t
	if ps.target.Load() != t || probeNow()-r.at > int64(t.timeout) {
		return // reconfigured or removed since, or queued too long to matter
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	stop := context.AfterFunc(pctx, cancel)
	start := time.Now()
	a, err := AskAgent(ctx, t.addr)
	rtt := time.Since(start)
	stop()
	cancel()
	if pctx.Err() != nil || t.ctx.Err() != nil {
		return // the pool or the real server stopped
	}
	now := probeNow()
	sig, ok := probeSignal(a, rtt)
	if err != nil || !ok {
		ps.last.Store(nil)
		ps.dead.Store(now + int64(probeBackoff))
		ps.next.Store(now + int64(probeBackoff))
		return
	}
	ps.next.Store(now + int64(ProbeGap))
	if a.Op == OpDown || a.Admin == AdminDrain || a.Admin == AdminMaint {
		ps.last.Store(nil)
		return
	}
	sig.At = time.Now()
	ps.last.Store(&probeAnswer{sig: sig, mono: now, own: probeConns(r.d)})
	r.reply.Observe(r.d, sig)
}
