// Package desired is what the director wants the dataplanes to serve: an
// immutable snapshot of the virtual services, already parsed and
// validated, built by the director once per reload and after every health
// decision that changes a weight, the scheduler's set or the sorry server
// (internal/director/snapshot.go; docs/architecture.md, "The snapshot
// seam").
//
// A dataplane reads its work from a Service and nothing else: not the
// configuration (no package under internal/forward imports
// internal/config), not the director's live objects, whose only use left
// to a dataplane is the hot path (scheduling a connection through
// director.VirtualService.Schedule, and accounting it).
//
// Nothing here is modified once published: a change is a new Service. This
// package must not import another govs package, so that the director, the
// dataplanes and their tests all can.
package desired
