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

	"github.com/govs-lb/govs/internal/discovery/status"
)

// Server is one real server a source found.
type Server struct {
	Addr netip.AddrPort
	// Weight is the source's weight (SRV weight, a label, a value's
	// field); -1 means the source has none and the discovery block's
	// default applies.
	Weight int
	// Name says where in the source it came from (a pod's or container's
	// name, an etcd key or its value's name, an SRV target, a file entry's
	// name), for people: the API's source_name.
	Name string
	// Node is the Kubernetes node an endpoint runs on ("" elsewhere): the
	// API's node.
	Node string
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

// Status and Held live in their own package so that the API (and govsadm,
// its client) need not carry the sources' client libraries.
type (
	Status = status.Status
	Held   = status.Held
)

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
