package health

import (
	"log/slog"
	"net/netip"
	"strconv"
	"time"
)

// ServiceMachine is the health policy of one virtual service, as a pure
// state machine in the manner of vrrp.Machine: the caller feeds it check
// results, passive failures, an operator's drains, reloads and ticks, each
// with the time, and applies the Decision it hands back. It holds the
// Trackers of the service's real servers, the quorum with its hysteresis,
// the sorry server's state and the slow-start deadline, and it keeps what
// it last decided, so that a result which changes nothing costs no pass
// over the service's real servers and no decision to apply.
//
// It does no I/O, starts no timer and takes no lock: the caller serialises
// calls (the director holds the service's lock) and performs the Effects
// (logs, event records, notify and quorum commands) after applying the
// weights and set.
type ServiceMachine struct {
	svc     ServiceConfig
	servers []*machineServer // configuration order
	byAddr  map[netip.AddrPort]*machineServer
	// retired are real servers a reload removed, kept with their state
	// until Forget (the end of their grace period): one that a reload
	// brings back within it keeps its state, as before its removal.
	retired map[netip.AddrPort]*machineServer

	quorum      Quorum
	started     bool // Configure ran once: the quorum is live
	sorryActive bool
	sorryInSet  bool

	states  []ServerState // Decision.Servers, reused
	effects []Effect      // Decision.Effects, reused
}

// ServiceConfig is a virtual service's health policy.
type ServiceConfig struct {
	Quorum     int // live weight needed; keepalived's default is 1
	Hysteresis int
	// Explicit says a quorum, its commands or a sorry server were
	// configured: quorum changes are then worth a log line above debug.
	Explicit   bool
	QuorumUp   string // command run when the quorum is gained back
	QuorumDown string // command run when it is lost
	// Sorry is the sorry server, which takes the new connections alone
	// while the quorum is lost; the zero value means none.
	Sorry netip.AddrPort
	// Omega runs the down notifiers and quorum_down on Shutdown.
	Omega bool
}

// ServerConfig is one real server's health settings.
type ServerConfig struct {
	Addr   netip.AddrPort
	Params Params
	// Alpha starts a new real server down until its first check passes.
	Alpha bool
	// Warm starts a new real server as at the service's start, at full
	// weight, even in a running service: a discovered server of the first
	// set its source found, which was serving before govs (re)started.
	Warm       bool
	NotifyUp   string
	NotifyDown string
	// MaxConn is the configured connection limit (0: none); an agent's
	// maxconn overrides it.
	MaxConn int
}

// ServerState is what a Decision says of one real server.
type ServerState struct {
	Addr   netip.AddrPort
	Weight int  // effective weight
	InSet  bool // in the scheduler's set
	// Left says it just left the set: its persistence templates should go,
	// so its clients are scheduled afresh.
	Left  bool
	Limit int // connection limit (0: none)
}

// Decision is what the caller applies after a call: the weights and the
// scheduler's set, then the effects, in order.
type Decision struct {
	// Changed says the scheduler's set or a weight changed (or a reload
	// forced it): update the scheduler with the servers InSet, or with the
	// sorry server alone while SorryActive, and publish to the dataplanes.
	// When false, Servers and the sorry fields are not filled in and there
	// is nothing to apply but Effects (and limits: see LimitsChanged).
	Changed bool
	// LimitsChanged says a connection limit changed: apply Servers' Limit.
	LimitsChanged bool
	// Servers are the real servers in the order Configure was given them;
	// nil when the call changed nothing the scheduler holds (a result that
	// confirms the state). The slice is the machine's: valid until its
	// next call.
	Servers     []ServerState
	SorryActive bool
	SorryLeft   bool // the sorry server left the set: forget its templates
	// Next is when to call Tick, for the next slow-start step; zero: no
	// deadline.
	Next time.Time
	// Effects are log lines, event records and commands, in order. The
	// slice is the machine's: valid until its next call.
	Effects []Effect
}

// EffectKind says what an Effect is about.
type EffectKind uint8

// The effect kinds.
const (
	EffectLog        EffectKind = iota // a log line only
	EffectTransition                   // a real server changed state: log, record, maybe a command
	EffectQuorum                       // the quorum changed: log, record, maybe a command
)

// Effect is one thing for the caller to do once the decision is applied.
type Effect struct {
	Kind  EffectKind
	Level slog.Level
	Msg   string
	// Event is what to log and, for transitions and quorum changes,
	// record. Backend is the zero value for the quorum's.
	Event Event
	// Command, if not empty, is a notify or quorum command to run with
	// Event in its environment.
	Command string
}

