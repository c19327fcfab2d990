// Package sched holds govs's schedulers: the rules that choose a real server
// for a new connection, with IPVS's names and semantics.
//
// A scheduler is a plain type with no I/O. The director gives it the current
// real servers with Update (whenever the set or a weight changes) and asks it
// for a choice with Pick, concurrently from many goroutines. Connection
// counts, weights and the overload flag live on Dest and are read with
// atomics, so Pick never blocks on the dataplane.
//
// Each scheduler documents its exact rule in its own file and registers
// itself by name in an init function; New builds one by name.
//
// This package must never import another govs package.
package sched
