package vrrp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP instance state. RFC 5798 names them Initialize, Backup and
// Master; keepalived adds Fault (an interface or tracked object is down).
type State uint8

// The states.
const (
	StateInit   State = iota // Initialize: not started, or shut down
	StateBackup              // Backup
	StateMaster              // Master (RFC 9568: Active)
	StateFault               // Fault: not participating until the fault clears
)

var stateNames = [...]string{"INIT", "BACKUP", "MASTER", "FAULT"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// Priorities with a meaning of their own.
const (
	PriorityStop    = 0   // the master is leaving: backups take over after Skew_Time
	PriorityOwner   = 255 // the address owner: goes to master at once
	DefaultPriority = 100 // keepalived's default
)

// Defaults applied by NewMachine to zero Config fields.
const (
	DefaultInterval          = time.Second
	DefaultGARPMasterDelay   = 5 * time.Second  // keepalived garp_master_delay
	DefaultGARPMasterRepeat  = 5                // keepalived garp_master_repeat
	DefaultGARPMasterRefresh = 60 * time.Second // govs's default; keepalived's is off
	DefaultGARPRefreshRepeat = 1                // keepalived garp_master_refresh_repeat
)

// Config is one VRRP instance (keepalived vrrp_instance). Zero fields get the
// defaults documented on them.
type Config struct {
	Name    string  // instance name, for logs
	Version Version // V2 or V3; 0 means V2, keepalived's default
	VRID    uint8   // virtual router id, 1..255
	// Priority is the base priority, 1..255; 0 means DefaultPriority. 255
	// makes this router the address owner: it goes to master at once, ignores
	// track weights and always accepts packets for the VIPs.
	Priority uint8
	// Interval is Advertisement_Interval: whole seconds 1..255 s for VRRPv2,
	// a multiple of 10 ms in 10 ms..40.95 s for VRRPv3; 0 means 1 s.
	Interval time.Duration
	// VIPs are the virtual addresses, all IPv4 or all IPv6 (VRRPv3 only).
	VIPs []netip.Addr
	// PrimaryIP is the source address of our adverts, of the VIPs' family.
	// It breaks priority ties against peers: the higher address wins.
	PrimaryIP netip.Addr

	// NoPreempt (keepalived nopreempt): a backup never takes over from a
	// lower priority master. The RFCs call preempt mode true the default.
	NoPreempt bool
	// PreemptDelay (keepalived preempt_delay): after startup, leaving fault
	// or first hearing a lower priority master, a backup keeps accepting that
	// master's adverts for this long before preempting it.
	PreemptDelay time.Duration
	// StartAsMaster (keepalived "state MASTER" without priority 255): the
	// first Master_Down_Timer is one Interval plus Skew_Time instead of three.
	StartAsMaster bool
	// Accept is RFC 5798 Accept_Mode, passed through on VIP actions.
	Accept bool

	// AuthType and AuthPass are VRRPv2 authentication: AuthNone, or
	// AuthSimple or AuthAH (IPv4 only) with a password of at most 8 bytes
	// (zero padded): the clear text password, or the HMAC-MD5 key of the
	// IPsec AH header (ah.go).
	AuthType AuthType
	AuthPass string

	// GARPMasterDelay is the delay of the second burst of gratuitous ARPs /
	// unsolicited NAs after becoming master; 0 means 5 s, negative disables.
	GARPMasterDelay time.Duration
	// GARPMasterRepeat is the number sent per VIP in each of the two
	// bursts; 0 means 5.
	GARPMasterRepeat int
	// GARPMasterRefresh is the period of refresh bursts while master; 0
	// means 60 s (govs's default, so switches with short ARP/MAC ageing keep
	// pointing at us), negative disables (keepalived's default).
	GARPMasterRefresh time.Duration
	// GARPRefreshRepeat is the number sent per VIP in each refresh; 0 means 1.
	GARPRefreshRepeat int
	// GARPInterval (IPv4) and GNAInterval (IPv6) are keepalived's
	// vrrp_garp_interval and vrrp_gna_interval: the delay between two
	// gratuitous ARPs / unsolicited NAs of a burst. 0 sends a burst back to
	// back in one ActGARP; otherwise each message is its own ActGARP (Count
	// 1, Addr the VIP), in keepalived's order (every VIP, then again).
	GARPInterval, GNAInterval time.Duration

	// LowerPrioNoAdvert (keepalived lower_prio_no_advert): when a master hears
	// a lower priority master, do not answer at once with an advert; only the
	// periodic adverts then resolve the split brain, as RFC 5798 specifies.
	LowerPrioNoAdvert bool
	// StrictAddrCheck drops adverts whose address list differs from VIPs, as
	// keepalived does. By default they are counted and logged but processed,
	// as RFC 5798 section 7.1 says (a MAY-check that SHOULD be logged).
	StrictAddrCheck bool
}

// ActionKind says what an Action asks the caller to do.
type ActionKind uint8

// The action kinds.
const (
	// ActSendAdvert: send one advertisement with Action.Priority; build it
	// with Machine.Advert.
	ActSendAdvert ActionKind = iota + 1
	// ActAddVIPs: add the VIPs to the interface (becoming master), with
	// Action.Accept as Accept_Mode.
	ActAddVIPs
	// ActRemoveVIPs: remove the VIPs (leaving master).
	ActRemoveVIPs
	// ActGARP: send Action.Count gratuitous ARPs (IPv4) or unsolicited
	// neighbour advertisements (IPv6) for every VIP.
	ActGARP
	// ActNotify: the instance (or sync group) entered Action.State; run the
	// notify scripts. StateInit is keepalived's notify_stop.
	ActNotify
	// ActLog: something worth a log line happened; see Action.Event.
	ActLog
)

var actionNames = [...]string{"", "send-advert", "add-vips", "remove-vips", "garp", "notify", "log"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) && k != 0 {
		return actionNames[k]
	}
	return "unknown"
}

