// Package proxy is govs's userspace L4 dataplane (forwarding: proxy): a TCP
// proxy that moves bytes with splice(2) where the kernel allows, half-closes
// correctly, retries failed connects on another real server and can send the
// PROXY protocol; and a UDP proxy with per-client flows.
//
// It implements director.Dataplane and imports nothing of govs but the
// director, desired and accesslog packages, internal/sched for the signals
// it feeds the schedulers, and its own event loop (subpackage loop); its
// per-connection settings come from the director's snapshot, not from the
// configuration.
package proxy
