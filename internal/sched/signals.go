package sched

import (
	"math"
	"math/rand/v2"
	"time"
)

// This file holds what the adaptive schedulers (pewma, prequal,
// adaptive-weights) learn from: measurements of the real servers that the
// layer above hands them through the optional SignalObserver interface, and
// the Prober that sends prequal's probes. The IPVS schedulers implement
// neither and are unaffected.
//
// Who reports what (all optional; a scheduler uses what it gets):
//
//	dataplane (proxy)   ConnectTime, FirstByte, Duration, per connection
//	health checker      HealthLatency per successful check, AgentLoad from an agent
//	prober              Probe, in answer to Prober.Probe
//
// The kernel dataplanes see no per-connection latency; adaptive-weights is
// the adaptive scheduler meant for them, as it can run on health-check
// latency and agent load alone.

// SignalKind says what a Signal measures.
type SignalKind uint8

// The kinds of signal. Times are measured by the director, from the moment
// the connection was bound to the real server (Dest.Bind).
const (
	// ConnectTime is the time until the connection to the real server was
	// established. A connect that failed or timed out is reported too, as
	// the time waited, so that latency-aware schedulers see it as a peak.
	ConnectTime SignalKind = iota + 1
	// FirstByte is the time until the first byte from the real server:
	// the connect plus the server's think time, for request/response
	// protocols the best measure of the server's latency.
	FirstByte
	// Duration is the time until the connection was released (Unbind).
	Duration
	// AgentLoad is the real server's own report of its load in Load: 0
	// idle, 1 saturated, above 1 overloaded (a utilisation, or a load
	// average divided by the CPU count). The director sends it for each
	// agent-check reply with a weight percentage, as 1 - percent/100
	// clamped to [0, 1] (health.AgentReply.Load says why).
	AgentLoad
	// HealthLatency is the round trip of a successful health check.
	HealthLatency
	// Probe is a real server's answer to a probe sent by a Prober: Load is
	// its requests in flight (from every director), Latency its recent
	// request latency.
	Probe
)

var kindNames = [...]string{"none", "connect_time", "first_byte", "duration", "agent_load", "health_latency", "probe"}

func (k SignalKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Signal is one measurement of a real server.
type Signal struct {
	Kind    SignalKind
	Latency time.Duration // ConnectTime, FirstByte, Duration, HealthLatency, Probe
	Load    float64       // AgentLoad, Probe (requests in flight)
	// At is when the measurement was taken; the zero time means now, by the
	// scheduler's clock (Options.Clock).
	At time.Time
}

// SignalObserver is implemented by the schedulers that learn from
// measurements (pewma, prequal, adaptive-weights). The layer above finds it
// with a type assertion on the scheduler and reports each measurement of a
// real server it holds; other schedulers simply do not implement it.
//
// Observe may run concurrently with Pick, Update and itself. It neither
// blocks on I/O nor allocates, so a dataplane can call it on its hot path.
// A signal for a Dest the scheduler does not hold is ignored.
type SignalObserver interface {
	Observe(d *Dest, s Signal)
}

// Prober sends load probes to real servers for prequal. Probe must return at
// once without allocating (queue the probe, or drop it when the queue is
// full); it is called with no lock held. The answer comes back, later or at
// once, as reply.Observe(d, Signal{Kind: Probe, Load: requests in flight,
// Latency: recent latency}). A probe that gets no answer needs no report.
//
// Real servers that speak an agent protocol answer probes (the director's
// Prober asks their HAProxy agent); for the others, a Prober that also
// implements ProbeFilter lets prequal answer from passive measurements. With
// no Prober at all, prequal builds every probe itself from the director's
// own counts and the latency signals it observes.
type Prober interface {
	Probe(d *Dest, reply SignalObserver)
}

// ProbeFilter is implemented by a Prober that probes only some real servers
// (those whose agent answers probes). Before each probe prequal asks
// Probes(d) under its lock; for a server it does not probe, prequal answers
// the probe itself from passive measurements, as it does with no Prober, so
// that one service can mix servers with and without an agent. Probes must
// be cheap (an atomic load or two), must not block, and must not call into
// the scheduler. A server that Probes but whose probe the Prober drops (a
// rate limit) gets no answer that time.
type ProbeFilter interface {
	Probes(d *Dest) bool
}

// randSource returns the random source of opts.
func randSource(o Options) func() uint64 {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Uint64
}

// clockSource returns the clock of opts.
func clockSource(o Options) func() time.Time {
	if o.Clock != nil {
		return o.Clock
	}
	return time.Now
}

// signalTime is when s was measured, in nanoseconds since the Unix epoch.
func signalTime(s *Signal, clock func() time.Time) int64 {
	if s.At.IsZero() {
		return clock().UnixNano()
	}
	return s.At.UnixNano()
}

// ewma is an exponentially weighted moving average over unevenly spaced
// samples: a sample td after the previous one gets the weight
// 1 - exp(-td/tau), so the average forgets at the same pace in time however
// often samples come. The first sample is taken as is.
type ewma struct {
	val   float64
	stamp int64 // ns of the last sample; 0: no sample yet
}

func (e *ewma) add(x float64, now int64, tau float64) {
	if e.stamp == 0 {
		e.val, e.stamp = x, max(now, 1)
		return
	}
	td := float64(max(now-e.stamp, 0))
	w := math.Exp(-td / tau)
	e.val = e.val*w + x*(1-w)
	e.stamp = max(now, e.stamp)
}

// fresh reports whether e has a sample no older than maxAge.
func (e *ewma) fresh(now int64, maxAge float64) bool {
	return e.stamp != 0 && float64(now-e.stamp) <= maxAge
}

// positions maps each Dest to its index in dests, the first one for a
// duplicate.
func positions(dests []*Dest) map[*Dest]int32 {
	pos := make(map[*Dest]int32, len(dests))
	for i, d := range dests {
		if _, dup := pos[d]; !dup {
			pos[d] = int32(i)
		}
	}
	return pos
}
