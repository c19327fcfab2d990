package forward

import (
	"context"
	"errors"
	"fmt"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// Multi is a director.Dataplane that hands each virtual service to the
// dataplane of its forwarding method (the snapshot's Forwarding). One
// dataplane may serve several methods (the kernel one serves nat, fullnat
// and dr).
type Multi struct {
	routes map[desired.Forwarding]director.Dataplane
	order  []director.Dataplane // distinct dataplanes, kernel ones first
	// last is what each dataplane serves, to undo a commit when a later
	// dataplane's fails. Only the director's reconciler calls Multi, one
	// call at a time, so it needs no lock.
	last map[director.Dataplane]*director.Snapshot
}

// NewMulti routes each forwarding method to its dataplane. Methods missing
// from routes are refused by Prepare and Apply.
func NewMulti(routes map[desired.Forwarding]director.Dataplane) *Multi {
	m := &Multi{routes: routes, last: map[director.Dataplane]*director.Snapshot{}}
	seen := map[director.Dataplane]bool{}
	// Proxy last: its commit cannot fail (its listeners are bound in
	// Prepare), and a kernel one that fails is undone in one transaction.
	for _, f := range []desired.Forwarding{desired.NAT, desired.FullNAT, desired.DR, desired.Proxy} {
		if dp := routes[f]; dp != nil && !seen[dp] {
			seen[dp] = true
			m.order = append(m.order, dp)
			m.last[dp] = &director.Snapshot{}
		}
	}
	return m
}

// Route is the dataplane of forwarding method f (nil: none).
func (m *Multi) Route(f desired.Forwarding) director.Dataplane { return m.routes[f] }

// split divides s among the dataplanes, each getting a snapshot (empty
// when it serves none of s's services).
func (m *Multi) split(s *director.Snapshot) (map[director.Dataplane]*director.Snapshot, error) {
	out := make(map[director.Dataplane]*director.Snapshot, len(m.order))
	for _, dp := range m.order {
		out[dp] = &director.Snapshot{}
	}
	for _, e := range s.Services {
		dp := m.routes[e.Desired.Forwarding]
		if dp == nil {
			return nil, fmt.Errorf("%s: forwarding %s is not available", e.Desired.Key, e.Desired.Forwarding)
		}
		out[dp].Services = append(out[dp].Services, e)
	}
	return out, nil
}

// multiTx is a prepared snapshot of every dataplane.
type multiTx struct {
	m     *Multi
	parts map[director.Dataplane]*director.Snapshot
	txs   []director.Transaction // in m.order
}

// Prepare implements director.Dataplane: each dataplane prepares its share;
// when one fails, those prepared are aborted.
func (m *Multi) Prepare(s *director.Snapshot) (director.Transaction, error) {
	parts, err := m.split(s)
	if err != nil {
		return nil, err
	}
	tx := &multiTx{m: m, parts: parts}
	for _, dp := range m.order {
		t, err := dp.Prepare(parts[dp])
		if err != nil {
			tx.Abort()
			return nil, err
		}
		tx.txs = append(tx.txs, t)
	}
	return tx, nil
}

// Commit commits each dataplane in turn. When one fails, the rest are
// aborted and those already committed are brought back to what they served
// (Apply of their last snapshot), so the whole stays as it was unless that
// undo fails too (then both errors are returned).
func (tx *multiTx) Commit() error {
	m := tx.m
	for i, t := range tx.txs {
		if err := t.Commit(); err != nil {
			for _, rest := range tx.txs[i+1:] {
				rest.Abort()
			}
			var undo []error
			for _, done := range m.order[:i] {
				if uerr := done.Apply(m.last[done]); uerr != nil {
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
		m.last[dp] = tx.parts[dp]
	}
	return nil
}

// Abort implements director.Transaction.
func (tx *multiTx) Abort() {
	for _, t := range tx.txs {
		t.Abort()
	}
}

// Apply implements director.Dataplane: each dataplane applies its share.
// A health decision moves no service between dataplanes, so one that fails
// leaves the others applied: each serves its last good state or the new
// one, and the director retries.
func (m *Multi) Apply(s *director.Snapshot) error {
	parts, err := m.split(s)
	if err != nil {
		return err
	}
	var all []error
	for _, dp := range m.order {
		if err := dp.Apply(parts[dp]); err != nil {
			all = append(all, err)
			continue
		}
		m.last[dp] = parts[dp]
	}
	return errors.Join(all...)
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

// Connections implements director.Dataplane: each dataplane's connections
// in turn.
func (m *Multi) Connections(yield func(director.Connection) bool) error {
	stopped := false
	y := func(c director.Connection) bool {
		stopped = !yield(c)
		return !stopped
	}
	for _, dp := range m.order {
		if err := dp.Connections(y); err != nil {
			return err
		}
		if stopped {
			return nil
		}
	}
	return nil
}
