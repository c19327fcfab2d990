package sched

// Never queue (nq) sends a new connection to an idle server when there is
// one rather than queue it behind others on a faster server; otherwise it is
// sed.
//
// Rule (ip_vs_nq_schedule): among servers with weight > 0 and not
// overloaded, the first in list order with no active connection (inactive
// ones do not count); if none is idle, the one with the least
// (active + 1) / weight, compared exactly by cross-multiplication, ties to the
// first in list order. No options.

func init() {
	Register("nq", func(Options) (Scheduler, error) { return newMinSched(nqRank), nil })
}

func nqRank(d *Dest) rank {
	a, _, w, over := snapshot(d)
	if a == 0 {
		// Idle servers all rank equal, so the first in list order wins.
		return rank{ok: w > 0 && !over, class: 0, num: 0, den: 1}
	}
	return rank{ok: w > 0 && !over, class: 1, num: a + 1, den: w}
}