// Event is the subject of an ActLog action.
type Event uint8

// The events.
const (
	EventNone Event = iota
	// EventMasterDown: Master_Down_Timer expired.
	EventMasterDown
	// EventPriorityZero: the master (Peer) is leaving; as backup we take over
	// after Skew_Time, as master we answered with an advert.
	EventPriorityZero
	// EventHigherPriority: as master we heard Peer with a higher priority (or
	// an equal one and a higher address) and became backup.
	EventHigherPriority
	// EventSplitBrain: as master we heard another master, Peer, with a lower
	// priority (or an equal one and a lower address). Counted in
	// Stats.SplitBrain; we stay master.
	EventSplitBrain
	// EventOwnerConflict: as address owner we heard another owner (Peer).
	EventOwnerConflict
	// EventIntervalLearned: a VRRPv3 backup adopted the master's interval.
	EventIntervalLearned
	// EventAddrListMismatch: Peer advertises other addresses than ours.
	EventAddrListMismatch
	// EventPreemptDelay: preempt_delay started (Interval is the delay).
	EventPreemptDelay
	// EventPriorityChanged: the effective priority is now PeerPriority
	// (track weights).
	EventPriorityChanged
	// EventSyncHold: the sync group holds this instance in backup until all
	// members want master.
	EventSyncHold
	// EventFault, EventFaultCleared: Source went down / came back.
	EventFault
	EventFaultCleared
	// EventHold: held in backup (no MASTER, no preemption) until the
	// connection sync has the peers' flows (SetHold).
	EventHold
)

var eventNames = [...]string{"", "master down timer expired", "priority 0 advert received",
	"higher priority advert received", "lower priority master (split brain)", "another address owner",
	"advertisement interval learned", "address list mismatch", "preempt delay started",
	"priority changed", "held in backup by sync group", "fault", "fault cleared",
	"held in backup until connection sync completes"}

func (e Event) String() string {
	if int(e) < len(eventNames) && e != 0 {
		return eventNames[e]
	}
	return "none"
}

// Action is one thing for the caller to do, in order.
type Action struct {
	Kind     ActionKind
	Priority uint8         // ActSendAdvert: priority to advertise (0 when leaving master)
	Seq      uint32        // ActSendAdvert with AuthAH: the AH sequence number to send (AHParams.Seq)
	Count    int           // ActGARP: messages per VIP
	Addr     netip.Addr    // ActGARP: only this VIP (spaced messages), or every VIP when invalid
	Accept   bool          // ActAddVIPs, ActRemoveVIPs: Accept_Mode (always true for the owner)
	State    State         // ActNotify: the new state
	Event    Event         // ActLog
	Peer     netip.Addr    // ActLog: the advert's sender, when there is one
	PeerPrio uint8         // ActLog: the advert's priority, or our new priority
	Interval time.Duration // ActLog: learned interval or preempt delay
	Source   string        // ActLog EventFault, EventFaultCleared: what failed
}

