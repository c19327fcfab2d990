// Package connsync (directory internal/sync) is govs's connection
// synchronisation between directors: the protocol core, pure (Node: time
// passed in, actions out, no I/O), and its adapter to UDP and conntrack
// (Daemon, Linux only).
//
// The protocol follows conntrackd's FT-FW: every change is an entry in a
// sequenced, batched, HMAC-SHA256-authenticated datagram; receivers track
// each sender's sequence numbers, NACK the gaps, and the sender retransmits
// from a bounded history; a gap that cannot be repaired (out of history, or
// not repaired within GiveUp) makes the receiver ask that sender for its
// whole table. A director that starts asks every peer for its table (bulk
// resync) and knows when it has it: the sender ends it with a sequenced
// DONE naming the sequence numbers it took, and the resync is complete when
// all of them arrived. Replays are refused by the per-sender sequence window
// (data) or strictly increasing timestamps (control messages), with every
// timestamp within MaxSkew of the receiver's clock and an epoch (the
// sender's start time) that only grows.
//
// Limits: a message older than the receiver's first contact with its
// sender, captured and replayed within MaxSkew, is taken once; sequence
// numbers do not wrap (a sender restarts its epoch long before 2^32
// messages). Entries apply in each sender's sequence order, so a lost
// message holds back what follows it until it is repaired (a NACK round)
// or superseded by a resync; a deletion lost beyond repair leaves the flow
// to time out on the receiver.
package connsync
