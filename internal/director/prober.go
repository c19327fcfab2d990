package director

import (
	"github.com/govs-lb/govs/internal/sched"
)

// agentProber is the sched.Prober (and sched.ProbeFilter) the director
// gives prequal: a thin adapter from a sched.Dest to its real server's
// health.AgentProbe, which does the probing on the director's
// health.AgentProbes pool (internal/health/prober.go says how, and what
// bounds it). A real server's probes point at the agent of its running
// check (configureProbeLocked) and stop with the check
// (stopRealHealthLocked).
type agentProber struct{}

// Probes reports whether d is probed through its agent now (sched.ProbeFilter).
func (agentProber) Probes(d *sched.Dest) bool {
	rs, ok := d.Owner.(*RealServer)
	return ok && rs.health.probe.Probes()
}

// Probe queues a probe of d's agent (sched.Prober).
func (agentProber) Probe(d *sched.Dest, reply sched.SignalObserver) {
	if rs, ok := d.Owner.(*RealServer); ok {
		rs.health.probe.Probe(d, reply)
	}
}

// configureProbeLocked points rs's probes at the agent of its running
// check, or makes them passive.
func (vs *VirtualService) configureProbeLocked(rs *RealServer) {
	h := &rs.health
	if h.job == nil {
		h.probe.Stop()
		return
	}
	h.probe.Point(vs.d().hc.probes, h.spec, rs.ctx)
}