// Event is a transition of a real server, or of the quorum (Backend not
// valid), or the subject of a log line.
type Event struct {
	Time     time.Time
	Backend  netip.AddrPort
	From, To string
	Reason   string
}

type machineServer struct {
	cfg ServerConfig
	tr  *Tracker
	// What was last decided.
	weight, live, limit int
	inSet               bool
	fresh               bool // never decided yet
}

// NewServiceMachine returns the machine of a new virtual service; it
// decides nothing until Configure.
func NewServiceMachine() *ServiceMachine {
	return &ServiceMachine{byAddr: map[netip.AddrPort]*machineServer{}, retired: map[netip.AddrPort]*machineServer{}}
}

// Clone returns an independent copy of m, for a dry run: the director
// previews what a reload would decide (the snapshot it prepares the
// dataplanes with) on a clone, and decides for real on m only once the
// dataplanes have committed.
func (m *ServiceMachine) Clone() *ServiceMachine {
	c := *m
	c.states, c.effects = nil, nil
	copies := make(map[*machineServer]*machineServer, len(m.byAddr)+len(m.retired))
	dup := func(s *machineServer) *machineServer {
		if d, ok := copies[s]; ok {
			return d
		}
		d := *s
		tr := *s.tr
		d.tr = &tr
		copies[s] = &d
		return &d
	}
	c.servers = make([]*machineServer, len(m.servers))
	for i, s := range m.servers {
		c.servers[i] = dup(s)
	}
	c.byAddr = make(map[netip.AddrPort]*machineServer, len(m.byAddr))
	for a, s := range m.byAddr {
		c.byAddr[a] = dup(s)
	}
	c.retired = make(map[netip.AddrPort]*machineServer, len(m.retired))
	for a, s := range m.retired {
		c.retired[a] = dup(s)
	}
	return &c
}

// Configure applies a (re)load: the service's policy and its real servers,
// in order. Real servers it knew keep their state (a reload does not bring
// a down server up, nor an operator's drain off), and so do retired ones
// that come back; new ones start up, or down with Alpha, and slow-start
// when running says the service was already serving (unless Warm); the ones not listed
// retire until Forget. The decision always
// has Changed set: the caller hands the scheduler its set anew.
func (m *ServiceMachine) Configure(now time.Time, running bool, svc ServiceConfig, servers []ServerConfig) Decision {
	m.begin()
	next := make([]*machineServer, 0, len(servers))
	byAddr := make(map[netip.AddrPort]*machineServer, len(servers))
	for _, c := range servers {
		s := m.byAddr[c.Addr]
		if s == nil {
			if s = m.retired[c.Addr]; s != nil {
				delete(m.retired, c.Addr)
				s.fresh = true // back in the set it was taken out of
			}
		}
		if s == nil {
			s = &machineServer{fresh: true, tr: NewTracker(c.Params, c.Alpha, running && !c.Warm, now)}
			if !s.tr.Up() {
				m.log(slog.LevelDebug, c.Addr, now, "real server starts down until its first check passes (alpha)")
			}
		} else if tr, ok := s.tr.Reconfigure(c.Params, now); ok {
			// The commands of the configuration in force when it changed.
			m.transition(s, tr)
		}
		s.cfg = c
		next = append(next, s)
		byAddr[c.Addr] = s
	}
	for addr, s := range m.byAddr {
		if byAddr[addr] == nil {
			s.inSet = false
			m.retired[addr] = s
		}
	}
	m.servers, m.byAddr = next, byAddr

	if m.started {
		m.quorum.Set(svc.Quorum, svc.Hysteresis)
	} else {
		total := 0
		for _, s := range m.servers {
			total += s.tr.LiveWeight()
		}
		m.quorum = NewQuorum(svc.Quorum, svc.Hysteresis, total)
		m.started = true
	}
	if old := m.svc.Sorry; old.IsValid() && old != svc.Sorry {
		m.sorryActive, m.sorryInSet = false, false
		m.log(slog.LevelInfo, old, now, "sorry server removed")
	}
	m.svc = svc
	return m.reconcile(now, true)
}

// Observe takes a check's result for the real server at addr. A result
// for a server the machine does not know is ignored.
func (m *ServiceMachine) Observe(now time.Time, addr netip.AddrPort, r Result) Decision {
	m.begin()
	s := m.byAddr[addr]
	if s == nil {
		return Decision{}
	}
	tr, changed := s.tr.Observe(r, now)
	if changed {
		m.transition(s, tr)
	}
	// Most results change nothing: then this costs no pass over the
	// service's real servers.
	if !changed && !m.outOfDate(s, now) {
		return Decision{Effects: m.effects}
	}
	return m.reconcile(now, false)
}

