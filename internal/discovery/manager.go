package discovery

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Policy is the safety rules of one discovery block.
type Policy struct {
	// SetEmpty: a failing source empties the pool (its servers drain)
	// instead of keeping the last good set.
	SetEmpty bool
	// MaxDrop is the fraction of the pool one answer may remove; more, or
	// a drop to zero, is held until Confirm identical answers or until it
	// has lasted ConfirmTime.
	MaxDrop     float64
	Confirm     int
	ConfirmTime time.Duration
	// Settle is the shortest time between two applied changes.
	Settle time.Duration
	// Drain is how long a removed server stays at weight 0, at most.
	Drain time.Duration
	// Weight is the weight of servers whose source gives none.
	Weight int
}

type drain struct {
	srv     Server
	since   time.Time
	until   time.Time
	applied bool // the director has it at weight 0
}

type hold struct {
	set     map[netip.AddrPort]Server
	since   time.Time
	answers int
	from    int
}

// Manager applies a Policy to the answers of one source. It is not safe
// for concurrent use: the Runner owns it.
type Manager struct {
	p   Policy
	log *slog.Logger

	accepted map[netip.AddrPort]Server // in the pool, from the source
	draining map[netip.AddrPort]*drain
	held     *hold

	dirty     bool
	applied   bool // at least one apply
	lastApply time.Time

	st Status
}

// NewManager returns a manager with an empty pool. log gets the loud
// lines (held drops, failures); nil discards them.
func NewManager(p Policy, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if p.Confirm < 1 {
		p.Confirm = 1
	}
	return &Manager{p: p, log: log, accepted: map[netip.AddrPort]Server{}, draining: map[netip.AddrPort]*drain{}, st: Status{OK: true}}
}

// Observe takes one answer of the source at now.
func (m *Manager) Observe(now time.Time, u Update) {
	if u.Err != nil {
		m.st.Errors++
		t := now
		m.st.LastErrorAt = &t
		m.st.LastError = u.Err.Error()
		wasOK := m.st.OK
		m.st.OK = false
		if m.p.SetEmpty {
			if len(m.accepted) > 0 {
				m.log.Error("discovery source failed: fail_policy set_empty drains its servers", "err", u.Err, "servers", len(m.accepted))
			}
			m.held = nil
			m.accept(now, map[netip.AddrPort]Server{})
			return
		}
		if wasOK {
			m.log.Error("discovery source failed: keeping the last good set (fail_policy keep_last)", "err", u.Err, "servers", len(m.accepted))
		}
		return
	}
	m.st.Answers++
	t := now
	m.st.LastSuccess = &t
	if !m.st.OK {
		m.log.Warn("discovery source answers again", "servers", len(u.Servers), "after_error", m.st.LastError)
	}
	m.st.OK = true
	set := make(map[netip.AddrPort]Server, len(u.Servers))
	for _, s := range u.Servers {
		if s.Weight < 0 {
			s.Weight = m.p.Weight
		}
		set[s.Addr] = s
	}
	m.st.Found = len(set)
	if sameSet(set, m.accepted) {
		if m.held != nil {
			m.log.Warn("discovery: held drop withdrawn, the source answers the pool in force again", "servers", len(set))
			m.held = nil
		}
		return
	}
	if removed := m.removed(set); len(m.accepted) > 0 && (len(set) == 0 || float64(removed)/float64(len(m.accepted)) > m.p.MaxDrop) {
		if m.held != nil && sameSet(m.held.set, set) {
			m.held.answers++
		} else {
			m.held = &hold{set: set, since: now, answers: 1, from: len(m.accepted)}
			m.st.HeldTotal++
			m.log.Error("discovery: sudden drop held until confirmed", "from", len(m.accepted), "to", len(set),
				"removed", removed, "max_drop", m.p.MaxDrop, "confirm_answers", m.p.Confirm, "confirm_time", m.p.ConfirmTime)
		}
		m.confirmHeld(now)
		return
	}
	m.held = nil
	m.accept(now, set)
}

// removed counts the servers in the pool that set lacks.
func (m *Manager) removed(set map[netip.AddrPort]Server) int {
	n := 0
	for a := range m.accepted {
		if _, ok := set[a]; !ok {
			n++
		}
	}
	return n
}

func (m *Manager) confirmHeld(now time.Time) {
	h := m.held
	if h == nil {
		return
	}
	if h.answers >= m.p.Confirm || now.Sub(h.since) >= m.p.ConfirmTime {
		m.log.Warn("discovery: held drop confirmed, applying it", "from", h.from, "to", len(h.set), "answers", h.answers, "held_for", now.Sub(h.since))
		m.held = nil
		m.accept(now, h.set)
	}
}

