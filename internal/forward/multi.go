package forward

import (
	"context"
	"errors"
	"fmt"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// Multi is a director.Dataplane that hands each virtual service to the
// dataplane of its forwarding method. One dataplane may serve several
// methods (the kernel one serves nat and fullnat).
type Multi struct {
	routes map[config.Forwarding]director.Dataplane
	order  []director.Dataplane // distinct dataplanes, kernel ones first
	last   map[director.Dataplane][]*director.VirtualService
}

// NewMulti routes each forwarding method to its dataplane. Methods missing
// from routes are refused by Sync.
func NewMulti(routes map[config.Forwarding]director.Dataplane) *Multi {
	m := &Multi{routes: routes, last: map[director.Dataplane][]*director.VirtualService{}}
	seen := map[director.Dataplane]bool{}
	// Proxy last: a failure there is undone by re-syncing the others,
	// which for the kernel dataplane is one transaction.
	for _, f := range []config.Forwarding{config.NAT, config.FullNAT, config.DR, config.Proxy} {
		if dp := routes[f]; dp != nil && !seen[dp] {
			seen[dp] = true
			m.order = append(m.order, dp)
		}
	}
	return m
}

// Route is the dataplane of forwarding method f (nil: none).
func (m *Multi) Route(f config.Forwarding) director.Dataplane { return m.routes[f] }

// ServiceChanged implements director.ChangeNotifier: it tells the
// dataplane serving vs, if that one keeps its own copy of the weights.
func (m *Multi) ServiceChanged(vs *director.VirtualService) {
	if n, ok := m.routes[vs.Settings().Forwarding].(director.ChangeNotifier); ok {
		n.ServiceChanged(vs)
	}
}

// Sync implements director.Dataplane. The services are split by
// forwarding method and each dataplane is synced in turn; when one fails,
// those already synced are synced back to what they served before, so the
// whole stays as it was unless that undo fails too (then both errors are
// returned).
func (m *Multi) Sync(services []*director.VirtualService) error {
	split := map[director.Dataplane][]*director.VirtualService{}
	for _, vs := range services {
		f := vs.Settings().Forwarding
		dp := m.routes[f]
		if dp == nil {
			return fmt.Errorf("%s: forwarding %s is not available", vs.Key, f)
		}
		split[dp] = append(split[dp], vs)
	}
	for i, dp := range m.order {
		if err := dp.Sync(split[dp]); err != nil {
			var undo []error
			for _, done := range m.order[:i] {
				if uerr := done.Sync(m.last[done]); uerr != nil {
					undo = append(undo, uerr)
				}
			}
			if len(undo) > 0 {
				return fmt.Errorf("%w (and undoing the other dataplanes failed: %w)", err, errors.Join(undo...))
			}
			return err
		}
	}
	for _, dp := range m.order {
		m.last[dp] = split[dp]
	}
	return nil
}

// Shutdown implements director.Dataplane: all dataplanes drain together.
func (m *Multi) Shutdown(ctx context.Context) error {
	errs := make(chan error, len(m.order))
	for _, dp := range m.order {
		go func() { errs <- dp.Shutdown(ctx) }()
	}
	var all []error
	for range m.order {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// Close implements director.Dataplane.
func (m *Multi) Close() error {
	var all []error
	for _, dp := range m.order {
		if err := dp.Close(); err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// Connections implements director.ConnectionLister: each dataplane's
// connections in turn, those that cannot list theirs skipped.
func (m *Multi) Connections(yield func(director.Connection) bool) error {
	stopped := false
	y := func(c director.Connection) bool {
		stopped = !yield(c)
		return !stopped
	}
	for _, dp := range m.order {
		if l, ok := dp.(director.ConnectionLister); ok {
			if err := l.Connections(y); err != nil {
				return err
			}
		}
		if stopped {
			return nil
		}
	}
	return nil
}
