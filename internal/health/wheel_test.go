package health

import (
	"slices"
	"testing"
	"time"
)

func wheelJob() *Job { return &Job{slot: -1, pos: -1} }

func TestWheel(t *testing.T) {
	var w wheel
	a, b, c, d := wheelJob(), wheelJob(), wheelJob(), wheelJob()
	w.add(a, 3)
	w.add(b, 3)
	w.add(c, 10)
	w.add(d, 3+wheelSlots) // same slot as a and b, next round
	if w.len() != 4 {
		t.Fatalf("len %d", w.len())
	}
	if nx, ok := w.next(0); !ok || nx != 3 {
		t.Fatalf("next %d %v", nx, ok)
	}
	if got := w.advance(2, nil); len(got) != 0 {
		t.Fatalf("early: %v", got)
	}
	got := w.advance(3, nil)
	if len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, b) {
		t.Fatalf("tick 3 gave %d jobs", len(got))
	}
	if a.slot != -1 || w.len() != 2 {
		t.Fatal("popped jobs still in the wheel")
	}
	// Removing one, then advancing past everything of this round.
	if !w.remove(c) || w.remove(c) {
		t.Fatal("remove")
	}
	if got := w.advance(wheelSlots, nil); len(got) != 0 {
		t.Fatalf("next round's job fired a round early")
	}
	// A job added for a tick already passed fires at the next one.
	w.add(a, 1)
	if a.due != wheelSlots+1 {
		t.Fatalf("late job due at %d", a.due)
	}
	// Advancing by more than a round visits every slot once.
	got = w.advance(10*wheelSlots, nil)
	if len(got) != 2 || w.len() != 0 {
		t.Fatalf("long jump gave %d, left %d", len(got), w.len())
	}
	if _, ok := w.next(0); ok {
		t.Fatal("next on an empty wheel")
	}
	// Removing from the middle of a slot keeps the others' positions right.
	js := []*Job{wheelJob(), wheelJob(), wheelJob(), wheelJob()}
	for _, j := range js {
		w.add(j, 20*wheelSlots)
	}
	w.remove(js[1])
	w.remove(js[0])
	got = w.drain(nil)
	if len(got) != 2 || !slices.Contains(got, js[2]) || !slices.Contains(got, js[3]) || w.len() != 0 {
		t.Fatalf("drain gave %d", len(got))
	}
	if js[3].slot != -1 {
		t.Fatal("drained job still marked queued")
	}
}

func TestTickOf(t *testing.T) {
	if tickOf(0) != 0 || tickOf(1) != 1 || tickOf(wheelTick) != 1 || tickOf(wheelTick+1) != 2 {
		t.Fatal("tickOf must round up: nothing fires early")
	}
	if time.Duration(tickOf(time.Second))*wheelTick != time.Second {
		t.Fatal("whole ticks")
	}
}
