package director

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/sched"
	"github.com/govs-lb/govs/internal/script"
)

// Health checking and the real-server lifecycle in the director: the
// health package's Trackers say what each real server's state and weight
// are; the code here applies that to the schedulers (a down server leaves
// the scheduler's set, unless inhibit_on_failure keeps it at weight 0), runs
// the notify and quorum commands, switches to the sorry server while the
// quorum is lost, and keeps a record of transitions. Every change of a
// service's health state happens under its mu, like reloads.

// ChangeNotifier is implemented by dataplanes that copy the real servers'
// weights and the set in service somewhere of their own (kernel maps, say)
// instead of scheduling through VirtualService.Schedule at each
// connection. The director calls ServiceChanged, outside its locks, after
// health checks, an agent, an operator's drain, the quorum or slow start
// changed a service's weights or set; a reload calls Sync as before.
type ChangeNotifier interface {
	ServiceChanged(vs *VirtualService)
}

// HealthEventsKept bounds the director's record of transitions.
const HealthEventsKept = 512

// notifyTimeout bounds notify_up, notify_down, quorum_up and quorum_down.
const notifyTimeout = 30 * time.Second

// HealthEvent is a transition of a real server (or of a service's quorum,
// with Backend not valid), as logged.
type HealthEvent struct {
	Time    time.Time
	Service string // name
	Key     string // "tcp/VIP:PORT"
	Backend netip.AddrPort
	From    string // up, down, draining, maint; quorum events: quorum up, quorum lost
	To      string
	Reason  string
}

// directorHealth is the director's share of health checking.
type directorHealth struct {
	runner *health.Runner
	now    func() time.Time

	evMu   sync.Mutex
	events []HealthEvent // ring
	evNext int

	notifies sync.WaitGroup
	nmu      sync.Mutex
	closed   bool
	runAs    atomic.Pointer[script.Policy] // who notify commands run as

	probes probePool // prequal's agent probes (prober.go)
}

func (h *directorHealth) init() {
	h.runner = health.NewRunner(0)
	h.now = time.Now
	h.events = make([]HealthEvent, 0, HealthEventsKept)
	h.probes.init()
}

// svcHealth is a virtual service's share.
type svcHealth struct {
	d           *Director
	quorum      health.Quorum
	started     bool
	sorry       *RealServer
	sorryActive bool
	omega       bool
	quorumUp    string
	quorumDown  string
	quorumSet   bool // quorum, its commands or a sorry server configured
	grace       time.Duration
	ramp        *time.Timer
	rampAt      time.Time
}

// rsHealth is a real server's share; guarded by its service's mu.
type rsHealth struct {
	vs         *VirtualService
	tr         *health.Tracker // nil for a sorry server
	spec       *health.Spec    // nil: not checked
	job        *health.Job
	gen        uint64 // bumped when the job changes; older results are dropped
	inSet      bool   // in the scheduler's set
	live       int    // weight counted towards the quorum
	limit      int    // connection limit applied
	upper      int
	lower      int
	notifyUp   string
	notifyDown string
	probe      probeState // prequal's probes of its agent (prober.go); atomics
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
	if h.tr == nil {
		return HealthStatus{Status: health.Status{State: health.StateUp, Up: true}, Weight: rs.Dest.Weight(),
			InService: h.inSet, Sorry: true}
	}
	st := HealthStatus{Status: h.tr.Status(vs.d().hc.now()), Weight: rs.Dest.Weight(), InService: h.inSet}
	if h.spec != nil {
		st.Check = h.spec.Type
	}
	return st
}

// QuorumUp reports whether the service has its quorum: the total weight of
// its live real servers is at least quorum (keepalived's, default 1).
func (vs *VirtualService) QuorumUp() bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return !vs.health.started || vs.health.quorum.Up()
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
	return vs.health.sorry, vs.health.sorryActive
}

// HealthEvents returns the latest transitions, oldest first.
func (d *Director) HealthEvents() []HealthEvent {
	h := &d.hc
	h.evMu.Lock()
	defer h.evMu.Unlock()
	out := make([]HealthEvent, 0, len(h.events))
	if len(h.events) == HealthEventsKept {
		out = append(out, h.events[h.evNext:]...)
		out = append(out, h.events[:h.evNext]...)
	} else {
		out = append(out, h.events...)
	}
	return out
}