// Suspect is passive health: the dataplane saw a connection to addr fail.
// A checked server that is up goes down at once, as if fall was reached.
func (m *ServiceMachine) Suspect(now time.Time, addr netip.AddrPort, why string) Decision {
	m.begin()
	s := m.byAddr[addr]
	if s == nil {
		return Decision{}
	}
	tr, ok := s.tr.Suspect(why, now)
	if !ok {
		return Decision{}
	}
	m.transition(s, tr)
	return m.reconcile(now, false)
}

// SetDrain sets or clears an operator's drain of addr; ok is false when
// the machine does not know addr.
func (m *ServiceMachine) SetDrain(now time.Time, addr netip.AddrPort, on bool) (d Decision, ok bool) {
	m.begin()
	s := m.byAddr[addr]
	if s == nil {
		return Decision{}, false
	}
	if tr, changed := s.tr.SetDrain(on, now); changed {
		m.transition(s, tr)
	}
	return m.reconcile(now, false), true
}

// Tick applies the slow start's steps due at now.
func (m *ServiceMachine) Tick(now time.Time) Decision {
	m.begin()
	return m.reconcile(now, false)
}

// Shutdown says the service stops. With omega, as keepalived, the real
// servers that are up go down (their notify_down runs) and a quorum that
// was up is lost (quorum_down runs). The state is left as it was.
func (m *ServiceMachine) Shutdown(now time.Time) Decision {
	m.begin()
	if !m.svc.Omega {
		return Decision{}
	}
	for _, s := range m.servers {
		if s.tr.Up() {
			m.transition(s, Transition{At: now, From: s.tr.State(), To: StateDown, Reason: "shutdown (omega)"})
		}
	}
	if m.started && m.quorum.Up() {
		m.quorumEffect(now, false, 0)
	}
	return Decision{Effects: m.effects}
}

// Call brings the waiting standby server addr in (the pre-warming decided
// the load needs it): it joins with a slow-start ramp. ok is false when
// addr is unknown or not waiting.
func (m *ServiceMachine) Call(now time.Time, addr netip.AddrPort, why string) (d Decision, ok bool) {
	m.begin()
	s := m.byAddr[addr]
	if s == nil || !s.tr.Call(now) {
		return Decision{}, false
	}
	m.log(slog.LevelInfo, addr, now, "standby real server called: "+why)
	return m.reconcile(now, false), true
}

// Standby lists what pre-warming looks at: the base weight of the real
// servers up and serving (called standby ones included), and the waiting
// standby servers that are up, in configuration order, with their base
// weights.
func (m *ServiceMachine) Standby() (active int, waiting []netip.AddrPort, weights []int) {
	for _, s := range m.servers {
		if !s.tr.Up() || !s.tr.InService() {
			continue
		}
		if s.tr.Waiting() {
			waiting = append(waiting, s.cfg.Addr)
			weights = append(weights, s.tr.BaseWeight())
		} else if s.inSet {
			active += s.tr.BaseWeight()
		}
	}
	return active, waiting, weights
}

// Forget drops a retired real server's state.
func (m *ServiceMachine) Forget(addr netip.AddrPort) { delete(m.retired, addr) }

// Known reports whether addr is one of the service's real servers.
func (m *ServiceMachine) Known(addr netip.AddrPort) bool { return m.byAddr[addr] != nil }

// Up reports whether the checks say addr is up.
func (m *ServiceMachine) Up(addr netip.AddrPort) bool {
	s := m.byAddr[addr]
	return s != nil && s.tr.Up()
}

// Status is addr's health at now, retired or not; ok is false when unknown.
func (m *ServiceMachine) Status(addr netip.AddrPort, now time.Time) (st Status, inSet, ok bool) {
	s := m.byAddr[addr]
	if s == nil {
		s = m.retired[addr]
	}
	if s == nil {
		return Status{}, false, false
	}
	return s.tr.Status(now), s.inSet, true
}

// QuorumUp reports whether the quorum holds (always before Configure).
func (m *ServiceMachine) QuorumUp() bool { return !m.started || m.quorum.Up() }

// SorryActive reports whether the sorry server takes the new connections.
func (m *ServiceMachine) SorryActive() bool { return m.sorryActive }

// SorryInSet reports whether the sorry server is in the scheduler's set.
func (m *ServiceMachine) SorryInSet() bool { return m.sorryInSet }

func (m *ServiceMachine) begin() { m.effects = m.effects[:0] }

// limit is s's connection limit: an agent's maxconn, else the configured one.
func (s *machineServer) limitNow() int {
	if mc := s.tr.MaxConn(); mc > 0 {
		return mc
	}
	return s.cfg.MaxConn
}

