package sched

import (
	"math"
	"sync"
	"time"
)

// Prequal (prequal) sends a new connection to a real server chosen from a
// small pool of recent load probes, by requests in flight (RIF) and latency:
// Google's Prequal ("Load is not what you should balance: Introducing
// Prequal", Wydrowski et al., NSDI 2024), for servers of uneven or changing
// speed, and for several directors sharing the servers, since a probe
// reports the load from every director. govs's own, not an IPVS scheduler.
//
// Probes: each pick sends prequalProbes probes to servers drawn uniformly
// (an unavailable one is skipped), through the Prober of Options; the answers
// arrive later (Observe with a Probe signal: the server's RIF and recent
// latency) and enter the pool. Without a Prober, a probe is answered at once
// from what this director knows (passive): its own connections to the
// server as RIF and an EWMA (tau 1 s) of the FirstByte signals it observes
// as latency, times (RIF + 1). A Prober that is a ProbeFilter may decline a
// server (one without an agent, or whose agent failed): its probes are then
// answered passively, as without a Prober.
//
// Pool: at most prequalPool probes, the newest one per server. A probe
// older than prequalMaxAge is dropped; a full pool drops its oldest probe
// for a new one; after each pick the worst probe is dropped (the hottest,
// else the slowest: r_remove = 1), so that hot servers do not linger. A
// probe may serve several picks, up to its reuse budget (below).
//
// A probe ages as this director's own connections to the server change:
// its RIF is read as the probed RIF plus the change in this director's
// connections to that server since the answer came (the paper adds one per
// use; the director knows its own count exactly, departures included), and
// its latency is scaled by (RIF now + 1) / (RIF probed + 1), as a queue
// that grows by one makes a request wait about one more service time.
// Without that scaling a server probed idle keeps its low latency while the
// director fills it, and one director herds its connections onto it.
//
// Choice, hot-cold lexicographic (HCL): a probe is hot when its RIF is
// above the prequalQRIF quantile of the last prequalHistory probed RIFs.
// Among the cold probes of available servers, the lowest latency wins (then
// the lower RIF); when all are hot, the lowest RIF wins (then the lower
// latency). With no usable probe, the less loaded (connections / weight) of
// two servers drawn at random is chosen. Weights above 0 play no other
// part.
//
// Reuse budget, after the paper: with n servers, m = prequalPool, r_probe =
// prequalProbes and r_remove = 1, b = ceil(1 + delta / ((1 - m/n) r_probe -
// r_remove)) uses per probe, delta = 1; when the denominator is not positive
// (n at most about 1.5 m) the cap prequalMaxReuse applies.
//
// Options: Prober, Clock, Rand. Pick and Observe take one lock and do not
// allocate; Pick calls the Prober after releasing it (and its ProbeFilter
// under the lock).
type prequal struct {
	mu     sync.Mutex
	dests  []*Dest
	pos    map[*Dest]int32
	lat    []ewma // passive latency by position, ns
	pool   [prequalPool]probeEntry
	n      int   // probes in pool
	reuse  int32 // uses per probe
	hist   [prequalHistory]int32
	sorted [prequalHistory]int32 // the same values, sorted
	hn     int                   // values in hist
	hpos   int                   // next slot of hist
	prober Prober
	filter ProbeFilter // the prober's, if it has one
	clock  func() time.Time
	rnd    func() uint64
}

const (
	// prequalPool is the pool size, the paper's 16: enough choices to
	// find a cold server, few enough to stay fresh.
	prequalPool = 16
	// prequalProbes is r_probe, probes sent per pick. The paper uses a few;
	// 3 keeps the pool full with servers far more numerous than 16.
	prequalProbes = 3
	// prequalMaxAge drops probes too old to describe the server.
	prequalMaxAge = int64(time.Second)
	// prequalQRIF is Q_RIF, the hot/cold quantile. The paper explores
	// values from about 0.6 to 0.9 (0.84 in its examples); in govs sim a
	// single director does better at 0.6 (p99 -4% heterogeneous, -2%
	// noisy-neighbour, no scenario worse; docs/sim.md): a lower quantile
	// calls more servers hot, which keeps one director from piling onto
	// the fastest.
	prequalQRIF = 0.6
	// prequalHistory is how many recent probed RIFs the quantile is taken
	// over.
	prequalHistory = 64
	// prequalDelta and prequalMaxReuse set the reuse budget (see above).
	prequalDelta    = 1.0
	prequalMaxReuse = 16
	// prequalPassiveTau is the time constant of the passive latency EWMA.
	prequalPassiveTau = float64(time.Second)
)

