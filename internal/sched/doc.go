// Package sched holds govs's schedulers: the rules that choose a real server
// for a new connection, with IPVS's names and semantics.
//
// A scheduler is a plain type with no I/O. The director gives it the current
// real servers with Update (whenever the set, a weight or a threshold
// changes) and asks it for a choice with Pick, concurrently from many
// goroutines. Connection counts, weights and the overload flag live on Dest
// and are read with atomics, so Pick never blocks on the dataplane.
//
// IPVS's least-connection family scans every server on every pick. Here the
// schedulers that rank servers by load keep an index that each Dest updates
// as its counts change (O(log n) per change, through a hook Update attaches),
// so that Pick costs the same at 10 or 1,000 servers and returns exactly
// what the kernel's scan would, ties included: the first server in list
// order. "List order" is the order of the slice given to Update; IPVS's own
// list has the most recently added server first.
//
// Each scheduler documents its use, exact rule and options at the top of its
// own file and registers itself by name in an init function; New builds one
// by name. docs/schedulers.md is the operator's table of them.
//
// This package must never import another govs package but internal/registry,
// the leaf that holds its table of names (and health's).
package sched