// outOfDate reports whether what was decided of s differs from what its
// tracker says now.
func (m *ServiceMachine) outOfDate(s *machineServer, now time.Time) bool {
	return s.weight != s.tr.Weight(now) || s.tr.LiveWeight() != s.live ||
		(s.tr.InService() && !m.sorryActive) != s.inSet || s.limitNow() != s.limit
}

// reconcile computes the weights, the quorum, the sorry server and the set
// from the trackers, and the decision that applies them.
func (m *ServiceMachine) reconcile(now time.Time, force bool) Decision {
	d := Decision{Changed: force}
	total := 0
	var rampEnd time.Time
	for _, s := range m.servers {
		if w := s.tr.Weight(now); s.weight != w || s.fresh {
			s.weight = w
			d.Changed = true
		}
		if lim := s.limitNow(); lim != s.limit || s.fresh {
			s.limit = lim
			d.LimitsChanged = true
		}
		s.live = s.tr.LiveWeight()
		total += s.live
		if end := s.tr.RampEnd(now); !end.IsZero() && (rampEnd.IsZero() || end.Before(rampEnd)) {
			rampEnd = end
		}
	}
	if m.started && m.quorum.Update(total) {
		m.quorumEffect(now, m.quorum.Up(), total)
	}
	useSorry := m.svc.Sorry.IsValid() && m.started && !m.quorum.Up()
	if useSorry != m.sorryActive {
		m.sorryActive = useSorry
		d.Changed = true
		if useSorry {
			m.log(slog.LevelWarn, m.svc.Sorry, now, "quorum lost: new connections go to the sorry server")
		} else {
			m.log(slog.LevelInfo, m.svc.Sorry, now, "quorum regained: the sorry server takes no new connections")
		}
	}
	m.states = m.states[:0]
	for _, s := range m.servers {
		in := s.tr.InService() && !useSorry
		left := false
		if in != s.inSet || s.fresh {
			left = s.inSet && !in
			s.inSet = in
			d.Changed = true
		}
		s.fresh = false
		m.states = append(m.states, ServerState{Addr: s.cfg.Addr, Weight: s.weight, InSet: s.inSet, Left: left, Limit: s.limit})
	}
	if m.svc.Sorry.IsValid() {
		d.SorryLeft = m.sorryInSet && !useSorry
		m.sorryInSet = useSorry
	}
	d.Servers, d.SorryActive, d.Effects = m.states, m.sorryActive, m.effects
	if !rampEnd.IsZero() {
		// Steps of a 32nd of the ramp, 10 ms to 1 s apart: smooth enough,
		// and no busier than the checks.
		d.Next = now.Add(min(max(rampEnd.Sub(now)/32, 10*time.Millisecond), time.Second))
	}
	return d
}

func (m *ServiceMachine) log(level slog.Level, addr netip.AddrPort, now time.Time, msg string) {
	m.effects = append(m.effects, Effect{Kind: EffectLog, Level: level, Msg: msg, Event: Event{Time: now, Backend: addr}})
}

// transition is a real server's change of state, with its notify command.
func (m *ServiceMachine) transition(s *machineServer, tr Transition) {
	level := slog.LevelInfo
	if tr.To == StateDown || tr.To == StateMaint {
		level = slog.LevelWarn
	}
	var cmd string
	wasUp := tr.From == StateUp || tr.From == StateDraining
	isUp := tr.To == StateUp || tr.To == StateDraining
	switch {
	case wasUp && !isUp:
		cmd = s.cfg.NotifyDown
	case !wasUp && isUp:
		cmd = s.cfg.NotifyUp
	}
	m.effects = append(m.effects, Effect{Kind: EffectTransition, Level: level, Msg: "real server " + tr.To, Command: cmd,
		Event: Event{Time: tr.At, Backend: s.cfg.Addr, From: tr.From, To: tr.To, Reason: tr.Reason}})
}

func (m *ServiceMachine) quorumEffect(now time.Time, up bool, total int) {
	ev := Event{Time: now, From: "quorum up", To: "quorum lost", Reason: "live weight " + strconv.Itoa(total)}
	cmd, level := m.svc.QuorumDown, slog.LevelWarn
	if up {
		ev.From, ev.To = ev.To, ev.From
		cmd, level = m.svc.QuorumUp, slog.LevelInfo
	}
	if !m.svc.Explicit {
		// The default quorum of 1 nobody asked for: "all real servers
		// down" already says it; the event is still recorded.
		level = slog.LevelDebug
	}
	m.effects = append(m.effects, Effect{Kind: EffectQuorum, Level: level, Msg: ev.To, Command: cmd, Event: ev})
}
