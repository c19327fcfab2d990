// Package forward is the home of govs's dataplanes, one subpackage each:
// proxy (userspace L4 proxy, portable, unprivileged) and nft (kernel NAT,
// FULLNAT and DR through nftables and conntrack). Multi routes each virtual
// service of a snapshot to the dataplane of its forwarding method. Each
// implements director.Dataplane; the director decides what is served, a
// dataplane only moves packets and reports statistics.
//
// Dataplanes read what to serve from the director's snapshots
// (internal/desired) and import director for its hot-path types; nothing
// under internal/forward imports internal/config (test files excepted,
// which build their directors from a configuration).
package forward
