// Package forward is the home of govs's dataplanes, one subpackage each:
// proxy (userspace L4 proxy, portable, unprivileged) and, later, kernel NAT
// through nftables. Each implements director.Dataplane; the director decides
// what is served, a dataplane only moves packets and reports statistics.
package forward
