package director

import (
	"context"
	"net/netip"
	"reflect"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/sched"
)

// Health checking in the director is an adapter. The policy (rise/fall,
// quorum with hysteresis, the sorry server, slow start, drain, passive
// health, alpha/omega) is each service's health.ServiceMachine, a pure
// machine; this file feeds it (check results from the health.Runner, an
// operator's drains, passive failures, reloads, slow-start ticks) and
// applies its decisions: effective weights and limits to the real servers'
// sched.Dests, the set (or the sorry server alone) to the scheduler, the
// service's desired state to the dataplanes (a new snapshot, published by
// the reconciler: snapshot.go). health_effects.go performs the effects
// (logs, event records, notify commands) once the lock is released.
//
// State ownership: a service's machine, its real servers' check jobs and
// its slow-start timer belong to the service and are guarded by vs.mu, the
// lock reloads already take. A lock rather than a goroutine per service
// (Seesaw's vserver.run): a reload must hand the scheduler the new set
// before it publishes the settings pointing at it, synchronously, within
// Apply's all-or-nothing step; a goroutine would make every reload and
// every API read (Health, QuorumUp, SorryServer) a round trip through a
// channel for the same serialisation. What runs under vs.mu is memory
// only (the machine, Dest weights, the scheduler's Update): no netlink,
// no socket, no command, no log; those run after the unlock.

// directorHealth is the director's share of health checking.
type directorHealth struct {
	runner *health.Runner
	now    func() time.Time
	effects
	probes *health.AgentProbes // prequal's agent probes (prober.go)
}

func (h *directorHealth) init() {
	h.runner = health.NewRunner(0)
	h.now = time.Now
	h.effects.init()
	h.probes = health.NewAgentProbes()
}

// svcHealth is a virtual service's share; guarded by its mu.
type svcHealth struct {
	d      *Director
	m      *health.ServiceMachine
	sorry  *RealServer
	ramp   *time.Timer // the machine's next slow-start deadline
	rampAt time.Time
}

// rsHealth is a real server's share; guarded by its service's mu.
type rsHealth struct {
	vs           *VirtualService
	sorry        bool         // the service's sorry server, not in its machine
	spec         *health.Spec // nil: not checked
	job          *health.Job
	gen          uint64 // bumped when the job changes; older results are dropped
	upper, lower int
	probe        health.AgentProbe // prequal's probes of its agent (prober.go); atomics
}

// HealthStatus is a real server's health, for the API and the dashboard.
type HealthStatus struct {
	health.Status
	Check     string // the check's type; empty when not checked
	Weight    int    // effective weight now
	InService bool   // in the scheduler's set
	Sorry     bool   // the service's sorry server
}

// Health returns the real server's health state.
func (rs *RealServer) Health() HealthStatus {
	h := &rs.health
	vs := h.vs
	if vs == nil {
		return HealthStatus{Weight: rs.Dest.Weight()}
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	m := vs.health.m
	if h.sorry {
		return HealthStatus{Status: health.Status{State: health.StateUp, Up: true}, Weight: rs.Dest.Weight(),
			InService: m.SorryInSet() && vs.health.sorry == rs, Sorry: true}
	}
	st, in, ok := m.Status(rs.Addr, vs.d().hc.now())
	if !ok {
		return HealthStatus{Weight: rs.Dest.Weight()}
	}
	out := HealthStatus{Status: st, Weight: rs.Dest.Weight(), InService: in}
	if h.spec != nil {
		out.Check = h.spec.Type
	}
	return out
}

// QuorumUp reports whether the service has its quorum: the total weight of
// its live real servers is at least quorum (keepalived's, default 1).
func (vs *VirtualService) QuorumUp() bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.health.m.QuorumUp()
}

// ServiceUp reports whether the virtual service named name is up: its
// quorum holds. known is false when no service has that name. VRRP's
// track_services reads it.
func (d *Director) ServiceUp(name string) (up, known bool) {
	for _, vs := range d.Services() {
		if vs.Settings().Name == name {
			return vs.QuorumUp(), true
		}
	}
	return false, false
}

// SorryServer returns the service's sorry server, or nil; active says it
// takes the new connections because the quorum is lost.
func (vs *VirtualService) SorryServer() (rs *RealServer, active bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.health.sorry, vs.health.sorry != nil && vs.health.m.SorryActive()
}