// probeEntry is one probe in the pool.
type probeEntry struct {
	dest int32 // position in dests
	rif  int32 // as probed
	own  int32 // this director's connections to dest when the probe came
	uses int32 // picks left
	lat  float64
	at   int64 // ns
}

func init() {
	Register("prequal", func(o Options) (Scheduler, error) {
		s := &prequal{prober: o.Prober, clock: clockSource(o), rnd: randSource(o)}
		s.filter, _ = o.Prober.(ProbeFilter)
		return s, nil
	})
}

// reuseBudget is the paper's b_reuse for n servers.
func reuseBudget(n int) int32 {
	if n <= 0 {
		return 1
	}
	den := (1-float64(prequalPool)/float64(n))*prequalProbes - 1
	if den <= 0 {
		return prequalMaxReuse
	}
	return int32(min(math.Ceil(1+prequalDelta/den), prequalMaxReuse))
}

func (s *prequal) Update(dests []*Dest) {
	pos := positions(dests)
	lat := make([]ewma, len(dests))
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, i := range pos {
		if j, ok := s.pos[d]; ok {
			lat[i] = s.lat[j]
		}
	}
	// Keep the probes of servers that stay, at their new positions.
	k := 0
	for _, e := range s.pool[:s.n] {
		if i, ok := pos[s.dests[e.dest]]; ok {
			e.dest = i
			s.pool[k] = e
			k++
		}
	}
	s.n = k
	s.dests, s.pos, s.lat = dests, pos, lat
	s.reuse = reuseBudget(len(dests))
}

func (s *prequal) Observe(d *Dest, sig Signal) {
	if sig.Kind != Probe && sig.Kind != FirstByte {
		return
	}
	now := signalTime(&sig, s.clock)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.pos[d]
	if !ok {
		return
	}
	if sig.Kind == FirstByte {
		s.lat[i].add(float64(max(sig.Latency, 0)), now, prequalPassiveTau)
		return
	}
	rif := int32(min(max(math.Round(sig.Load), 0), math.MaxInt32))
	s.insert(probeEntry{dest: i, rif: rif, own: conns(d), uses: s.reuse, lat: float64(max(sig.Latency, 0)), at: now})
}

func (s *prequal) Pick(*Key) *Dest {
	var targets [prequalProbes]*Dest
	nt := 0
	s.mu.Lock()
	n := len(s.dests)
	if n == 0 {
		s.mu.Unlock()
		return nil
	}
	now := s.clock().UnixNano()
	for range prequalProbes {
		i := int32(s.rnd() % uint64(n))
		d := s.dests[i]
		if !d.Available() || has(targets[:nt], d) {
			continue
		}
		if s.prober == nil || s.filter != nil && !s.filter.Probes(d) {
			// Without probes a server's latency is only what it did in the
			// past; scaled by its connections in flight now (plus one), it
			// stands for what a new request would wait, as a probe's
			// fresh latency would. Unscaled, a server that was fast keeps
			// being chosen while it fills up (live p99 1.21x wlc; scaled,
			// 0.98x: bench/adaptive.sh).
			c := conns(d)
			s.insert(probeEntry{dest: i, rif: c, own: c, uses: s.reuse, lat: s.lat[i].val * float64(c+1), at: now})
			continue
		}
		targets[nt] = d
		nt++
	}
	s.expire(now)
	var d *Dest
	if b := s.choose(); b >= 0 {
		d = s.dests[s.pool[b].dest]
		s.consume(b)
	} else {
		d = s.fallback()
	}
	s.removeWorst()
	s.mu.Unlock()
	for _, t := range targets[:nt] {
		s.prober.Probe(t, s)
	}
	return d
}

// conns is the director's own connections to d.
func conns(d *Dest) int32 { return max(d.active.Load()+d.inactive.Load(), 0) }

// rifNow is the probe's RIF now: as probed, plus the change of this
// director's own connections since.
func (s *prequal) rifNow(e *probeEntry) int32 {
	return max(e.rif+conns(s.dests[e.dest])-e.own, 0)
}

