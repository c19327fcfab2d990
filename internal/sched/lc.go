package sched

// Least connection (lc): the available server with the least overhead
// (active x 256 + inactive); ties go to the first in list order, as IPVS.
type leastConn struct{ list destList }

// Weighted least connection (wlc): the available server with the least
// overhead / weight. IPVS compares by cross-multiplication, loh x dw > doh x lw,
// to stay in integers; ties go to the first in list order.
type weightedLeastConn struct{ list destList }

func init() {
	Register("lc", func(Options) (Scheduler, error) { return &leastConn{}, nil })
	Register("wlc", func(Options) (Scheduler, error) { return &weightedLeastConn{}, nil })
}

func (s *leastConn) Update(dests []*Dest) { s.list.store(dests) }

func (s *leastConn) Pick(*Key) *Dest {
	var least *Dest
	loh := 0
	for _, d := range s.list.load() {
		if !d.Available() {
			continue
		}
		if doh := d.Overhead(); least == nil || doh < loh {
			least, loh = d, doh
		}
	}
	return least
}

func (s *weightedLeastConn) Update(dests []*Dest) { s.list.store(dests) }

func (s *weightedLeastConn) Pick(*Key) *Dest {
	var least *Dest
	var loh, lw int64
	for _, d := range s.list.load() {
		if !d.Available() {
			continue
		}
		doh, dw := int64(d.Overhead()), int64(d.Weight())
		if least == nil || loh*dw > doh*lw {
			least, loh, lw = d, doh, dw
		}
	}
	return least
}