func (h *directorHealth) record(ev HealthEvent) {
	h.evMu.Lock()
	defer h.evMu.Unlock()
	if len(h.events) < HealthEventsKept {
		h.events = append(h.events, ev)
		return
	}
	h.events[h.evNext] = ev
	h.evNext = (h.evNext + 1) % HealthEventsKept
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
	var rs *RealServer
	for _, x := range vs.RealServers() {
		if x.Addr == backend {
			rs = x
		}
	}
	if rs == nil || rs.health.tr == nil {
		vs.mu.Unlock()
		return ErrNoDest
	}
	now := d.hc.now()
	if tr, ok := rs.health.tr.SetDrain(on, now); ok {
		acts.transition(vs, rs, tr)
	}
	vs.reconcileLocked(vs.Settings().Scheduler, vs.RealServers(), false, now, &acts)
	vs.mu.Unlock()
	acts.run()
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
	if rs == nil || rs.ctx.Err() != nil || !serverFault(err) {
		return
	}
	var acts healthActions
	vs.mu.Lock()
	h := &rs.health
	if h.tr == nil || h.vs != vs || h.job == nil || !h.tr.Up() { // not checked, removed, or down already
		vs.mu.Unlock()
		return
	}
	now := vs.d().hc.now()
	tr, ok := h.tr.Suspect(faultText(err), now)
	if ok {
		acts.transition(vs, rs, tr)
		vs.reconcileLocked(vs.Settings().Scheduler, vs.RealServers(), false, now, &acts)
	}
	vs.mu.Unlock()
	acts.run()
}

func serverFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
		syscall.ETIMEDOUT, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func faultText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return "connect failed: " + errno.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "connect timed out"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "connect timed out"
	}
	return "connect failed: " + err.Error()
}

// d returns the service's director.
func (vs *VirtualService) d() *Director { return vs.health.d }

// initHealth ties a new service's health checks to its life.
func (vs *VirtualService) initHealth(d *Director) {
	vs.health.d = d
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
	if vs.health.ramp != nil {
		vs.health.ramp.Stop()
		vs.health.ramp, vs.health.rampAt = nil, time.Time{}
	}
}

func (vs *VirtualService) stopRealHealthLocked(rs *RealServer) {
	h := &rs.health
	if h.job != nil {
		h.job.Stop()
		h.job = nil
	}
	h.gen++
	h.probe.target.Store(nil) // its probes are passive from now on
}

// configureHealthLocked applies a real server's lifecycle settings, keeping
// its state: a reload restarts its checker only when the check changed.
// running says the service was already running: a new real server then
// slow-starts.
func (vs *VirtualService) configureHealthLocked(rs *RealServer, rc *config.RealServer, vc *config.VirtualServer, running bool, now time.Time, acts *healthActions) {
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
	p := health.Params{Weight: *rc.Weight, SlowStart: vc.SlowStart.D(), Inhibit: vc.InhibitOnFailure,
		Checked: spec != nil, Rise: 1, Fall: 1}
	if rc.InhibitOnFailure != nil {
		p.Inhibit = *rc.InhibitOnFailure
	}
	if spec != nil {
		p.Rise, p.Fall = rc.Check.Rise, rc.Check.Fall
	}
	if h.tr == nil {
		alpha := vc.Alpha
		if rc.Alpha != nil {
			alpha = *rc.Alpha
		}
		h.tr = health.NewTracker(p, alpha, running, now)
		if !h.tr.Up() {
			acts.log(vs, rs, slog.LevelDebug, "real server starts down until its first check passes (alpha)")
		}
	} else if tr, ok := h.tr.Reconfigure(p, now); ok {
		acts.transition(vs, rs, tr)
	}
	h.notifyUp, h.notifyDown = rc.NotifyUp, rc.NotifyDown
	h.upper, h.lower = rc.UpperThreshold, rc.LowerThreshold
	h.limit = connLimit(rc, h.tr)
	rs.Dest.SetThresholds(h.upper, h.lower, h.limit)

	if checker == nil && reflect.DeepEqual(spec, h.spec) && (spec == nil) == (h.job == nil) {
		return // same check, running
	}
	vs.stopRealHealthLocked(rs)
	h.spec = spec
	if spec == nil || checker == nil {
		return
	}
	gen := h.gen
	h.job = d.hc.runner.Start(checker, spec.Type, spec.Timing(), func(r health.Result) { vs.observe(rs, gen, r) })
}

