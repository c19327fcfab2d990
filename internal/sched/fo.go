package sched

// Weighted fail-over (fo) sends every new connection to one server, the one
// with the highest weight, and moves to the next highest when it fails
// (weight 0) or is overloaded: an active/standby pair or chain by weight.
//
// Rule (ip_vs_fo_schedule): among servers not overloaded, the one with the
// highest weight above 0; ties go to the first in list order. No options.

func init() {
	Register("fo", func(Options) (Scheduler, error) { return newMinSched(foRank), nil })
}

// weightRank ranks a higher weight first: weights are below 2^31, so
// 2^31 - weight orders them in reverse and stays positive.
func weightRank(w uint64, ok bool) rank {
	return rank{ok: ok && w > 0, num: 1<<31 - w, den: 1}
}

func foRank(d *Dest) rank {
	_, _, w, over := snapshot(d)
	return weightRank(w, !over)
}