// accept makes set the pool: servers that left start draining, servers
// that came back stop.
func (m *Manager) accept(now time.Time, set map[netip.AddrPort]Server) {
	changed := false
	for a, s := range m.accepted {
		if _, ok := set[a]; !ok {
			m.draining[a] = &drain{srv: s, since: now, until: now.Add(m.p.Drain)}
			changed = true
		}
	}
	for a, s := range set {
		if _, ok := m.draining[a]; ok {
			delete(m.draining, a)
			changed = true
		} else if old, ok := m.accepted[a]; !ok || old != s {
			changed = true
		}
	}
	m.accepted = set
	if changed {
		m.dirty = true
	}
}

// Tick decides at now what the director should have. When apply is true,
// entries is the whole discovered set to hand over (draining servers at
// weight 0) and the caller must report the outcome with Applied. idle, if
// not nil, says whether a real server has no connection left: a draining
// server without connections leaves before its drain time.
func (m *Manager) Tick(now time.Time, idle func(netip.AddrPort) bool) (entries []Entry, apply bool) {
	if m.held != nil {
		m.confirmHeld(now)
	}
	for a, d := range m.draining {
		if !now.Before(d.until) || (d.applied && idle != nil && idle(a)) {
			delete(m.draining, a)
			m.dirty = true
		}
	}
	if !m.dirty || (m.applied && now.Before(m.lastApply.Add(m.p.Settle))) {
		return nil, false
	}
	return m.Entries(), true
}

// Applied records that the entries of the last Tick were handed to the
// director at now, or that it refused them (err).
func (m *Manager) Applied(now time.Time, err error) {
	m.applied, m.lastApply = true, now
	if err != nil {
		// Try again after the settle window: the refusal may be the
		// configuration's (a reload may fix it), not the source's.
		m.st.ApplyError = err.Error()
		return
	}
	m.dirty = false
	m.st.ApplyError = ""
	m.st.Applies++
	t := now
	m.st.LastApply = &t
	for _, d := range m.draining {
		d.applied = true
	}
}

// Entries is the discovered set the director should have now.
func (m *Manager) Entries() []Entry {
	out := make([]Entry, 0, len(m.accepted)+len(m.draining))
	for _, s := range m.accepted {
		out = append(out, Entry{Server: s})
	}
	for _, d := range m.draining {
		s := d.srv
		s.Weight = 0
		out = append(out, Entry{Server: s, Draining: true})
	}
	sortEntries(out)
	return out
}

// Next is when Tick has something to decide next, if nothing is observed
// before; zero when nothing is pending. Draining servers are polled for
// idleness by the caller's own period.
func (m *Manager) Next() time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if m.held != nil {
		earlier(m.held.since.Add(m.p.ConfirmTime))
	}
	for _, d := range m.draining {
		earlier(d.until)
	}
	if m.dirty {
		if m.applied {
			earlier(m.lastApply.Add(m.p.Settle))
		} else {
			earlier(time.Time{}.Add(1)) // at once
		}
	}
	return next
}

// Status returns the manager's part of the source's status.
func (m *Manager) Status() Status {
	st := m.st
	st.Active = len(m.accepted)
	st.Draining = len(m.draining)
	if h := m.held; h != nil {
		st.Held = &Held{From: h.from, To: len(h.set), Since: h.since, Answers: h.answers,
			Confirm: m.p.Confirm, ConfirmAt: h.since.Add(m.p.ConfirmTime)}
	}
	switch {
	case !st.OK && m.p.SetEmpty:
		st.Message = "source failing: pool emptied (fail_policy set_empty): " + st.LastError
	case !st.OK:
		st.Message = fmt.Sprintf("source failing: keeping the last good set of %d (fail_policy keep_last): %s", len(m.accepted), st.LastError)
	case st.Held != nil:
		st.Message = fmt.Sprintf("drop from %d to %d servers held until %d identical answers or %s", st.Held.From, st.Held.To,
			st.Held.Confirm, st.Held.ConfirmAt.UTC().Format(time.RFC3339))
	case st.LastSuccess == nil:
		st.Message = "waiting for the first answer"
	default:
		st.Message = "ok"
	}
	return st
}

func sameSet(a, b map[netip.AddrPort]Server) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Seed starts the manager from entries a previous source of the same
// block found (a block changed by a reload): they are the pool, and the
// new source's answers follow the usual rules.
func (m *Manager) Seed(now time.Time, es []Entry) {
	for _, e := range es {
		if e.Draining {
			m.draining[e.Addr] = &drain{srv: e.Server, since: now, until: now.Add(m.p.Drain), applied: true}
		} else {
			m.accepted[e.Addr] = e.Server
		}
	}
	m.applied, m.lastApply = true, now
}