func (a Action) String() string {
	switch a.Kind {
	case ActSendAdvert:
		if a.Seq != 0 {
			return fmt.Sprintf("send-advert priority %d seq %d", a.Priority, a.Seq)
		}
		return fmt.Sprintf("send-advert priority %d", a.Priority)
	case ActAddVIPs, ActRemoveVIPs:
		return fmt.Sprintf("%s accept=%t", a.Kind, a.Accept)
	case ActGARP:
		if a.Addr.IsValid() {
			return fmt.Sprintf("garp %s", a.Addr)
		}
		return fmt.Sprintf("garp x%d", a.Count)
	case ActNotify:
		return "notify " + a.State.String()
	case ActLog:
		s := "log " + a.Event.String()
		if a.Peer.IsValid() {
			s += fmt.Sprintf(" from %s priority %d", a.Peer, a.PeerPrio)
		} else if a.Event == EventPriorityChanged {
			s += fmt.Sprintf(" to %d", a.PeerPrio)
		}
		if a.Interval != 0 {
			s += " " + a.Interval.String()
		}
		if a.Source != "" {
			s += ": " + a.Source
		}
		return s
	}
	return "unknown action"
}

// Stats are an instance's counters.
type Stats struct {
	AdvertsSent          uint64
	AdvertsReceived      uint64 // valid adverts for our VRID, in any state
	PriorityZeroSent     uint64
	PriorityZeroReceived uint64
	BecameMaster         uint64
	ReleasedMaster       uint64
	// SplitBrain counts adverts heard as master from another master with a
	// lower priority (or equal priority and lower address).
	SplitBrain       uint64
	AddrListMismatch uint64
	// Dropped counts Step rejections by Reason (Decode's are the caller's).
	Dropped [NumReasons]uint64
}

// Machine is the state machine of one VRRP instance. It is not safe for
// concurrent use; every method takes the current time, and the caller
// performs the Actions that Ready returns after each call.
type Machine struct {
	cfg      Config
	authPass [AuthLen]byte

	state     State
	prio      uint8 // effective priority
	prioDelta int
	// masterAdverInt is Master_Adver_Interval (VRRPv3 backups learn it);
	// for VRRPv2 it is always cfg.Interval.
	masterAdverInt time.Duration
	master         netip.Addr // current master, ours when master
	masterPrio     uint8

	advertAt      time.Time // master: Adver_Timer
	garpDelayAt   time.Time // master: second GARP burst
	garpRefreshAt time.Time // master: next GARP refresh
	// announceAt is when the next spaced GARP / NA goes out (GARPInterval),
	// announceLeft how many are still to send, announceNext the VIP index.
	announceAt   time.Time
	announceLeft int
	announceNext int
	downAt       time.Time // backup: Master_Down_Timer
	preemptAt    time.Time // backup: end of preempt_delay; zero when not running

	faults       map[string]bool // own fault sources currently down
	groupFault   bool            // held in fault by the sync group
	wantMaster   bool            // Master_Down_Timer expired but held by the sync group or SetHold
	hold         bool            // SetHold: no MASTER, no preemption
	addrMismatch bool
	group        *SyncGroup

	// ahSeq is keepalived's AH sequence counter, one for both directions:
	// the highest number received, and the last one sent. ahCycle says it
	// reached the top (2^32-3): adverts then repeat it, so peers take over,
	// and it restarts from 0 when we next become master.
	ahSeq   uint32
	ahCycle bool

	actions []Action
	stats   Stats
}

