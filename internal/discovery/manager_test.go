package discovery

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func srv(i int) Server {
	return Server{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 80), Weight: -1}
}

func servers(ids ...int) []Server {
	out := make([]Server, 0, len(ids))
	for _, i := range ids {
		out = append(out, srv(i))
	}
	return out
}

// describe renders entries as "1 2 3 -4" (a minus: draining).
func describe(es []Entry) string {
	s := ""
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		if e.Draining {
			s += "-"
		}
		s += fmt.Sprint(e.Addr.Addr().As4()[3])
	}
	return s
}

func policy() Policy {
	return Policy{MaxDrop: 0.5, Confirm: 3, ConfirmTime: 30 * time.Second, Settle: time.Second, Drain: 10 * time.Second, Weight: 1}
}

// tick applies what the manager wants at now and returns it ("" if nothing).
func tick(t *testing.T, m *Manager, now time.Time, idle func(netip.AddrPort) bool) (string, bool) {
	t.Helper()
	es, ok := m.Tick(now, idle)
	if ok {
		m.Applied(now, nil)
	}
	return describe(es), ok
}

func TestManagerFirstAnswerAppliesAtOnce(t *testing.T) {
	m := NewManager(policy(), nil)
	if _, ok := tick(t, m, t0, nil); ok {
		t.Fatal("applied before any answer")
	}
	m.Observe(t0, Update{Servers: servers(1, 2, 3)})
	got, ok := tick(t, m, t0, nil)
	if !ok || got != "1 2 3" {
		t.Fatalf("got %q %v, want 1 2 3 applied", got, ok)
	}
	es := m.Entries()
	if es[0].Weight != 1 {
		t.Fatalf("default weight not applied: %d", es[0].Weight)
	}
	if _, ok := tick(t, m, t0.Add(5*time.Second), nil); ok {
		t.Fatal("applied again with no change")
	}
}

func TestManagerKeepLastOnError(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(time.Second), Update{Err: errors.New("connection refused")})
	if _, ok := tick(t, m, t0.Add(2*time.Second), nil); ok {
		t.Fatal("an error changed the pool under keep_last")
	}
	if got := describe(m.Entries()); got != "1 2" {
		t.Fatalf("pool %q, want 1 2", got)
	}
	st := m.Status()
	if st.OK || st.LastError != "connection refused" || st.LastSuccess == nil || st.Errors != 1 {
		t.Fatalf("status %+v", st)
	}
	m.Observe(t0.Add(3*time.Second), Update{Servers: servers(1, 2)})
	if st := m.Status(); !st.OK || st.Message != "ok" {
		t.Fatalf("status after recovery %+v", st)
	}
}

func TestManagerSetEmptyOnError(t *testing.T) {
	p := policy()
	p.SetEmpty = true
	m := NewManager(p, nil)
	m.Observe(t0, Update{Servers: servers(1, 2)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(2*time.Second), Update{Err: errors.New("timeout")})
	got, ok := tick(t, m, t0.Add(2*time.Second), nil)
	if !ok || got != "-1 -2" {
		t.Fatalf("got %q %v, want both draining", got, ok)
	}
}

func TestManagerDropToZeroHeldUntilConfirmedByAnswers(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3)})
	tick(t, m, t0, nil)
	for i := 1; i <= 2; i++ {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		m.Observe(now, Update{Servers: nil})
		if got, ok := tick(t, m, now, nil); ok {
			t.Fatalf("answer %d: empty set applied: %q", i, got)
		}
		if h := m.Status().Held; h == nil || h.From != 3 || h.To != 0 || h.Answers != i {
			t.Fatalf("answer %d: held %+v", i, h)
		}
	}
	now := t0.Add(15 * time.Second)
	m.Observe(now, Update{Servers: nil})
	got, ok := tick(t, m, now, nil)
	if !ok || got != "-1 -2 -3" {
		t.Fatalf("third identical answer: got %q %v, want all draining", got, ok)
	}
	if m.Status().HeldTotal != 1 {
		t.Fatalf("held_total %d", m.Status().HeldTotal)
	}
}

func TestManagerDropHeldUntilConfirmTime(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3, 4)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(time.Second), Update{Servers: servers(1)}) // 75% drop > 50%
	if _, ok := tick(t, m, t0.Add(29*time.Second), nil); ok {
		t.Fatal("drop applied before confirm_time")
	}
	if n := m.Next(); !n.Equal(t0.Add(31 * time.Second)) {
		t.Fatalf("next %v, want the confirm time", n)
	}
	got, ok := tick(t, m, t0.Add(31*time.Second), nil)
	if !ok || got != "1 -2 -3 -4" {
		t.Fatalf("got %q %v", got, ok)
	}
}

