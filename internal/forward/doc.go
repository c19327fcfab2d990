// Package forward is the home of govs's dataplanes, one subpackage each:
// proxy (userspace L4 proxy, portable, unprivileged) and nft (kernel NAT and
// FULLNAT through nftables and conntrack). Multi routes each virtual service
// to the dataplane of its forwarding method. Each implements director.Dataplane; the director decides
// what is served, a dataplane only moves packets and reports statistics.
package forward
