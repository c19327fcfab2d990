package vrrp

import (
	"testing"
	"time"
)

// TestHoldKeepsBackup: held (connection sync resyncing), a backup neither
// takes over from a silent master nor preempts a lower priority one; let
// go, it does both.
func TestHoldKeepsBackup(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 200))
	m.SetHold(t0, true)
	m.Start(t0)
	m.Ready()
	// Nobody there: the master down timer runs out, held.
	m.Tick(at(4 * time.Second))
	if m.State() != StateBackup {
		t.Fatalf("held, state %v", m.State())
	}
	// A lower priority master appears: not preempted while held.
	peer := newM(t, cfg4("10.0.0.2", 100))
	step(t, m, at(4500*time.Millisecond), advert(peer, 100), "10.0.0.2")
	m.Tick(at(8 * time.Second))
	if m.State() != StateBackup {
		t.Fatalf("preempted while held")
	}
	step(t, m, at(8*time.Second), advert(peer, 100), "10.0.0.2")
	m.SetHold(at(8*time.Second), false)
	// Its next advert is discarded (preemption), the timer runs out.
	step(t, m, at(9*time.Second), advert(peer, 100), "10.0.0.2")
	m.Tick(at(12 * time.Second))
	if m.State() != StateMaster {
		t.Fatalf("not master after release: %v", m.State())
	}

	// Held with no master at all: released, it takes over at once.
	m2 := newM(t, cfg4("10.0.0.1", 255))
	m2.SetHold(t0, true)
	m2.Start(t0)
	if m2.State() != StateBackup {
		t.Fatalf("owner held: %v", m2.State())
	}
	m2.Tick(at(4 * time.Second))
	m2.SetHold(at(5*time.Second), false)
	m2.Tick(at(5 * time.Second))
	if m2.State() != StateMaster {
		t.Fatalf("owner released: %v", m2.State())
	}
}