func TestManagerHeldDropWithdrawn(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3, 4)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(time.Second), Update{Servers: nil})
	m.Observe(t0.Add(2*time.Second), Update{Servers: nil})
	m.Observe(t0.Add(3*time.Second), Update{Servers: servers(1, 2, 3, 4)}) // flap back
	if m.Status().Held != nil {
		t.Fatal("still held after the source answered the pool again")
	}
	m.Observe(t0.Add(4*time.Second), Update{Servers: nil}) // counting starts afresh
	if _, ok := tick(t, m, t0.Add(4*time.Second), nil); ok {
		t.Fatal("a flapping source emptied the pool")
	}
	if h := m.Status().Held; h.Answers != 1 {
		t.Fatalf("answers %d, want 1 (a different answer resets the count)", h.Answers)
	}
}

func TestManagerSmallDropNotHeld(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3, 4)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(2*time.Second), Update{Servers: servers(1, 2, 3)}) // 25%
	if got, ok := tick(t, m, t0.Add(2*time.Second), nil); !ok || got != "1 2 3 -4" {
		t.Fatalf("got %q %v", got, ok)
	}
}

func TestManagerDrainThenLeave(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(2*time.Second), Update{Servers: servers(1, 2)})
	got, _ := tick(t, m, t0.Add(2*time.Second), nil)
	if got != "1 2 -3" {
		t.Fatalf("got %q, want 3 draining", got)
	}
	for _, e := range m.Entries() {
		if e.Draining && e.Weight != 0 {
			t.Fatalf("draining server at weight %d", e.Weight)
		}
	}
	busy := func(netip.AddrPort) bool { return false }
	if _, ok := tick(t, m, t0.Add(11*time.Second), busy); ok {
		t.Fatal("left before its drain time while busy")
	}
	if got, ok := tick(t, m, t0.Add(12*time.Second), busy); !ok || got != "1 2" {
		t.Fatalf("after drain time: %q %v", got, ok)
	}
}

func TestManagerDrainEndsEarlyWhenIdle(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(2*time.Second), Update{Servers: servers(1, 2)})
	idle := func(netip.AddrPort) bool { return true }
	// The weight-0 step is applied first, even when idle: a connection
	// scheduled just before it may still be in flight.
	if got, _ := tick(t, m, t0.Add(2*time.Second), idle); got != "1 2 -3" {
		t.Fatalf("got %q", got)
	}
	if got, ok := tick(t, m, t0.Add(3*time.Second), idle); !ok || got != "1 2" {
		t.Fatalf("idle server still draining: %q %v", got, ok)
	}
}

func TestManagerComeBackWhileDraining(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1, 2, 3)})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(2*time.Second), Update{Servers: servers(1, 2)})
	tick(t, m, t0.Add(2*time.Second), nil)
	m.Observe(t0.Add(4*time.Second), Update{Servers: servers(1, 2, 3)})
	if got, ok := tick(t, m, t0.Add(4*time.Second), nil); !ok || got != "1 2 3" {
		t.Fatalf("got %q %v", got, ok)
	}
}

func TestManagerSettleCoalescesBursts(t *testing.T) {
	p := policy()
	p.Settle = 2 * time.Second
	m := NewManager(p, nil)
	m.Observe(t0, Update{Servers: servers(1)})
	if got, ok := tick(t, m, t0, nil); !ok || got != "1" {
		t.Fatalf("first: %q %v", got, ok)
	}
	applies := 0
	for i := 2; i <= 6; i++ { // a burst of 5 additions, 300ms apart
		now := t0.Add(time.Duration(i-1) * 300 * time.Millisecond)
		m.Observe(now, Update{Servers: servers(seq(i)...)})
		if _, ok := tick(t, m, now, nil); ok {
			applies++
		}
	}
	if applies != 0 {
		t.Fatalf("%d applies inside the settle window", applies)
	}
	if n := m.Next(); !n.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("next %v", n)
	}
	if got, ok := tick(t, m, t0.Add(2*time.Second), nil); !ok || got != "1 2 3 4 5 6" {
		t.Fatalf("after settle: %q %v", got, ok)
	}
	if st := m.Status(); st.Applies != 2 {
		t.Fatalf("applies %d, want 2", st.Applies)
	}
}

func TestManagerApplyRefusedIsRetried(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: servers(1)})
	if _, ok := m.Tick(t0, nil); !ok {
		t.Fatal("no apply")
	}
	m.Applied(t0, errors.New("refused"))
	if st := m.Status(); st.ApplyError != "refused" {
		t.Fatalf("status %+v", st)
	}
	if _, ok := m.Tick(t0.Add(500*time.Millisecond), nil); ok {
		t.Fatal("retried inside the settle window")
	}
	if _, ok := m.Tick(t0.Add(time.Second), nil); !ok {
		t.Fatal("not retried")
	}
}

func TestManagerWeightChange(t *testing.T) {
	m := NewManager(policy(), nil)
	m.Observe(t0, Update{Servers: []Server{{Addr: srv(1).Addr, Weight: 5}}})
	tick(t, m, t0, nil)
	m.Observe(t0.Add(2*time.Second), Update{Servers: []Server{{Addr: srv(1).Addr, Weight: 7}}})
	es, ok := m.Tick(t0.Add(2*time.Second), nil)
	if !ok || len(es) != 1 || es[0].Weight != 7 {
		t.Fatalf("got %+v %v", es, ok)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}
