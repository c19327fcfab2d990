// Package vrrpd runs govs's VRRP instances on the network: it is the thin
// I/O adapter around the pure state machines of package vrrp.
//
// For every instance (or sync group) a driver goroutine owns the machines:
// it sleeps on one timer set to NextDeadline, feeds them the adverts read
// from the raw sockets, the link and address changes seen through netlink
// and the results of the track scripts, and performs the actions they
// return: adverts on raw IP protocol 112 sockets (224.0.0.18 / ff02::12 or
// unicast peers, TTL / hop limit 255), virtual addresses added and removed
// with netlink, gratuitous ARPs (AF_PACKET) and unsolicited neighbour
// advertisements (ICMPv6), notify scripts run with keepalived's arguments.
//
// The package is Linux only; elsewhere Apply reports that VRRP needs Linux.
// It imports the configuration model and the vrrp core, and nothing of the
// director: the director does not know whether this node is master (a
// backup keeps its dataplane ready; only the VIPs move).
package vrrpd
