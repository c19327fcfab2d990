package sched

// Overflow (ovf) keeps new connections on the highest-weight server until its
// active connections exceed its weight, then overflows to the next highest:
// the weight acts as a connection budget. It counts active connections only,
// so it suits TCP rather than UDP, as IPVS warns.
//
// Rule (ip_vs_ovf_schedule): among servers not overloaded, with weight > 0
// and active connections <= weight, the one with the highest weight; ties go
// to the first in list order. The kernel excludes a server only once
// active > weight, so a server can reach weight + 1 active connections.
// No options.

func init() {
	Register("ovf", func(Options) (Scheduler, error) { return newMinSched(ovfRank), nil })
}

func ovfRank(d *Dest) rank {
	a, _, w, over := snapshot(d)
	return weightRank(w, !over && a <= w)
}
