package sim

import "github.com/govs-lb/govs/internal/sched"

// Oracle names the simulator's reference policy: not a scheduler govs can
// run, since it reads what no director knows (each real server's true
// speed, queue and state), but a measure of what a greedy choice with
// perfect knowledge achieves. It sends each request to the running server
// with the least expected completion time: mean service time x current
// slowdown x (1 + requests that would wait ahead of it / slots).
const Oracle = "oracle"

type oracle struct {
	s     *sim
	dests []*sched.Dest
}

func (o *oracle) Update(dests []*sched.Dest) { o.dests = dests }

func (o *oracle) Pick(*sched.Key) *sched.Dest {
	var best *sched.Dest
	bc := 0.0
	for _, d := range o.dests {
		srv := &o.s.servers[d.Owner.(int)]
		if !srv.up || !d.Available() {
			continue
		}
		c := float64(srv.spec.Capacity)
		t := srv.spec.Service.Mean * srv.slowAt(o.s.now) * (1 + float64(max(srv.busy+srv.queue.n+1-srv.spec.Capacity, 0))/c)
		if best == nil || t < bc {
			best, bc = d, t
		}
	}
	return best
}