// SetDrain sets (on) or clears an operator's drain of a real server: it
// takes no new connections while its established ones finish. The drain
// lasts until cleared, across reloads that keep the real server.
func (d *Director) SetDrain(serviceKey string, backend netip.AddrPort, on bool) error {
	vs := d.Service(serviceKey)
	if vs == nil {
		return ErrNoService
	}
	backend = netip.AddrPortFrom(backend.Addr().Unmap(), backend.Port())
	var acts healthActions
	vs.mu.Lock()
	dec, ok := vs.health.m.SetDrain(d.hc.now(), backend, on)
	if ok {
		vs.applyLocked(vs.Settings().Scheduler, vs.RealServers(), dec, false, &acts)
	}
	vs.mu.Unlock()
	acts.run()
	if !ok {
		return ErrNoDest
	}
	return nil
}

// ConnectFailed is passive health checking: a dataplane reports that a
// connection to rs failed (refused, timed out, unreachable). A checked real
// server is then taken out of scheduling at once, as if its checks had
// reached fall, and its checks bring it back after rise passes. Failures
// that say nothing about the real server (the local host out of sockets, a
// cancelled connection) are ignored, as are unchecked real servers: nothing
// would bring them back.
func (vs *VirtualService) ConnectFailed(rs *RealServer, err error) {
	why, fault := health.ConnectFault(err)
	if rs == nil || rs.ctx.Err() != nil || !fault {
		return
	}
	var acts healthActions
	vs.mu.Lock()
	h := &rs.health
	if h.vs != vs || h.sorry || h.job == nil || !vs.health.m.Up(rs.Addr) { // not checked, removed, or down already
		vs.mu.Unlock()
		return
	}
	dec := vs.health.m.Suspect(vs.d().hc.now(), rs.Addr, why)
	vs.applyLocked(vs.Settings().Scheduler, vs.RealServers(), dec, false, &acts)
	vs.mu.Unlock()
	acts.run()
}

// d returns the service's director.
func (vs *VirtualService) d() *Director { return vs.health.d }

// initHealth ties a new service's health checks to its life.
func (vs *VirtualService) initHealth(d *Director) {
	vs.health.d = d
	vs.health.m = health.NewServiceMachine()
	context.AfterFunc(vs.ctx, vs.stopHealth)
}

// stopHealth stops the checks of every real server of the service: it was
// removed, or it is shutting down. A reload that brings it back starts them
// again.
func (vs *VirtualService) stopHealth() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for _, rs := range vs.RealServers() {
		vs.stopRealHealthLocked(rs)
	}
	vs.scheduleRampLocked(time.Time{}, time.Time{})
}

func (vs *VirtualService) stopRealHealthLocked(rs *RealServer) {
	h := &rs.health
	if h.job != nil {
		h.job.Stop()
		h.job = nil
	}
	h.gen++
	h.probe.Stop() // its probes are passive from now on
}

// configureCheckLocked (re)starts a real server's check when it changed
// (a reload keeps a check that did not change, and its job) and returns
// the real server's settings for the service's machine.
func (vs *VirtualService) configureCheckLocked(rs *RealServer, rc *config.RealServer, vc *config.VirtualServer) health.ServerConfig {
	d := vs.d()
	h := &rs.health
	if h.vs != vs {
		// Once, before rs is published: Health reads h.vs without vs.mu,
		// so a running real server's must not be written again.
		h.vs = vs
	}
	defer vs.configureProbeLocked(rs) // prequal probes the agent of the check that runs
	var spec *health.Spec
	var checker health.Checker
	if rc.Check != nil {
		s := health.SpecFor(rc.Check, rs.Addr)
		spec = &s
		if h.job == nil || !reflect.DeepEqual(spec, h.spec) {
			c, err := health.New(s)
			if err != nil {
				d.log.Error("health check not started, real server left unchecked", "service", vc.Name,
					"backend", rs.Addr.String(), "err", err)
				spec = nil
			}
			checker = c
		}
	}
	sc := serverHealthConfig(rs.Addr, rc, vc, spec != nil)
	h.upper, h.lower = rc.UpperThreshold, rc.LowerThreshold

	if checker == nil && reflect.DeepEqual(spec, h.spec) && (spec == nil) == (h.job == nil) {
		return sc // same check, running
	}
	vs.stopRealHealthLocked(rs)
	h.spec = spec
	if spec == nil || checker == nil {
		return sc
	}
	gen := h.gen
	h.job = d.hc.runner.Start(checker, spec.Type, spec.Timing(), func(r health.Result) { vs.observe(rs, gen, r) })
	return sc
}

