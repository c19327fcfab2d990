package vrrp

import (
	"errors"
	"fmt"
	"time"
)

// SyncGroup moves several instances together, with keepalived's
// vrrp_sync_group semantics:
//
//   - Fault: when a member enters Fault, every member does (masters send
//     priority 0 and remove their VIPs). The group leaves Fault only when no
//     member has a fault source down; then every member restarts as at
//     startup.
//   - Backup: when a master member hears a higher priority master and becomes
//     backup, every master member becomes backup.
//   - Master: a member whose Master_Down_Timer expires goes to master only
//     when every other member wants master too (its timer expired as well, or
//     it is master); otherwise it is held in backup (EventSyncHold) and its
//     timer restarts. This prefers backup, to avoid thrashing when only some
//     of the peer's instances failed. When a member becomes master, the other
//     backup members follow at once. An address owner never waits.
//
// The group is pure like Machine: members call into it synchronously. Drive
// each member as usual (or with the group's Tick and NextDeadline) and drain
// every member's Ready after each call, since one member's input can queue
// actions on the others. The group's own Ready carries its notifications.
type SyncGroup struct {
	name    string
	members []*Machine
	state   State
	actions []Action
}

// NewSyncGroup groups members, which must be in Init and in no other group.
func NewSyncGroup(name string, members ...*Machine) (*SyncGroup, error) {
	if len(members) == 0 {
		return nil, errors.New("vrrp sync group " + name + ": no members")
	}
	for i, m := range members {
		if m.group != nil {
			return nil, fmt.Errorf("vrrp sync group %s: instance %q is already in a group", name, m.cfg.Name)
		}
		if m.state != StateInit {
			return nil, fmt.Errorf("vrrp sync group %s: instance %q is already started", name, m.cfg.Name)
		}
		for _, o := range members[:i] {
			if o == m {
				return nil, fmt.Errorf("vrrp sync group %s: instance %q listed twice", name, m.cfg.Name)
			}
		}
	}
	g := &SyncGroup{name: name, members: append([]*Machine(nil), members...)}
	for _, m := range members {
		m.group = g
	}
	return g, nil
}

// Name returns the group's name.
func (g *SyncGroup) Name() string { return g.name }

// State returns the group's state: Fault if any member is in Fault, Master if
// every started member is master, Init if none is started, Backup otherwise.
func (g *SyncGroup) State() State { return g.state }

// Members returns the members, in the order given to NewSyncGroup.
func (g *SyncGroup) Members() []*Machine { return append([]*Machine(nil), g.members...) }

// Ready returns the group's own queued actions (ActNotify on each group state
// change, for keepalived's group notify scripts) and clears the queue.
func (g *SyncGroup) Ready() []Action {
	a := g.actions
	g.actions = nil
	return a
}

// Start starts every member.
func (g *SyncGroup) Start(now time.Time) {
	for _, m := range g.members {
		m.Start(now)
	}
}

// Shutdown shuts every member down.
func (g *SyncGroup) Shutdown(now time.Time) {
	for _, m := range g.members {
		m.Shutdown(now)
	}
}

// Tick ticks every member.
func (g *SyncGroup) Tick(now time.Time) {
	for _, m := range g.members {
		m.Tick(now)
	}
}

// NextDeadline is the earliest of the members' deadlines.
func (g *SyncGroup) NextDeadline() (time.Time, bool) {
	var t time.Time
	for _, m := range g.members {
		if d, ok := m.NextDeadline(); ok && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	return t, !t.IsZero()
}

func (g *SyncGroup) anyFaulty() bool {
	for _, m := range g.members {
		if m.Faulty() {
			return true
		}
	}
	return false
}

// canGoMaster reports whether m may leave backup for master: the group is
// already master, or every other member wants master.
func (g *SyncGroup) canGoMaster(m *Machine) bool {
	if g.state == StateMaster {
		return true
	}
	for _, o := range g.members {
		if o != m && o.state != StateMaster && !(o.state == StateBackup && o.wantMaster) {
			return false
		}
	}
	return true
}

// follow moves the other members after from entered s.
func (g *SyncGroup) follow(now time.Time, from *Machine, s State) {
	for _, o := range g.members {
		if o == from {
			continue
		}
		switch {
		case s == StateMaster && o.state == StateBackup:
			o.toMaster(now)
		case s == StateBackup && o.state == StateMaster:
			o.toBackup(now)
		case s == StateFault && (o.state == StateBackup || o.state == StateMaster):
			o.groupFault = true
			o.toFault(now)
		case s == StateFault && o.state == StateFault:
			o.groupFault = true
		}
	}
}

// leaveFault restarts the faulted members once no member has a fault down.
// Non-owners go first, so that an owner becoming master pulls them along.
func (g *SyncGroup) leaveFault(now time.Time) {
	if g.anyFaulty() {
		for _, m := range g.members {
			if m.state == StateFault {
				m.groupFault = true
			}
		}
		return
	}
	for _, owners := range []bool{false, true} {
		for _, m := range g.members {
			if m.state == StateFault && m.owner() == owners {
				m.groupFault = false
				m.begin(now)
			}
		}
	}
}

// update recomputes the group state after a member changed state.
func (g *SyncGroup) update() {
	started, masters, fault := 0, 0, false
	for _, m := range g.members {
		switch m.state {
		case StateFault:
			fault = true
		case StateMaster:
			masters++
		}
		if m.state != StateInit {
			started++
		}
	}
	s := StateBackup
	switch {
	case fault:
		s = StateFault
	case started == 0:
		s = StateInit
	case masters == started:
		s = StateMaster
	}
	if s != g.state {
		g.state = s
		g.actions = append(g.actions, Action{Kind: ActNotify, State: s})
	}
}
