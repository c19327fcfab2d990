package sched

import (
	"math"
	"sync"
	"time"
)

// Predict (predict) learns, for each real server, how its latency grows
// with its requests in flight, and sends each new connection to the server
// where the predicted completion time is least. With several directors it
// probes the servers for the requests in flight of the others, so that
// they do not herd (docs/sim.md measures it). govs's own, not an IPVS
// scheduler; for the proxy dataplane (it learns from FirstByte) and probes.
//
// The model, per server: latency = alpha + beta x q, where q is the
// server's requests in flight that a request meets when it is sent (from
// every director). It is fitted by least squares over samples (q, latency)
// that are forgotten exponentially in time (predictTau), with a ridge that
// pulls beta towards the latency / (q + 1) of a server that takes requests
// one at a time (predictRidge), and blended with the average of the other
// servers' models while a server has few recent samples (predictPrior), so
// that a server nobody sent to for a while looks average again and gets
// tried. Samples:
//
//   - FirstByte: the latency of a request this director sent, and q as
//     this director estimated it when it sent the request (kept in a small
//     ring per server, found by the bind time, At - Latency);
//   - ConnectTime, when it exceeds the prediction (a failing or
//     overloaded server's connects count as slow requests).
//
// Probes give the requests in flight only.
//
// q now: this director's own connections to the server plus those of the
// other directors, the last probe's RIF minus this director's connections
// when it came; older than predictMaxAge, the others count as none.
//
// Choice: every server, or predictChoices drawn at random when there are
// more, the least alpha + beta x q wins (then the lower q). Each pick sends
// predictProbes probes to the drawn servers, through the Prober of Options,
// after the lock is released; without a Prober the others count as none
// and the model learns from FirstByte alone.
//
// Pick takes one lock and does not allocate; the fits happen in Observe.
type predict struct {
	mu     sync.Mutex
	dests  []*Dest
	pos    map[*Dest]int32
	m      []predModel
	perm   []int32 // a permutation of the positions, for drawing without repeats
	defA   float64 // average fitted alpha and beta, ns and ns per request
	defB   float64
	prober Prober
	filter ProbeFilter
	clock  func() time.Time
	rnd    func() uint64
}

const (
	// predictChoices is how many servers each pick compares: all of them
	// up to 16, 16 drawn at random beyond. Fewer was expected to herd less
	// with many directors, but govs sim says otherwise: each director
	// counts its own connections at once and the probes bring the
	// others', so comparing all is best everywhere (p99 with 2, 4, 8, 16
	// choices: multi-director 48.8, 44.2, 44.2, 40.0 ms; with antagonists
	// 58.4, 54.7, 54.2, 48.6; noisy-neighbour 33.9, 31.9, 31.5, 31.0;
	// 200,000 requests, seed 1). 16 bounds Pick's cost with many servers.
	predictChoices = 16
	// predictProbes is how many of the drawn servers each pick probes.
	predictProbes = 2
	// predictTau is the time constant of the forgetting: long enough for
	// about a hundred samples a server at modest rates, short enough to
	// follow an antagonist that comes for two seconds.
	predictTau = float64(time.Second)
	// predictRidge is the ridge weight, in (requests in flight)^2: with q
	// varying by less than a request or so, beta comes from the prior.
	predictRidge = 1.0
	// predictPrior is the weight, in samples, of the average model in a
	// server's blend.
	predictPrior = 4.0
	// predictMaxAge drops the others' RIF from a probe older than this.
	predictMaxAge = int64(time.Second)
	// predictHist is the ring of (time, q) per server for pairing a
	// FirstByte with the q its request met.
	predictHist = 32
)

type predModel struct {
	sw, sq, sl, sqq, sql float64 // forgotten sums of weights, q, latency, q^2, q x latency
	stamp                int64   // of the last sample
	alpha, beta          float64 // the server's own fit
	fitted               bool    // has had a sample
	others               float64 // other directors' RIF, from the last probe
	othersAt             int64
	hist                 [predictHist]qSample
	hpos                 int
}

type qSample struct {
	at int64
	q  float32
}

func init() {
	Register("predict", func(o Options) (Scheduler, error) {
		s := &predict{prober: o.Prober, clock: clockSource(o), rnd: randSource(o)}
		s.filter, _ = o.Prober.(ProbeFilter)
		return s, nil
	})
}

func (s *predict) Update(dests []*Dest) {
	pos := positions(dests)
	m := make([]predModel, len(dests))
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, i := range pos {
		if j, ok := s.pos[d]; ok {
			m[i] = s.m[j]
		}
	}
	perm := make([]int32, len(dests))
	for i := range perm {
		perm[i] = int32(i)
	}
	s.dests, s.pos, s.m, s.perm = dests, pos, m, perm
}

// q is server i's requests in flight as this director sees them now.
func (s *predict) q(i int32, now int64) float64 {
	q := float64(conns(s.dests[i]))
	if m := &s.m[i]; m.othersAt != 0 && now-m.othersAt <= predictMaxAge {
		q += m.others
	}
	return q
}