// serverHealthConfig is a real server's settings for its service's
// machine; checked says its check runs.
func serverHealthConfig(addr netip.AddrPort, rc *config.RealServer, vc *config.VirtualServer, checked bool) health.ServerConfig {
	sc := health.ServerConfig{Addr: addr, NotifyUp: rc.NotifyUp, NotifyDown: rc.NotifyDown, MaxConn: rc.MaxConnections,
		Alpha: vc.Alpha, Params: health.Params{Weight: *rc.Weight, SlowStart: vc.SlowStart.D(), Inhibit: vc.InhibitOnFailure,
			Checked: checked, Rise: 1, Fall: 1, Standby: rc.Standby}}
	if rc.InhibitOnFailure != nil {
		sc.Params.Inhibit = *rc.InhibitOnFailure
	}
	if rc.Alpha != nil {
		sc.Alpha = *rc.Alpha
	}
	if checked {
		sc.Params.Rise, sc.Params.Fall = rc.Check.Rise, rc.Check.Fall
	}
	return sc
}

// preview is what a reload to vc would ask the dataplanes to serve for
// this running service: the decision of a clone of its machine, so that
// nothing changes until the dataplanes have committed (Director.Apply).
// A check that fails to start on the real run leaves its server unchecked
// (always up) where the preview counted it checked; the snapshot published
// after the reload corrects that.
func (vs *VirtualService) preview(now time.Time, vc *config.VirtualServer, spec *desired.Service) *desired.Service {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	known := map[netip.AddrPort]*RealServer{}
	for _, rs := range vs.RealServers() {
		known[rs.Addr] = rs
	}
	for addr, rs := range vs.retiring {
		known[addr] = rs
	}
	servers := make([]health.ServerConfig, len(vc.RealServers))
	reals := make([]*RealServer, len(vc.RealServers))
	for i, rc := range vc.RealServers {
		addr := rc.Address.AddrPort()
		servers[i] = serverHealthConfig(addr, rc, vc, rc.Check != nil)
		servers[i].Warm = vs.warmLocked(rc)
		reals[i] = known[addr]
	}
	running := vs.reals.Load() != nil
	dec := vs.health.m.Clone().Configure(now, running, serviceHealthConfig(vc), servers)
	return wantFrom(spec, dec, reals)
}

// serviceHealthConfig is the service's policy for its machine.
func serviceHealthConfig(vc *config.VirtualServer) health.ServiceConfig {
	sc := health.ServiceConfig{Quorum: config.DefaultQuorum, Hysteresis: vc.QuorumHysteresis, QuorumUp: vc.QuorumUp,
		QuorumDown: vc.QuorumDown, Omega: vc.Omega,
		Explicit: vc.Quorum != nil || vc.QuorumUp != "" || vc.QuorumDown != "" || !vc.SorryServer.IsZero()}
	if vc.Quorum != nil {
		sc.Quorum = *vc.Quorum
	}
	if !vc.SorryServer.IsZero() {
		sc.Sorry = vc.SorryServer.AddrPort()
	}
	return sc
}

// configureSorryLocked keeps the service's sorry server's RealServer (its
// Dest, counters and context) in line with the configuration; the machine
// decides when it serves.
func (vs *VirtualService) configureSorryLocked(vc *config.VirtualServer, grace time.Duration) {
	sh := &vs.health
	var want netip.AddrPort
	if !vc.SorryServer.IsZero() {
		want = vc.SorryServer.AddrPort()
	}
	if sh.sorry != nil && sh.sorry.Addr != want {
		time.AfterFunc(grace, sh.sorry.cancel) // "sorry server removed" is the machine's to log
		sh.sorry = nil
	}
	if !want.IsValid() {
		return
	}
	if sh.sorry == nil {
		ctx, cancel := context.WithCancel(vs.ctx)
		rs := &RealServer{Addr: want, Dest: sched.NewDest(want, 1), Latency: newLatency(), ctx: ctx, cancel: cancel}
		rs.Dest.Owner = rs
		rs.health.vs, rs.health.sorry = vs, true
		sh.sorry = rs
	}
	one := 1
	sh.sorry.cfg.Store(&config.RealServer{Address: vc.SorryServer, Weight: &one, SendProxy: vc.SendProxy})
}

// observe takes a check's result for rs.
func (vs *VirtualService) observe(rs *RealServer, gen uint64, r health.Result) {
	var acts healthActions
	vs.mu.Lock()
	h := &rs.health
	if h.gen != gen || h.job == nil {
		vs.mu.Unlock()
		return
	}
	dec := vs.health.m.Observe(vs.d().hc.now(), rs.Addr, r)
	vs.applyLocked(vs.Settings().Scheduler, vs.RealServers(), dec, false, &acts)
	vs.mu.Unlock()
	acts.run()
	if r.OK && r.Latency > 0 {
		// A check's round trip is the latency signal adaptive-weights runs
		// on where no per-connection latency is seen (kernel NAT).
		vs.Observe(rs, sched.Signal{Kind: sched.HealthLatency, Latency: r.Latency, At: r.At})
	}
	if load, ok := r.Agent.Load(); r.HasAgent && ok {
		// The agent's percentage, besides scaling the effective weight
		// above, is the server's own word on its load: adaptive-weights'
		// load term. The mapping (1 - percent/100, clamped to [0, 1]) and
		// its reasons are at health.AgentReply.Load.
		vs.Observe(rs, sched.Signal{Kind: sched.AgentLoad, Load: load, At: r.At})
	}
}

