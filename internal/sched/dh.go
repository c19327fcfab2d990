package sched

import "sync/atomic"

// Destination hashing (dh) sends every connection for one destination
// address to the same server: for a cluster of transparent caches or
// firewalls, where the destination (the origin server) is what to keep
// together.
//
// Rule (ip_vs_dh_schedule): a table of 256 buckets is filled with the
// servers in list order, one bucket each in turn, repeated until the table
// is full; weights above 0 play no part. The destination address of the
// connection (Key.VIP: the virtual or original destination, folded as IPVS
// does for IPv6) selects bucket (address x 2654435761) mod 256. If that
// server has weight 0 or is overloaded, the pick fails: dh has no fallback.
// No options.
type destinationHash struct {
	tab atomic.Pointer[hashTable]
}

func init() {
	Register("dh", func(Options) (Scheduler, error) { return &destinationHash{}, nil })
}

func (s *destinationHash) Update(dests []*Dest) { s.tab.Store(fillHashTable(dests, false)) }

func (s *destinationHash) Pick(k *Key) *Dest {
	t := s.tab.Load()
	if t == nil {
		return nil
	}
	if d := t.bucket[uint8(fold(k.VIP.Addr())*goldenHash)]; d != nil && d.Available() {
		return d
	}
	return nil
}