func connLimit(rc *config.RealServer, tr *health.Tracker) int {
	if mc := tr.MaxConn(); mc > 0 {
		return mc
	}
	return rc.MaxConnections
}

// configureServiceHealthLocked applies the service's quorum, sorry server
// and commands.
func (vs *VirtualService) configureServiceHealthLocked(vc *config.VirtualServer, reals []*RealServer, grace time.Duration, acts *healthActions) {
	sh := &vs.health
	sh.omega, sh.quorumUp, sh.quorumDown, sh.grace = vc.Omega, vc.QuorumUp, vc.QuorumDown, grace
	sh.quorumSet = vc.Quorum != nil || vc.QuorumUp != "" || vc.QuorumDown != "" || !vc.SorryServer.IsZero()
	need := config.DefaultQuorum
	if vc.Quorum != nil {
		need = *vc.Quorum
	}
	if sh.started {
		sh.quorum.Set(need, vc.QuorumHysteresis)
	} else {
		total := 0
		for _, rs := range reals {
			total += rs.health.tr.LiveWeight()
		}
		sh.quorum = health.NewQuorum(need, vc.QuorumHysteresis, total)
		sh.started = true
	}
	var want netip.AddrPort
	if !vc.SorryServer.IsZero() {
		want = vc.SorryServer.AddrPort()
	}
	if sh.sorry != nil && sh.sorry.Addr != want {
		old := sh.sorry
		sh.sorry, sh.sorryActive = nil, false
		acts.log(vs, old, slog.LevelInfo, "sorry server removed")
		time.AfterFunc(grace, old.cancel)
	}
	if want.IsValid() {
		if sh.sorry == nil {
			ctx, cancel := context.WithCancel(vs.ctx)
			rs := &RealServer{Addr: want, Dest: sched.NewDest(want, 1), Latency: newLatency(), ctx: ctx, cancel: cancel}
			rs.Dest.Owner = rs
			rs.health.vs = vs
			sh.sorry = rs
		}
		one := 1
		sh.sorry.cfg.Store(&config.RealServer{Address: vc.SorryServer, Weight: &one, SendProxy: vc.SendProxy})
	}
}