// applyLocked applies a decision of the service's machine: effective
// weights and connection limits to the real servers (reals, in the order
// the machine was configured with), the set (or the sorry server alone) to
// the scheduler s when it changed, persistence templates of servers that
// left the set, the slow-start timer; the effects go to acts. Memory only:
// it runs under vs.mu.
func (vs *VirtualService) applyLocked(s sched.Scheduler, reals []*RealServer, dec health.Decision, force bool, acts *healthActions) {
	acts.add(vs, dec.Effects)
	if dec.Servers == nil && !dec.Changed {
		return // nothing the scheduler holds changed
	}
	pers := vs.persist.Load()
	if len(dec.Servers) != len(reals) {
		// Cannot happen: the machine and the published list change
		// together, under vs.mu. Apply nothing rather than misapply.
		vs.d().log.Error("health decision for another set of real servers", "service", vs.serviceName())
		return
	}
	for i, st := range dec.Servers {
		rs := reals[i]
		if rs.Dest.Weight() != st.Weight {
			rs.Dest.SetWeight(st.Weight)
		}
		if dec.LimitsChanged || force {
			rs.Dest.SetThresholds(rs.health.upper, rs.health.lower, st.Limit)
		}
		if st.Left && pers != nil {
			pers.table.Forget(rs.Dest) // its clients are scheduled afresh
		}
	}
	sorry := vs.health.sorry
	if dec.SorryLeft && sorry != nil && pers != nil {
		pers.table.Forget(sorry.Dest)
	}
	if vs.spec != nil && len(vs.spec.Reals) == len(reals) {
		// What the dataplanes serve follows every decision that changed a
		// weight or the set (force: a reload); published after the unlock.
		vs.want.Store(wantFrom(vs.spec, dec, reals))
	}
	if dec.Changed {
		dests := make([]*sched.Dest, 0, len(reals))
		if dec.SorryActive && sorry != nil {
			dests = append(dests, sorry.Dest)
		} else {
			for i, st := range dec.Servers {
				if st.InSet {
					dests = append(dests, reals[i].Dest)
				}
			}
		}
		s.Update(dests)
		acts.changed = vs
	}
	vs.scheduleRampLocked(dec.Next, vs.d().hc.now())
}

// scheduleRampLocked keeps one timer on the machine's next slow-start
// deadline (at); a zero at stops it.
func (vs *VirtualService) scheduleRampLocked(at, now time.Time) {
	sh := &vs.health
	if at.IsZero() || vs.ctx.Err() != nil {
		if sh.ramp != nil {
			sh.ramp.Stop()
			sh.ramp, sh.rampAt = nil, time.Time{}
		}
		return
	}
	if sh.ramp != nil && !sh.rampAt.After(at) && sh.rampAt.After(now) {
		return // an earlier tick is due
	}
	if sh.ramp != nil {
		sh.ramp.Stop()
	}
	sh.rampAt = at
	sh.ramp = time.AfterFunc(at.Sub(now), vs.rampTick)
}

func (vs *VirtualService) rampTick() {
	var acts healthActions
	vs.mu.Lock()
	vs.health.ramp, vs.health.rampAt = nil, time.Time{}
	if st := vs.Settings(); st != nil && vs.ctx.Err() == nil {
		dec := vs.health.m.Tick(vs.d().hc.now())
		vs.applyLocked(st.Scheduler, vs.RealServers(), dec, false, &acts)
	}
	vs.mu.Unlock()
	acts.run()
}

// stopHealthChecks stops every check and, for services with omega, runs
// the down notifiers of the real servers that were up and the quorum_down of
// services that had their quorum, as keepalived does on shutdown.
func (d *Director) stopHealthChecks(services []*VirtualService) {
	d.hc.runner.Close()
	d.hc.probes.Close()
	for _, vs := range services {
		var acts healthActions
		vs.mu.Lock()
		acts.add(vs, vs.health.m.Shutdown(d.hc.now()).Effects)
		vs.mu.Unlock()
		acts.run()
	}
	d.hc.closeNotifies()
}

func (vs *VirtualService) serviceName() string {
	if st := vs.Settings(); st != nil {
		return st.Name
	}
	return vs.Key
}
