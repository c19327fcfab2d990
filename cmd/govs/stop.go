package main

import (
	"context"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
)

// stoppable is the dataplane as the director sees it, with a way to cut a
// stop's grace period short: a second SIGTERM/SIGINT closes what is left at
// once instead of waiting for it.
type stoppable struct {
	*forward.Multi
	now chan struct{} // closed by the second signal
}

func newStoppable(m *forward.Multi) *stoppable {
	return &stoppable{Multi: m, now: make(chan struct{})}
}

// Shutdown implements director.Dataplane: the grace period ends at ctx's
// deadline or at the second signal, whichever comes first.
func (s *stoppable) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.now:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.Multi.Shutdown(ctx)
}

// closeNow ends the grace period; it returns how many connections and
// flows were still open.
func (s *stoppable) closeNow() int {
	n := 0
	s.Multi.Connections(func(director.Connection) bool { n++; return true })
	select {
	case <-s.now:
	default:
		close(s.now)
	}
	return n
}