// NewMachine validates cfg, applies the defaults and returns a machine in
// StateInit.
func NewMachine(cfg Config) (*Machine, error) {
	if cfg.Version == 0 {
		cfg.Version = V2
	}
	if cfg.Priority == 0 {
		cfg.Priority = DefaultPriority
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.GARPMasterDelay == 0 {
		cfg.GARPMasterDelay = DefaultGARPMasterDelay
	}
	if cfg.GARPMasterRepeat <= 0 {
		cfg.GARPMasterRepeat = DefaultGARPMasterRepeat
	}
	if cfg.GARPMasterRefresh == 0 {
		cfg.GARPMasterRefresh = DefaultGARPMasterRefresh
	}
	if cfg.GARPRefreshRepeat <= 0 {
		cfg.GARPRefreshRepeat = DefaultGARPRefreshRepeat
	}
	name := cfg.Name
	bad := func(format string, a ...any) (*Machine, error) {
		return nil, fmt.Errorf("vrrp instance %q: "+format, append([]any{name}, a...)...)
	}
	switch cfg.Version {
	case V2:
		if cfg.Interval%time.Second != 0 || cfg.Interval < time.Second || cfg.Interval > MaxAdverIntV2*time.Second {
			return bad("VRRPv2 advert interval %v: must be whole seconds in 1s..255s", cfg.Interval)
		}
	case V3:
		if cfg.Interval%(10*time.Millisecond) != 0 || cfg.Interval > MaxAdverIntV3*10*time.Millisecond || cfg.Interval < 0 {
			return bad("VRRPv3 advert interval %v: must be a multiple of 10ms in 10ms..40.95s", cfg.Interval)
		}
		if cfg.AuthType != AuthNone {
			return bad("VRRPv3 has no authentication")
		}
	default:
		return bad("version %d: must be 2 or 3", cfg.Version)
	}
	if cfg.VRID == 0 {
		return bad("virtual router id must be 1..255")
	}
	if len(cfg.VIPs) > 255 {
		return bad("%d virtual addresses: at most 255", len(cfg.VIPs))
	}
	cfg.PrimaryIP = cfg.PrimaryIP.Unmap()
	if !cfg.PrimaryIP.IsValid() {
		return bad("primary address is required")
	}
	v4 := cfg.PrimaryIP.Is4()
	if cfg.Version == V2 && !v4 {
		return bad("VRRPv2 is IPv4 only")
	}
	vips := make([]netip.Addr, len(cfg.VIPs))
	for i, a := range cfg.VIPs {
		a = a.Unmap()
		if !a.IsValid() || a.Is4() != v4 {
			return bad("virtual address %v is not of the primary address's family", a)
		}
		vips[i] = a
	}
	cfg.VIPs = vips
	m := &Machine{cfg: cfg, faults: map[string]bool{}}
	switch cfg.AuthType {
	case AuthNone:
	case AuthSimple, AuthAH: // AH: VRRPv2, so IPv4 only (checked above)
		if len(cfg.AuthPass) > AuthLen {
			return bad("auth_pass longer than %d bytes", AuthLen)
		}
		copy(m.authPass[:], cfg.AuthPass)
	default:
		return bad("auth type %d not supported (none, PASS or AH)", cfg.AuthType)
	}
	if cfg.PreemptDelay < 0 {
		return bad("negative preempt delay")
	}
	if cfg.GARPInterval < 0 || cfg.GNAInterval < 0 {
		return bad("negative gratuitous ARP / NA interval")
	}
	m.prio = cfg.Priority
	m.masterAdverInt = cfg.Interval
	return m, nil
}

// Config returns the configuration with defaults applied.
func (m *Machine) Config() Config { return m.cfg }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority: the base plus track weights.
func (m *Machine) Priority() uint8 { return m.prio }

// Master returns the address of the current master as last heard (ours when
// master), and its priority.
func (m *Machine) Master() (netip.Addr, uint8) { return m.master, m.masterPrio }

// MasterAdverInterval returns Master_Adver_Interval.
func (m *Machine) MasterAdverInterval() time.Duration { return m.masterAdverInt }

// MasterDownInterval returns Master_Down_Interval: 3 * Master_Adver_Interval
// + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration { return 3*m.masterAdverInt + m.SkewTime() }

// SkewTime returns Skew_Time: (256 - Priority) / 256 seconds for VRRPv2
// (RFC 3768 section 6.1), ((256 - Priority) * Master_Adver_Interval) / 256
// for VRRPv3 (RFC 5798 section 6.1). It is computed in nanoseconds, not
// rounded to centiseconds.
func (m *Machine) SkewTime() time.Duration {
	if m.cfg.Version == V2 {
		return time.Duration(256-int(m.prio)) * time.Second / 256
	}
	return time.Duration(256-int(m.prio)) * m.masterAdverInt / 256
}

// Stats returns a copy of the counters.
func (m *Machine) Stats() Stats { return m.stats }

// Faulty reports whether any of the instance's own fault sources is down.
func (m *Machine) Faulty() bool { return len(m.faults) > 0 }

// Advert returns the advertisement to send for an ActSendAdvert with the
// given priority. Its Addrs is the machine's own VIP slice: do not modify it.
func (m *Machine) Advert(priority uint8) Packet {
	p := Packet{Version: m.cfg.Version, VRID: m.cfg.VRID, Priority: priority, Addrs: m.cfg.VIPs}
	if m.cfg.Version == V2 {
		p.AdverInt = uint16(m.cfg.Interval / time.Second)
		p.AuthType = m.cfg.AuthType
		if p.AuthType == AuthSimple {
			p.AuthData = m.authPass
		}
	} else {
		p.AdverInt = uint16(m.cfg.Interval / (10 * time.Millisecond))
	}
	return p
}

// AuthKey returns the VRRPv2 password, zero padded to 8 bytes: the key of
// AppendAH and DecodeAH for AuthAH.
func (m *Machine) AuthKey() [AuthLen]byte { return m.authPass }

// Ready returns the actions queued since the last call, oldest first, and
// clears the queue. The slice belongs to the caller.
func (m *Machine) Ready() []Action {
	a := m.actions
	m.actions = nil
	return a
}

// NextDeadline returns when Tick must next be called, and false when no timer
// is running (Init, Fault).
func (m *Machine) NextDeadline() (time.Time, bool) {
	var t time.Time
	earliest := func(d time.Time) {
		if !d.IsZero() && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	switch m.state {
	case StateMaster:
		earliest(m.advertAt)
		earliest(m.garpDelayAt)
		earliest(m.garpRefreshAt)
		earliest(m.announceAt)
	case StateBackup:
		earliest(m.downAt)
	}
	return t, !t.IsZero()
}

// Start is the RFC's Startup event: the owner (priority 255) becomes master,
// any other router backup with Master_Down_Timer running; an instance with a
// fault down enters Fault instead. Start in another state than Init does
// nothing.
func (m *Machine) Start(now time.Time) {
	if m.state != StateInit {
		return
	}
	if m.group != nil && m.group.anyFaulty() {
		m.groupFault = true
	}
	if m.Faulty() || m.groupFault {
		m.toFault(now)
		return
	}
	m.begin(now)
}

// begin leaves Init or Fault: to master for the owner, to backup otherwise.
func (m *Machine) begin(now time.Time) {
	m.masterAdverInt = m.cfg.Interval
	if m.owner() || (m.group != nil && m.group.state == StateMaster) {
		m.goMaster(now)
		return
	}
	m.toBackup(now)
	if m.cfg.StartAsMaster {
		m.downAt = now.Add(m.masterAdverInt + m.SkewTime())
	}
	if m.cfg.PreemptDelay > 0 {
		m.preemptAt = now.Add(m.cfg.PreemptDelay)
	}
}

// Shutdown is the RFC's Shutdown event: a master sends an advert with
// priority 0 and removes the VIPs; every state goes to Init.
func (m *Machine) Shutdown(now time.Time) {
	if m.state == StateInit {
		return
	}
	if m.state == StateMaster {
		m.sendAdvert(PriorityStop)
	}
	m.leaveMaster()
	m.stopTimers()
	m.wantMaster = false
	m.groupFault = false
	m.setState(StateInit)
}

// Tick fires the timers that are due at now. Call it at NextDeadline (late
// is fine: the periodic timers restart from now).
func (m *Machine) Tick(now time.Time) {
	switch m.state {
	case StateMaster:
		if due(m.advertAt, now) {
			m.sendAdvert(m.prio)
			m.advertAt = next(m.advertAt, m.cfg.Interval, now)
		}
		if due(m.announceAt, now) {
			m.announceAt = time.Time{}
			m.announceOne(now)
		}
		if due(m.garpDelayAt, now) {
			m.garp(now, m.cfg.GARPMasterRepeat)
			m.garpDelayAt = time.Time{}
		}
		if due(m.garpRefreshAt, now) {
			m.garp(now, m.cfg.GARPRefreshRepeat)
			m.garpRefreshAt = next(m.garpRefreshAt, m.cfg.GARPMasterRefresh, now)
		}
	case StateBackup:
		if due(m.downAt, now) {
			if !m.wantMaster {
				m.log(Action{Event: EventMasterDown})
			}
			m.goMaster(now)
		}
	}
}

func due(t, now time.Time) bool { return !t.IsZero() && !t.After(now) }

// next returns the next expiry of a periodic timer that expired at t.
func next(t time.Time, d time.Duration, now time.Time) time.Time {
	if n := t.Add(d); n.After(now) {
		return n
	}
	return now.Add(d)
}

// Step processes an advertisement decoded from a packet whose IP source was
// src. It makes the checks that need the configuration (VRID, version,
// family, VRRPv2 auth and interval, own advert, optionally the address list)
// and returns one of the Err* errors when it drops the advert; otherwise it
// applies RFC 5798 section 6.4 with keepalived's refinements. Adverts are
// ignored in Init and Fault.
func (m *Machine) Step(now time.Time, p *Packet, src netip.Addr) error {
	if err := m.check(p, src.Unmap()); err != nil {
		var e *Error
		if errors.As(err, &e) {
			m.stats.Dropped[e.Reason]++
		}
		return err
	}
	src = src.Unmap()
	m.stats.AdvertsReceived++
	if p.Priority == PriorityStop {
		m.stats.PriorityZeroReceived++
	}
	m.checkAddrs(p, src)
	if m.addrMismatch && m.cfg.StrictAddrCheck {
		m.stats.Dropped[ReasonAddrList]++
		return ErrAddrList
	}
	switch m.state {
	case StateBackup:
		m.stepBackup(now, p, src)
	case StateMaster:
		m.stepMaster(now, p, src)
	}
	return nil
}

func (m *Machine) check(p *Packet, src netip.Addr) error {
	switch {
	case p.VRID != m.cfg.VRID:
		return ErrVRID
	case p.Version != m.cfg.Version:
		return ErrVersion
	case !src.IsValid() || src.Is4() != m.cfg.PrimaryIP.Is4():
		return ErrAddrFamily
	case src == m.cfg.PrimaryIP:
		return ErrOwnAdvert
	}
	if m.cfg.Version == V2 {
		// keepalived: the AH header must be there exactly when the
		// instance uses AH, and the Auth Type must be the configured one.
		if p.AuthType != m.cfg.AuthType || p.AH != (m.cfg.AuthType == AuthAH) {
			return ErrAuthMismatch
		}
		if p.AuthType == AuthSimple && subtle.ConstantTimeCompare(p.AuthData[:], m.authPass[:]) != 1 {
			return ErrAuthFailure
		}
		if p.AH {
			// Anti-replay, before the other checks as in keepalived:
			// every authentic advert moves the counter up.
			if p.Seq <= m.ahSeq {
				return ErrReplay
			}
			m.ahSeq = p.Seq
			if m.state == StateBackup {
				m.ahCycle = false
			}
		}
		// RFC 3768 7.1: MUST verify the interval matches; keepalived drops.
		if p.Interval() != m.cfg.Interval {
			return ErrInterval
		}
	}
	return nil
}

// checkAddrs counts adverts whose address list differs from ours, logging
// when a mismatch starts (not on every advert).
func (m *Machine) checkAddrs(p *Packet, src netip.Addr) {
	ok := len(p.Addrs) == len(m.cfg.VIPs)
	for i := 0; ok && i < len(m.cfg.VIPs); i++ {
		found := false
		for _, a := range p.Addrs {
			if a.Unmap() == m.cfg.VIPs[i] {
				found = true
				break
			}
		}
		ok = found
	}
	if !ok {
		m.stats.AddrListMismatch++
		if !m.addrMismatch {
			m.log(Action{Event: EventAddrListMismatch, Peer: src, PeerPrio: p.Priority})
		}
	}
	m.addrMismatch = !ok
}

// RFC 5798 6.4.2, Backup state, receiving an ADVERTISEMENT.
func (m *Machine) stepBackup(now time.Time, p *Packet, src netip.Addr) {
	if p.Priority == PriorityStop {
		m.log(Action{Event: EventPriorityZero, Peer: src})
		m.downAt = now.Add(m.SkewTime())
		return
	}
	preemptHeld := m.hold || m.cfg.PreemptDelay > 0 && (m.preemptAt.IsZero() || m.preemptAt.After(now))
	if !m.cfg.NoPreempt && p.Priority < m.prio && !preemptHeld {
		// Preempt: discard, and Master_Down_Timer runs out.
		return
	}
	if m.cfg.Version == V3 {
		m.learnInterval(p, src)
	}
	m.downAt = now.Add(m.MasterDownInterval())
	m.master, m.masterPrio = src, p.Priority
	m.wantMaster = false
	if m.cfg.PreemptDelay > 0 {
		if p.Priority >= m.prio {
			m.preemptAt = time.Time{}
		} else if m.preemptAt.IsZero() {
			m.preemptAt = now.Add(m.cfg.PreemptDelay)
			m.log(Action{Event: EventPreemptDelay, Peer: src, PeerPrio: p.Priority, Interval: m.cfg.PreemptDelay})
		}
	}
}

func (m *Machine) learnInterval(p *Packet, src netip.Addr) {
	if iv := p.Interval(); iv != m.masterAdverInt {
		m.masterAdverInt = iv
		m.log(Action{Event: EventIntervalLearned, Peer: src, PeerPrio: p.Priority, Interval: iv})
	}
}

// RFC 5798 6.4.3, Master state, receiving an ADVERTISEMENT.
func (m *Machine) stepMaster(now time.Time, p *Packet, src netip.Addr) {
	if p.Priority == PriorityStop {
		m.log(Action{Event: EventPriorityZero, Peer: src})
		m.sendAdvert(m.prio)
		m.advertAt = now.Add(m.cfg.Interval)
		return
	}
	higher := p.Priority > m.prio || (p.Priority == m.prio && src.Compare(m.cfg.PrimaryIP) > 0)
	switch {
	case p.Priority == PriorityOwner && m.owner():
		// RFC 7.1: the owner discards adverts; report the misconfiguration.
		m.log(Action{Event: EventOwnerConflict, Peer: src, PeerPrio: p.Priority})
	case higher:
		m.log(Action{Event: EventHigherPriority, Peer: src, PeerPrio: p.Priority})
		m.ahCycle = false
		if m.cfg.Version == V3 {
			m.learnInterval(p, src)
		}
		m.toBackup(now)
		m.master, m.masterPrio = src, p.Priority
		if m.group != nil {
			m.group.follow(now, m, StateBackup)
		}
	default:
		m.stats.SplitBrain++
		m.log(Action{Event: EventSplitBrain, Peer: src, PeerPrio: p.Priority})
		if p.AH {
			// keepalived "IPSEC-AH : Syncing seq_num - Increment seq".
			m.ahSeq, m.ahCycle = p.Seq+1, false
		}
		if !m.cfg.LowerPrioNoAdvert {
			m.sendAdvert(m.prio) // keepalived: "forcing new election"
		}
	}
}

// SetPriorityDelta sets the sum of the weights of the failed (negative) or
// succeeding (positive) tracked objects: the effective priority becomes the
// base plus delta, clamped to 1..254. It does not apply to the owner. A
// master advertises the new priority from its next advert; a backup's
// Skew_Time follows it from the next Master_Down_Timer reset.
func (m *Machine) SetPriorityDelta(now time.Time, delta int) {
	m.prioDelta = delta
	if m.owner() {
		return
	}
	p := min(max(int(m.cfg.Priority)+delta, 1), PriorityOwner-1)
	if uint8(p) != m.prio {
		m.prio = uint8(p)
		m.log(Action{Event: EventPriorityChanged, PeerPrio: m.prio})
	}
}

// SetHold holds the instance in backup (held) or lets it go (not held):
// while held it neither takes MASTER when the master is down nor preempts a
// lower priority master, whatever its priority; a master is not demoted.
// The connection sync holds it until the director has its peers' flows.
// Released, a backup that wanted MASTER takes it at the next Tick, and
// preemption resumes with the next advert.
func (m *Machine) SetHold(now time.Time, held bool) {
	if m.hold == held {
		return
	}
	m.hold = held
	if !held && m.state == StateBackup && m.wantMaster {
		m.downAt = now
	}
}

// SetFault records that the fault source (an interface, a track script of
// weight 0, ...) is down (faulty) or back up. The instance enters Fault when
// its first source goes down (a master sends priority 0 and removes the
// VIPs) and leaves it as at startup when the last comes back.
func (m *Machine) SetFault(now time.Time, source string, faulty bool) {
	if faulty == m.faults[source] {
		return
	}
	if faulty {
		m.faults[source] = true
		m.log(Action{Event: EventFault, Source: source})
	} else {
		delete(m.faults, source)
		m.log(Action{Event: EventFaultCleared, Source: source})
	}
	if m.state == StateInit {
		return
	}
	if faulty && m.state != StateFault {
		m.toFault(now)
		if m.group != nil {
			m.group.follow(now, m, StateFault)
		}
		return
	}
	if !faulty && !m.Faulty() && m.state == StateFault {
		if m.group != nil {
			m.group.leaveFault(now)
			return
		}
		m.begin(now)
	}
}

func (m *Machine) owner() bool { return m.cfg.Priority == PriorityOwner }

// goMaster is the way to master from backup or startup: a member of a sync
// group may be held in backup until the whole group wants master.
func (m *Machine) goMaster(now time.Time) {
	if m.hold {
		if m.state != StateBackup {
			m.toBackup(now)
		}
		if !m.wantMaster {
			m.log(Action{Event: EventHold})
		}
		m.wantMaster = true
		m.downAt = now.Add(m.MasterDownInterval())
		return
	}
	if m.group != nil && !m.owner() && !m.group.canGoMaster(m) {
		m.wantMaster = true
		m.downAt = now.Add(m.MasterDownInterval())
		m.log(Action{Event: EventSyncHold})
		return
	}
	m.toMaster(now)
	if m.group != nil {
		m.group.follow(now, m, StateMaster)
	}
}

// toMaster enters Master: add the VIPs, advertise, GARP, notify.
func (m *Machine) toMaster(now time.Time) {
	m.stopTimers()
	m.wantMaster = false
	if m.ahCycle {
		// keepalived: becoming master resets the anti-replay counter.
		m.ahSeq, m.ahCycle = 0, false
	}
	m.stats.BecameMaster++
	m.master, m.masterPrio = m.cfg.PrimaryIP, m.prio
	m.emit(Action{Kind: ActAddVIPs, Accept: m.accept()})
	m.sendAdvert(m.prio)
	m.garp(now, m.cfg.GARPMasterRepeat)
	m.advertAt = now.Add(m.cfg.Interval)
	if m.cfg.GARPMasterDelay > 0 {
		m.garpDelayAt = now.Add(m.cfg.GARPMasterDelay)
	}
	if m.cfg.GARPMasterRefresh > 0 {
		m.garpRefreshAt = now.Add(m.cfg.GARPMasterRefresh)
	}
	m.setState(StateMaster)
}

// toBackup enters Backup with Master_Down_Timer running.
func (m *Machine) toBackup(now time.Time) {
	m.leaveMaster()
	m.stopTimers()
	m.downAt = now.Add(m.MasterDownInterval())
	m.setState(StateBackup)
}

// toFault enters Fault; a master says goodbye with priority 0 first.
func (m *Machine) toFault(now time.Time) {
	if m.state == StateMaster {
		m.sendAdvert(PriorityStop)
	}
	m.leaveMaster()
	m.stopTimers()
	m.wantMaster = false
	m.masterAdverInt = m.cfg.Interval
	m.setState(StateFault)
}

// leaveMaster sends priority 0 (not when becoming backup: a higher priority
// master is already there) and removes the VIPs.
func (m *Machine) leaveMaster() {
	if m.state != StateMaster {
		return
	}
	m.stats.ReleasedMaster++
	m.emit(Action{Kind: ActRemoveVIPs, Accept: m.accept()})
	m.master, m.masterPrio = netip.Addr{}, 0
}

func (m *Machine) stopTimers() {
	m.advertAt, m.garpDelayAt, m.garpRefreshAt, m.downAt, m.preemptAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	m.announceAt, m.announceLeft, m.announceNext = time.Time{}, 0, 0
}

func (m *Machine) accept() bool { return m.cfg.Accept || m.owner() }

func (m *Machine) sendAdvert(prio uint8) {
	m.stats.AdvertsSent++
	if prio == PriorityStop {
		m.stats.PriorityZeroSent++
	}
	a := Action{Kind: ActSendAdvert, Priority: prio}
	if m.cfg.AuthType == AuthAH {
		// keepalived numbers each advert (not each unicast copy) from
		// the shared counter, and stops counting at 2^32-3.
		if m.ahSeq > 0xfffffffd {
			m.ahCycle = true
		} else {
			m.ahSeq++
		}
		a.Seq = m.ahSeq
	}
	m.emit(a)
}

func (m *Machine) setState(s State) {
	if s == m.state {
		return
	}
	m.state = s
	m.emit(Action{Kind: ActNotify, State: s})
	if m.group != nil {
		m.group.update()
	}
}

func (m *Machine) emit(a Action) { m.actions = append(m.actions, a) }

func (m *Machine) log(a Action) {
	a.Kind = ActLog
	m.emit(a)
}
