package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pair is a sync group of two backups, VI_1 (VRID 51) and VI_2 (VRID 52).
func pair(t *testing.T, prio1, prio2 uint8) (*SyncGroup, *Machine, *Machine) {
	t.Helper()
	c1 := cfg4("10.0.0.2", prio1)
	c2 := cfg4("10.0.0.2", prio2)
	c2.Name, c2.VRID, c2.VIPs = "VI_2", 52, []netip.Addr{ip("10.0.0.200")}
	m1, m2 := newM(t, c1), newM(t, c2)
	g, err := NewSyncGroup("G1", m1, m2)
	if err != nil {
		t.Fatal(err)
	}
	return g, m1, m2
}

func groupNotifies(g *SyncGroup) string {
	var s []string
	for _, a := range g.Ready() {
		s = append(s, a.State.String())
	}
	return strings.Join(s, ",")
}

func TestSyncGroupMasterTogether(t *testing.T) {
	g, m1, m2 := pair(t, 100, 100)
	g.Start(t0)
	if got := groupNotifies(g); got != "BACKUP" {
		t.Fatalf("group notifies %q", got)
	}
	d, ok := g.NextDeadline()
	if !ok || !d.Equal(at(m1.MasterDownInterval())) {
		t.Fatalf("group deadline %v", d.Sub(t0))
	}
	// Both masters are gone: VI_1's timer fires first and is held, VI_2's
	// fires at the same instant and takes the group to master.
	g.Tick(d)
	if m1.State() != StateMaster || m2.State() != StateMaster || g.State() != StateMaster {
		t.Fatalf("states %v %v %v", m1.State(), m2.State(), g.State())
	}
	expect(t, m1, "notify BACKUP; log master down timer expired; log held in backup by sync group; "+
		"add-vips accept=false; send-advert priority 100; garp x5; notify MASTER")
	expect(t, m2, "notify BACKUP; log master down timer expired; add-vips accept=false; send-advert priority 100; garp x5; notify MASTER")
	if got := groupNotifies(g); got != "MASTER" {
		t.Fatalf("group notifies %q", got)
	}

	// One member hears a higher priority master: the whole group yields.
	step(t, m2, at(5*time.Second), advert(m2, 200), "10.0.0.9")
	if m1.State() != StateBackup || m2.State() != StateBackup || g.State() != StateBackup {
		t.Fatalf("states %v %v %v", m1.State(), m2.State(), g.State())
	}
	expect(t, m1, "remove-vips accept=false; notify BACKUP")
	if got := groupNotifies(g); got != "BACKUP" {
		t.Fatalf("group notifies %q", got)
	}
}

func TestSyncGroupHoldsPartialFailure(t *testing.T) {
	g, m1, m2 := pair(t, 100, 100)
	g.Start(t0)
	// VI_2's master keeps advertising; VI_1's is silent.
	for i := range 20 {
		now := at(time.Duration(i) * time.Second)
		g.Tick(now)
		step(t, m2, now, advert(m2, 200), "10.0.0.9")
	}
	if m1.State() != StateBackup || m2.State() != StateBackup {
		t.Fatalf("states %v %v", m1.State(), m2.State())
	}
	if !strings.Contains(kinds(m1.Ready()), "held in backup by sync group") {
		t.Fatal("no hold logged")
	}
	// When VI_2's master stops too, the group goes master.
	g.Tick(at(19*time.Second + m2.MasterDownInterval()))
	if m1.State() != StateMaster || m2.State() != StateMaster {
		t.Fatalf("states %v %v", m1.State(), m2.State())
	}
}

func TestSyncGroupFault(t *testing.T) {
	g, m1, m2 := pair(t, 100, 100)
	g.Start(t0)
	g.Tick(at(m1.MasterDownInterval()))
	m1.Ready()
	m2.Ready()
	g.Ready()
	m2.SetFault(at(10*time.Second), "eth1", true)
	if m1.State() != StateFault || m2.State() != StateFault || g.State() != StateFault {
		t.Fatalf("states %v %v %v", m1.State(), m2.State(), g.State())
	}
	expect(t, m1, "send-advert priority 0; remove-vips accept=false; notify FAULT")
	if got := groupNotifies(g); got != "FAULT" {
		t.Fatalf("group notifies %q", got)
	}
	// Both faults must clear before the group leaves fault.
	m1.SetFault(at(11*time.Second), "eth0", true)
	m2.SetFault(at(12*time.Second), "eth1", false)
	if m2.State() != StateFault {
		t.Fatal("left fault while a member is still down")
	}
	m1.SetFault(at(13*time.Second), "eth0", false)
	if m1.State() != StateBackup || m2.State() != StateBackup || g.State() != StateBackup {
		t.Fatalf("states %v %v %v", m1.State(), m2.State(), g.State())
	}
}

func TestSyncGroupStartWhileFaulty(t *testing.T) {
	g, m1, m2 := pair(t, 100, 100)
	m2.SetFault(t0, "eth1", true)
	g.Start(t0)
	if m1.State() != StateFault || m2.State() != StateFault {
		t.Fatalf("states %v %v", m1.State(), m2.State())
	}
	m2.SetFault(at(time.Second), "eth1", false)
	if m1.State() != StateBackup || m2.State() != StateBackup {
		t.Fatalf("states %v %v", m1.State(), m2.State())
	}
}

func TestSyncGroupOwnerPullsMembers(t *testing.T) {
	g, m1, m2 := pair(t, 255, 100)
	g.Start(t0)
	if m1.State() != StateMaster || m2.State() != StateMaster || g.State() != StateMaster {
		t.Fatalf("states %v %v %v", m1.State(), m2.State(), g.State())
	}
	// Leaving a group fault, the owner again pulls the others to master.
	m2.SetFault(at(time.Second), "eth1", true)
	m2.SetFault(at(2*time.Second), "eth1", false)
	if m1.State() != StateMaster || m2.State() != StateMaster {
		t.Fatalf("states %v %v", m1.State(), m2.State())
	}
}

func TestNewSyncGroupRejects(t *testing.T) {
	if _, err := NewSyncGroup("empty"); err == nil {
		t.Error("empty group accepted")
	}
	m := newM(t, cfg4("10.0.0.1", 100))
	if _, err := NewSyncGroup("dup", m, m); err == nil {
		t.Error("duplicate member accepted")
	}
	g, m1, _ := pair(t, 100, 100)
	if _, err := NewSyncGroup("again", m1); err == nil {
		t.Error("member of two groups accepted")
	}
	if g.Name() != "G1" || len(g.Members()) != 2 {
		t.Error("Name/Members")
	}
	s := newM(t, cfg4("10.0.0.1", 100))
	s.Start(t0)
	if _, err := NewSyncGroup("started", s); err == nil {
		t.Error("started member accepted")
	}
	g.Start(t0)
	g.Shutdown(t0)
	if g.State() != StateInit {
		t.Errorf("group state after shutdown %v", g.State())
	}
}
