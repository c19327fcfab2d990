// Package discovery finds real servers in outside systems (DNS, etcd,
// Docker, watched files) and feeds them to the director, never to the
// dataplane: discovered real servers join a virtual service's written ones
// through the director's update path, so health checks, schedulers and the
// API treat them as any other (docs/discovery.md).
//
// A Source produces full sets of servers, or errors. A Manager, one per
// virtual service, is pure (time passed in, decisions out) and applies the
// safety rules every source shares: a failing source keeps the last good
// set (or empties the pool when fail_policy says set_empty), a sudden drop
// is held until confirmed, removed servers drain at weight 0 before they
// leave, and bursts are applied once per settle window. A Runner joins the
// two with I/O: it runs the sources and hands the Manager's decisions to
// the director.
package discovery

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// Server is one real server a source found.
type Server struct {
	Addr netip.AddrPort
	// Weight is the source's weight (SRV weight, a label, a value's
	// field); -1 means the source has none and the discovery block's
	// default applies.
	Weight int
	// Name says where in the source it came from (a container's name, an
	// etcd key, an SRV target), for people.
	Name string
}

// Update is one answer of a source: a full set of servers, or an error
// when the source could not answer (then Servers means nothing).
type Update struct {
	Servers []Server
	Err     error
}

// Source is a discovery source. Run reports full sets (never deltas) to
// report until ctx ends, then returns. A polling source reports every
// answer (repeated identical answers confirm a held drop); a watching
// source reports when the set may have changed. Run retries errors itself,
// reporting each one.
type Source interface {
	Run(ctx context.Context, report func(Update))
}

// Entry is a real server the director should have: a source's server,
// draining (weight 0) when it has left the source but may still have
// connections.
type Entry struct {
	Server
	Draining bool
}

// Held describes a change held back as a sudden drop.
type Held struct {
	From    int       `json:"from"`    // servers in the pool
	To      int       `json:"to"`      // servers in the held answer
	Since   time.Time `json:"since"`   // first seen
	Answers int       `json:"answers"` // consecutive identical answers so far
	// Confirm and ConfirmAt are what confirms it: that many answers, or
	// this time.
	Confirm   int       `json:"confirm"`
	ConfirmAt time.Time `json:"confirm_at"`
}

// Status is a source's state, as GET /api/v1/discovery shows it.
type Status struct {
	Service    string `json:"service"` // the virtual service's name
	Key        string `json:"key"`     // PROTOCOL/VIP:PORT
	Type       string `json:"type"`
	Origin     string `json:"origin"`
	FailPolicy string `json:"fail_policy"`
	// OK is false while the last answer was an error.
	OK          bool       `json:"ok"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Errors      uint64     `json:"errors"`  // failed answers, in all
	Answers     uint64     `json:"answers"` // good answers, in all
	Found       int        `json:"servers_found"`
	Active      int        `json:"servers_active"`   // in the pool from this source
	Draining    int        `json:"servers_draining"` // left the source, draining
	Held        *Held      `json:"held,omitempty"`
	HeldTotal   uint64     `json:"held_total"` // drops held, in all
	Applies     uint64     `json:"applies"`    // changes handed to the director
	LastApply   *time.Time `json:"last_apply,omitempty"`
	ApplyError  string     `json:"apply_error,omitempty"` // the director refused the last set
	// Message says in words what the source is doing now.
	Message string `json:"message"`
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return a.Addr.Compare(b.Addr) })
}

// sessions runs session again and again, interval apart, until ctx ends:
// the watching sources (docker, etcd) start over after every error.
func sessions(ctx context.Context, interval time.Duration, session func()) {
	for ctx.Err() == nil {
		session()
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}
