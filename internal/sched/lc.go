package sched

// Least connection (lc) sends a new connection to the server with the fewest
// connections, for servers of equal capacity whose connections vary in length.
//
// Rule (ip_vs_lc_schedule): among servers with weight > 0 and not overloaded,
// the one with the least overhead, active x 256 + inactive; ties go to the
// first in list order. Weights other than 0 play no part. No options.
//
// Weighted least connection (wlc), IPVS's default, does the same for servers
// of different capacity.
//
// Rule (ip_vs_wlc_schedule): among servers with weight > 0 and not
// overloaded, the one with the least overhead / weight, compared exactly by
// cross-multiplication (overhead1 x weight2 > overhead2 x weight1); ties go to
// the first in list order. No options.
//
// IPVS scans every server on each pick; here an index updated as counts
// change makes Pick O(1) and each count change O(log n), with the same result.

func init() {
	Register("lc", func(Options) (Scheduler, error) { return newMinSched(lcRank), nil })
	Register("wlc", func(Options) (Scheduler, error) { return newMinSched(wlcRank), nil })
}

func lcRank(d *Dest) rank {
	a, in, w, over := snapshot(d)
	return rank{ok: w > 0 && !over, num: overhead(a, in), den: 1}
}

func wlcRank(d *Dest) rank {
	a, in, w, over := snapshot(d)
	return rank{ok: w > 0 && !over, num: overhead(a, in), den: w}
}
