package sim

// event is something that happens at a simulated time. Ties are broken by
// seq, the order in which events were scheduled, so a run never depends on
// the heap's internals.
type event struct {
	t    float64
	seq  uint64
	kind uint8
	a    int32   // a job or a server
	b    int32   // an epoch
	c    int32   // a server
	v, w float64 // payload (a probe's answer)
}

const (
	evArrival     uint8 = iota // next client request (b: arrival epoch)
	evPhase                    // the arrival process changes state
	evConnect                  // a connection reaches its real server (a: job, b: server epoch)
	evConnectFail              // a connect times out (a: job)
	evDone                     // a job's service ends (a: job, b: server epoch, c: server)
	evFail                     // a: server fails
	evRecover                  // a: server comes back
	evSlow                     // a: server slows down by v
	evHealth                   // a: server's next health check
	evHealthFail               // a: server's health check failed
	evAgent                    // a: server's agent reports its load
	evProbeAt                  // a probe reaches server a
	evProbeBack                // a probe's answer (v: RIF, w: latency) is back from server a (b: director)
	evTimeout                  // a: job's client gives up (b: the job's generation)
	evAntagonist               // a: server's antagonist now takes share v of it (b: antagonist)
	evPrewarm                  // the pre-warming's next step (prewarm.go)
	evRamp                     // the called standby servers' next slow-start step
)

// atc schedules an event that names a director (or any third value) in c.
func (s *sim) atc(t float64, kind uint8, a, b, c int32) {
	s.seq++
	s.events.push(event{t: t, seq: s.seq, kind: kind, a: a, b: b, c: c})
}

// eventHeap is a binary min-heap of events by (t, seq).
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	return h[i].t < h[j].t || h[i].t == h[j].t && h[i].seq < h[j].seq
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}
