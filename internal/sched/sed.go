package sched

// Shortest expected delay (sed) sends a new connection where it would finish
// soonest if servers work through their connections at a rate given by their
// weight: it beats wlc when weights differ a lot.
//
// Rule (ip_vs_sed_schedule): among servers with weight > 0 and not
// overloaded, the one with the least (active + 1) / weight, compared exactly
// by cross-multiplication; ties go to the first in list order. Only active
// connections count, as in IPVS: inactive ones (opening, closing, UDP) do not.
// No options.

func init() {
	Register("sed", func(Options) (Scheduler, error) { return newMinSched(sedRank), nil })
}

func sedRank(d *Dest) rank {
	a, _, w, over := snapshot(d)
	return rank{ok: w > 0 && !over, num: a + 1, den: w}
}