func has(ds []*Dest, d *Dest) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// insert adds a probe, replacing the server's previous one, or the oldest
// when the pool is full, and records its RIF for the quantile.
func (s *prequal) insert(e probeEntry) {
	s.record(e.rif)
	old := -1
	for k := range s.pool[:s.n] {
		if s.pool[k].dest == e.dest {
			old = k
			break
		}
		if s.n == prequalPool && (old < 0 || s.pool[k].at < s.pool[old].at) {
			old = k
		}
	}
	if old < 0 || s.pool[old].dest != e.dest && s.n < prequalPool {
		old = s.n
		s.n++
	}
	s.pool[old] = e
}

// record adds rif to the history and its sorted copy.
func (s *prequal) record(rif int32) {
	h := s.sorted[:s.hn]
	if s.hn == prequalHistory {
		out := s.hist[s.hpos]
		k := 0
		for h[k] != out {
			k++
		}
		copy(h[k:], h[k+1:])
		h = h[:len(h)-1]
	} else {
		s.hn++
	}
	s.hist[s.hpos] = rif
	s.hpos = (s.hpos + 1) % prequalHistory
	k := len(h)
	for k > 0 && h[k-1] > rif {
		k--
	}
	h = h[:len(h)+1]
	copy(h[k+1:], h[k:])
	h[k] = rif
}

// threshold is the RIF above which a probe is hot.
func (s *prequal) threshold() int32 {
	if s.hn == 0 {
		return math.MaxInt32
	}
	k := int(math.Ceil(prequalQRIF*float64(s.hn))) - 1
	return s.sorted[max(k, 0)]
}

// expire drops probes past their age.
func (s *prequal) expire(now int64) {
	for k := 0; k < s.n; {
		if now-s.pool[k].at > prequalMaxAge {
			s.remove(k)
			continue
		}
		k++
	}
}

func (s *prequal) remove(k int) {
	s.n--
	s.pool[k] = s.pool[s.n]
}

// choose applies HCL to the probes of available servers and returns the
// winner's index in the pool, or -1.
func (s *prequal) choose() int {
	th := s.threshold()
	cold, hot := -1, -1
	var coldRIF, hotRIF int32
	var coldLat, hotLat float64
	for k := range s.pool[:s.n] {
		e := &s.pool[k]
		if !s.dests[e.dest].Available() {
			continue
		}
		rif := s.rifNow(e)
		lat := e.lat * float64(rif+1) / float64(e.rif+1)
		if rif <= th {
			if cold < 0 || lat < coldLat || lat == coldLat && rif < coldRIF {
				cold, coldRIF, coldLat = k, rif, lat
			}
		} else if hot < 0 || rif < hotRIF || rif == hotRIF && lat < hotLat {
			hot, hotRIF, hotLat = k, rif, lat
		}
	}
	if cold >= 0 {
		return cold
	}
	return hot
}

// consume accounts a pick of pool[k].
func (s *prequal) consume(k int) {
	e := &s.pool[k]
	if e.uses--; e.uses <= 0 {
		s.remove(k)
	}
}

// removeWorst drops the hottest probe, else the slowest.
func (s *prequal) removeWorst() {
	th := s.threshold()
	w, wr := -1, int32(0)
	for k := range s.pool[:s.n] {
		e := &s.pool[k]
		switch rif := s.rifNow(e); {
		case w < 0,
			rif > th && (wr <= th || rif > wr),
			rif <= th && wr <= th && e.lat > s.pool[w].lat:
			w, wr = k, rif
		}
	}
	if w >= 0 {
		s.remove(w)
	}
}

// fallback is the less loaded of two available servers drawn at random.
func (s *prequal) fallback() *Dest {
	n := len(s.dests)
	var pick [2]*Dest
	np := 0
	for try := 0; try < 8 && np < 2; try++ {
		d := s.dests[s.rnd()%uint64(n)]
		if d.Available() && (np == 0 || d != pick[0]) {
			pick[np] = d
			np++
		}
	}
	if np == 0 {
		start := int(s.rnd() % uint64(n))
		for o := range n {
			if d := s.dests[(start+o)%n]; d.Available() {
				return d
			}
		}
		return nil
	}
	if np == 1 {
		return pick[0]
	}
	a, b := pick[0], pick[1]
	la := uint64(max(a.ActiveConns()+a.InactiveConns(), 0))
	lb := uint64(max(b.ActiveConns()+b.InactiveConns(), 0))
	wa, wb := uint64(max(a.Weight(), 1)), uint64(max(b.Weight(), 1))
	if ratioLess(lb, wb, la, wa) {
		return b
	}
	return a
}