// observe takes a check's result for rs.
func (vs *VirtualService) observe(rs *RealServer, gen uint64, r health.Result) {
	var acts healthActions
	vs.mu.Lock()
	h := &rs.health
	if h.gen != gen || h.tr == nil || h.job == nil {
		vs.mu.Unlock()
		return
	}
	now := vs.d().hc.now()
	tr, changed := h.tr.Observe(r, now)
	if changed {
		acts.transition(vs, rs, tr)
	}
	// Most results change nothing: then this costs no pass over the
	// service's real servers.
	if changed || vs.outOfDateLocked(rs, now) {
		vs.reconcileLocked(vs.Settings().Scheduler, vs.RealServers(), false, now, &acts)
	}
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

// outOfDateLocked reports whether what was applied of rs differs from what
// its tracker says now.
func (vs *VirtualService) outOfDateLocked(rs *RealServer, now time.Time) bool {
	h := &rs.health
	if rs.Dest.Weight() != h.tr.Weight(now) || h.tr.LiveWeight() != h.live ||
		(h.tr.InService() && !vs.health.sorryActive) != h.inSet {
		return true
	}
	rc := rs.Config()
	return rc != nil && connLimit(rc, h.tr) != h.limit
}

// reconcileLocked applies the Trackers' weights and states to the real
// servers and the scheduler: effective weights, the set of real servers in
// service (or the sorry server alone while the quorum is lost), connection
// limits from agents, the quorum, and the slow-start timer. The scheduler
// is updated when anything it holds changed, or always with force.
func (vs *VirtualService) reconcileLocked(s sched.Scheduler, reals []*RealServer, force bool, now time.Time, acts *healthActions) {
	sh := &vs.health
	dirty := force
	total := 0
	var rampEnd time.Time
	for _, rs := range reals {
		h := &rs.health
		if h.tr == nil {
			continue
		}
		if w := h.tr.Weight(now); rs.Dest.Weight() != w {
			rs.Dest.SetWeight(w)
			dirty = true
		}
		if rc := rs.Config(); rc != nil {
			if lim := connLimit(rc, h.tr); lim != h.limit {
				h.limit = lim
				rs.Dest.SetThresholds(h.upper, h.lower, lim)
			}
		}
		h.live = h.tr.LiveWeight()
		total += h.live
		if end := h.tr.RampEnd(now); !end.IsZero() && (rampEnd.IsZero() || end.Before(rampEnd)) {
			rampEnd = end
		}
	}
	if sh.started && sh.quorum.Update(total) {
		acts.quorum(vs, sh.quorum.Up(), total)
	}
	useSorry := sh.sorry != nil && sh.started && !sh.quorum.Up()
	if useSorry != sh.sorryActive {
		sh.sorryActive = useSorry
		dirty = true
		if useSorry {
			acts.log(vs, sh.sorry, slog.LevelWarn, "quorum lost: new connections go to the sorry server")
		} else {
			acts.log(vs, sh.sorry, slog.LevelInfo, "quorum regained: the sorry server takes no new connections")
		}
	}
	pers := vs.persist.Load()
	for _, rs := range reals {
		h := &rs.health
		if h.tr == nil {
			continue
		}
		in := h.tr.InService() && !useSorry
		if in != h.inSet {
			h.inSet = in
			dirty = true
			if !in && pers != nil {
				pers.table.Forget(rs.Dest) // its clients are scheduled afresh
			}
		}
	}
	if sh.sorry != nil {
		if sh.sorry.health.inSet && !useSorry && pers != nil {
			pers.table.Forget(sh.sorry.Dest)
		}
		sh.sorry.health.inSet = useSorry
	}
	if dirty {
		dests := make([]*sched.Dest, 0, len(reals))
		if useSorry {
			dests = append(dests, sh.sorry.Dest)
		} else {
			for _, rs := range reals {
				if rs.health.inSet {
					dests = append(dests, rs.Dest)
				}
			}
		}
		s.Update(dests)
		acts.changed = vs
	}
	vs.scheduleRampLocked(rampEnd, now)
}

// scheduleRampLocked keeps a timer running while a weight ramps up, to
// apply the slow start's steps.
func (vs *VirtualService) scheduleRampLocked(end, now time.Time) {
	sh := &vs.health
	if end.IsZero() || vs.ctx.Err() != nil {
		if sh.ramp != nil {
			sh.ramp.Stop()
			sh.ramp, sh.rampAt = nil, time.Time{}
		}
		return
	}
	step := min(max(end.Sub(now)/32, 10*time.Millisecond), time.Second)
	at := now.Add(step)
	if sh.ramp != nil && !sh.rampAt.After(at) && sh.rampAt.After(now) {
		return // an earlier tick is due
	}
	if sh.ramp != nil {
		sh.ramp.Stop()
	}
	sh.rampAt = at
	sh.ramp = time.AfterFunc(step, vs.rampTick)
}

func (vs *VirtualService) rampTick() {
	var acts healthActions
	vs.mu.Lock()
	vs.health.ramp, vs.health.rampAt = nil, time.Time{}
	if st := vs.Settings(); st != nil && vs.ctx.Err() == nil {
		vs.reconcileLocked(st.Scheduler, vs.RealServers(), false, vs.d().hc.now(), &acts)
	}
	vs.mu.Unlock()
	acts.run()
}

// healthActions collects what a change must do once the service's lock is
// released: log, record, run commands.
type healthActions struct {
	items   []healthAction
	changed *VirtualService // the scheduler's set or weights changed
}

type healthAction struct {
	ev       HealthEvent
	level    slog.Level
	msg      string
	command  string
	record   bool
	d        *Director
	hasEvent bool
}

func (a *healthActions) log(vs *VirtualService, rs *RealServer, level slog.Level, msg string) {
	ev := HealthEvent{Time: vs.d().hc.now(), Service: vs.serviceName(), Key: vs.Key, Backend: rs.Addr}
	a.items = append(a.items, healthAction{ev: ev, level: level, msg: msg, d: vs.d()})
}

func (a *healthActions) transition(vs *VirtualService, rs *RealServer, tr health.Transition) {
	ev := HealthEvent{Time: tr.At, Service: vs.serviceName(), Key: vs.Key, Backend: rs.Addr, From: tr.From, To: tr.To, Reason: tr.Reason}
	level := slog.LevelInfo
	if tr.To == health.StateDown || tr.To == health.StateMaint {
		level = slog.LevelWarn
	}
	var cmd string
	wasUp := tr.From == health.StateUp || tr.From == health.StateDraining
	isUp := tr.To == health.StateUp || tr.To == health.StateDraining
	switch {
	case wasUp && !isUp:
		cmd = rs.health.notifyDown
	case !wasUp && isUp:
		cmd = rs.health.notifyUp
	}
	a.items = append(a.items, healthAction{ev: ev, level: level, msg: "real server " + tr.To, command: cmd,
		record: true, hasEvent: true, d: vs.d()})
}

func (a *healthActions) quorum(vs *VirtualService, up bool, total int) {
	ev := HealthEvent{Time: vs.d().hc.now(), Service: vs.serviceName(), Key: vs.Key,
		From: "quorum up", To: "quorum lost", Reason: "live weight " + strconv.Itoa(total)}
	cmd, level := vs.health.quorumDown, slog.LevelWarn
	if up {
		ev.From, ev.To = ev.To, ev.From
		cmd, level = vs.health.quorumUp, slog.LevelInfo
	}
	if !vs.health.quorumSet {
		// The default quorum of 1 nobody asked for: "all real servers
		// down" already says it; the event is still recorded.
		level = slog.LevelDebug
	}
	a.items = append(a.items, healthAction{ev: ev, level: level, msg: ev.To, command: cmd, record: true, d: vs.d()})
}

func (a *healthActions) run() {
	if vs := a.changed; vs != nil {
		if n, ok := vs.d().dp.(ChangeNotifier); ok {
			n.ServiceChanged(vs)
		}
	}
	for _, it := range a.items {
		attrs := []any{"service", it.ev.Service}
		if it.ev.Backend.IsValid() {
			attrs = append(attrs, "backend", it.ev.Backend.String())
		}
		if it.hasEvent {
			attrs = append(attrs, "from", it.ev.From, "to", it.ev.To, "reason", it.ev.Reason)
		} else if it.ev.Reason != "" {
			attrs = append(attrs, "reason", it.ev.Reason)
		}
		it.d.log.Log(context.Background(), it.level, it.msg, attrs...)
		if it.record {
			it.d.hc.record(it.ev)
			it.d.emit(it.ev) // events.go: alerts
		}
		if it.command != "" {
			it.d.hc.notify(it.d.log, it.command, it.ev)
		}
	}
}

// notify runs a notify or quorum command in the background, bounded.
func (h *directorHealth) notify(log *slog.Logger, command string, ev HealthEvent) {
	h.nmu.Lock()
	if h.closed {
		h.nmu.Unlock()
		return
	}
	h.notifies.Add(1)
	h.nmu.Unlock()
	go func() {
		defer h.notifies.Done()
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		env := []string{"GOVS_SERVICE=" + ev.Service, "GOVS_STATE=" + ev.To}
		if ev.Backend.IsValid() {
			env = append(env, "GOVS_REAL_SERVER="+ev.Backend.String())
		}
		var runAs script.Policy // nil: the safe default
		if p := h.runAs.Load(); p != nil {
			runAs = *p
		}
		code, out, err := health.RunCommand(ctx, runAs, command, env)
		if err != nil || code != 0 {
			log.Warn("notify command failed", "command", command, "exit", code, "err", err, "output", out)
		}
	}()
}

// stopHealthChecks stops every check and, for services with omega, runs
// the down notifiers of the real servers that were up and the quorum_down of
// services that had their quorum, as keepalived does on shutdown.
func (d *Director) stopHealthChecks(services []*VirtualService) {
	d.hc.runner.Close()
	d.hc.probes.close()
	for _, vs := range services {
		var acts healthActions
		vs.mu.Lock()
		if vs.health.omega {
			now := d.hc.now()
			for _, rs := range vs.RealServers() {
				if tr := rs.health.tr; tr != nil && tr.Up() {
					acts.transition(vs, rs, health.Transition{At: now, From: tr.State(), To: health.StateDown, Reason: "shutdown (omega)"})
				}
			}
			if vs.health.started && vs.health.quorum.Up() {
				acts.quorum(vs, false, 0)
			}
		}
		vs.mu.Unlock()
		acts.run()
	}
	d.hc.nmu.Lock()
	d.hc.closed = true
	d.hc.nmu.Unlock()
}

// waitNotifies waits for running notify commands, up to limit.
func (d *Director) waitNotifies(limit time.Duration) {
	done := make(chan struct{})
	go func() { d.hc.notifies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		d.log.Warn("notify commands still running at shutdown", "waited", limit)
	}
}

func (vs *VirtualService) serviceName() string {
	if st := vs.Settings(); st != nil {
		return st.Name
	}
	return vs.Key
}