// cost is the predicted completion time at server i for a request that
// meets q requests in flight: the server's fit blended with the average
// one by the weight of its samples, forgotten to now.
func (s *predict) cost(i int32, q float64, now int64) float64 {
	m := &s.m[i]
	if !m.fitted {
		if s.defA == 0 && s.defB == 0 {
			return q + 1 // nothing learned yet: least connections
		}
		return s.defA + s.defB*q
	}
	w := m.sw
	if age := now - m.stamp; age > 0 {
		w *= math.Exp(-float64(age) / predictTau)
	}
	f := w / (w + predictPrior)
	return f*(m.alpha+m.beta*q) + (1-f)*(s.defA+s.defB*q)
}

func (s *predict) Pick(*Key) *Dest {
	var targets [predictProbes]*Dest
	nt := 0
	s.mu.Lock()
	n := len(s.dests)
	if n == 0 {
		s.mu.Unlock()
		return nil
	}
	now := s.clock().UnixNano()
	best, bq, bc := int32(-1), 0.0, 0.0
	k := min(n, predictChoices)
	for c := range k {
		i := int32(c)
		if n > predictChoices {
			// A partial Fisher-Yates shuffle of perm: k distinct draws.
			j := c + int(s.rnd()%uint64(n-c))
			s.perm[c], s.perm[j] = s.perm[j], s.perm[c]
			i = s.perm[c]
		}
		d := s.dests[i]
		if !d.Available() {
			continue
		}
		q := s.q(i, now)
		cost := s.cost(i, q, now)
		if best < 0 || cost < bc || cost == bc && q < bq {
			best, bq, bc = i, q, cost
		}
		if nt < predictProbes && s.prober != nil && (s.filter == nil || s.filter.Probes(d)) {
			targets[nt] = d
			nt++
		}
	}
	if best < 0 {
		// None of the drawn is available: the first available one.
		for i := range int32(n) {
			if s.dests[i].Available() {
				best, bq = i, s.q(i, now)
				break
			}
		}
		if best < 0 {
			s.mu.Unlock()
			return nil
		}
	}
	m := &s.m[best]
	m.hist[m.hpos] = qSample{at: now, q: float32(bq)}
	m.hpos = (m.hpos + 1) % predictHist
	d := s.dests[best]
	s.mu.Unlock()
	for _, t := range targets[:nt] {
		s.prober.Probe(t, s)
	}
	return d
}

func (s *predict) Observe(d *Dest, sig Signal) {
	switch sig.Kind {
	case FirstByte, Probe, ConnectTime:
	default:
		return
	}
	now := signalTime(&sig, s.clock)
	lat := float64(max(sig.Latency, 0))
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.pos[d]
	if !ok {
		return
	}
	m := &s.m[i]
	switch sig.Kind {
	case Probe:
		rif := max(sig.Load, 0)
		// Only the count: a probe's latency is the server's guess (or,
		// from an agent without latency:, a round trip), and the model
		// does as well or better without it (govs sim, multi-director
		// p99 40.0 ms without, 40.6 with).
		m.others, m.othersAt = max(rif-float64(conns(d)), 0), now
	case FirstByte, ConnectTime:
		q, found := m.qAt(now - int64(lat))
		if !found {
			return
		}
		if sig.Kind == ConnectTime && lat <= s.cost(i, q, now) {
			return
		}
		s.add(m, q, lat, now)
	}
}

// qAt is the q this director estimated when it last sent a request to the
// server at or before t.
func (m *predModel) qAt(t int64) (float64, bool) {
	for k := 1; k <= predictHist; k++ {
		e := m.hist[(m.hpos-k+predictHist)%predictHist]
		if e.at == 0 {
			break
		}
		if e.at <= t {
			return float64(e.q), true
		}
	}
	return 0, false
}

// add forgets the sums by the time passed, adds the sample (q, lat) and
// refits.
func (s *predict) add(m *predModel, q, lat float64, now int64) {
	if m.stamp != 0 {
		w := math.Exp(-float64(max(now-m.stamp, 0)) / predictTau)
		m.sw *= w
		m.sq *= w
		m.sl *= w
		m.sqq *= w
		m.sql *= w
	}
	m.stamp = max(now, m.stamp)
	m.sw++
	m.sq += q
	m.sl += lat
	m.sqq += q * q
	m.sql += q * lat
	mq, ml := m.sq/m.sw, m.sl/m.sw
	vq := max(m.sqq/m.sw-mq*mq, 0)
	cql := m.sql/m.sw - mq*ml
	b0 := ml / (mq + 1)
	beta := max((cql*m.sw+predictRidge*b0)/(vq*m.sw+predictRidge), b0/16)
	alpha := max(ml-beta*mq, 0)
	m.alpha, m.beta, m.fitted = alpha, beta, true
	if s.defA == 0 && s.defB == 0 {
		s.defA, s.defB = alpha, beta
	}
	// The average model: an EWMA over every fit, so over the servers in
	// proportion to their samples.
	s.defA += (alpha - s.defA) / 64
	s.defB += (beta - s.defB) / 64
}
