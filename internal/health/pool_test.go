package health

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestPoolBounds: never more than max items run at once; TrySubmit drops
// what finds no room, Submit waits for it; Close ends the workers.
func TestPoolBounds(t *testing.T) {
	var running, most atomic.Int64
	release := make(chan struct{})
	var ran sync.WaitGroup
	p := NewPool(context.Background(), 2, 1, 0, func(ctx context.Context, _ int) {
		defer ran.Done()
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		running.Add(-1)
	})
	ran.Add(3)
	for i := range 3 {
		if !p.TrySubmit(i) {
			t.Fatalf("item %d refused with room left", i)
		}
		if i < 2 {
			loopback.WaitFor(t, "the item running", func() bool { return running.Load() == int64(i+1) })
		}
	}
	if p.TrySubmit(9) {
		t.Fatal("an item accepted with two running and the queue full")
	}
	done := make(chan bool)
	ran.Add(1)
	go func() { done <- p.Submit(4) }()
	close(release)
	if !<-done {
		t.Fatal("Submit refused")
	}
	ran.Wait()
	if most.Load() != 2 || p.Workers() != 2 {
		t.Fatalf("at most %d running, %d workers; want 2, 2", most.Load(), p.Workers())
	}
	p.Close()
	if p.Workers() != 0 || p.TrySubmit(5) || p.Submit(6) {
		t.Fatalf("after Close: %d workers, or an item accepted", p.Workers())
	}
}

// TestPoolIdleWorkersEnd: with idleFor, a worker without work ends.
func TestPoolIdleWorkersEnd(t *testing.T) {
	p := NewPool(context.Background(), 4, 8, 10*time.Millisecond, func(context.Context, int) {})
	defer p.Close()
	for i := range 8 {
		p.TrySubmit(i)
	}
	loopback.WaitFor(t, "idle workers to end", func() bool { return p.Workers() == 0 })
}
