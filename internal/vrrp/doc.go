// Package vrrp is the pure core of govs's VRRP: the advertisement codec for
// VRRPv2 (RFC 3768, IPv4) and VRRPv3 (RFC 5798 / RFC 9568, IPv4 and IPv6),
// and the per-instance state machine with keepalived's semantics on top of
// the RFCs (preempt_delay, garp_master_*, sync groups, track weights).
//
// The package speaks VRRP on the wire interoperably with keepalived; it does
// not touch the wire. In the style of etcd raft, a Machine is driven by method
// calls that carry the current time (Start, Shutdown, Step for a received
// advertisement, Tick at NextDeadline, SetFault, SetPriorityDelta) and answers
// with Actions the caller performs (send an advertisement, add or remove the
// virtual addresses, send gratuitous ARPs / unsolicited neighbour
// advertisements, run a notify script, log an event). Tests drive it with a
// fake clock and never sleep.
//
// The network adapter (raw IP protocol 112 sockets, multicast 224.0.0.18 and
// ff02::12 or unicast peers, netlink for the addresses, ARP and NDP) lives
// outside this core and feeds it Decode results with the IP-layer facts in an
// IPInfo.
//
// This package must never do I/O, start goroutines, read the clock or import
// another govs package; it uses only the standard library.
package vrrp
