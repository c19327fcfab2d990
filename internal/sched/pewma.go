package sched

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Peak EWMA (pewma) sends a new connection to the cheaper of two real
// servers drawn at random, a server's cost being its latency estimate times
// its connections plus one: Finagle's P2C PeakEwma balancer (also Linkerd's),
// for servers whose speed differs or changes (a noisy neighbour, a slow
// disk) behind a dataplane that measures latency (the proxy). govs's own,
// not an IPVS scheduler.
//
// Rule: draw two distinct servers uniformly among those with weight > 0 and
// not overloaded; cost = L x (conns + 1) / weight, conns being active +
// inactive (the director's connections in flight) and L the server's peak
// EWMA of latency; the lower cost wins, a tie goes to the first drawn. A
// server with no latency sample yet costs 0 while it has no connection (so a
// new server is tried at once, which measures it) and a penalty larger than
// any cost while it has some (one connection at a time until it answers), as
// Finagle does.
//
// Peak EWMA: a sample x taken td after the previous one first decays L by
// w = exp(-td/tau); if x is above the decayed L, L becomes x at once (a
// peak), else L = L x w + x x (1 - w). Between samples L keeps decaying
// towards 0 by the same law, so a server that was slow and has had no
// traffic since is tried again: quick to react to a slowdown, cautious in
// recovering. tau is 10 s, Finagle's default decayTime. Finagle also decays
// L whenever it reads it; here reads change nothing, so a sample's weight
// depends on the time since the previous sample and not on how often
// anybody picks.
//
// Samples: FirstByte signals; ConnectTime signals only when above L (a
// failed or slow connect is a peak, while a normal connect is far shorter
// than a response and would drag the average down). Duration is not used: a
// long connection is not a slow server. Without signals pewma is a power of
// two choices on connections.
//
// Options: Clock (for the decay), Rand. Pick is lock-free and allocation
// free; Observe takes a per-server lock.
type peakEWMA struct {
	tab   atomic.Pointer[pewmaTable]
	mu    sync.Mutex // serialises Update
	clock func() time.Time
	rnd   func() uint64
}

const (
	// pewmaTau is the decay time constant, Finagle's default decayTime.
	pewmaTau = float64(10 * time.Second)
	// pewmaPenalty is the cost of a server with connections and no
	// latency yet, Finagle's Long.MaxValue >> 16 in nanoseconds.
	pewmaPenalty = float64(math.MaxInt64 >> 16)
)

// pewmaTable is the servers of one Update; immutable once published.
type pewmaTable struct {
	dests []*Dest
	lat   []*peakLatency // by position
	pos   map[*Dest]int32
}

// peakLatency is one server's peak EWMA, in nanoseconds. Writers hold mu;
// readers load the two atomics without it (a torn pair only misjudges one
// pick's decay).
type peakLatency struct {
	mu    sync.Mutex
	val   atomic.Uint64 // float64 bits of L at stamp
	stamp atomic.Int64  // ns of the last sample
}

func init() {
	Register("pewma", func(o Options) (Scheduler, error) {
		s := &peakEWMA{clock: clockSource(o), rnd: randSource(o)}
		s.tab.Store(&pewmaTable{})
		return s, nil
	})
}

// at returns L decayed to now.
func (p *peakLatency) at(now int64) float64 {
	v := math.Float64frombits(p.val.Load())
	if v == 0 {
		return 0
	}
	if td := now - p.stamp.Load(); td > 0 {
		v *= math.Exp(-float64(td) / pewmaTau)
	}
	return v
}

// observe takes the sample x (ns) taken at now; peakOnly ignores a sample
// that is not a peak.
func (p *peakLatency) observe(x float64, now int64, peakOnly bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, st := math.Float64frombits(p.val.Load()), p.stamp.Load()
	w := 1.0
	if td := now - st; st != 0 && td > 0 {
		w = math.Exp(-float64(td) / pewmaTau)
	}
	switch cur := v * w; {
	case x > cur:
		v = x
	case peakOnly:
		return
	default:
		v = cur + x*(1-w)
	}
	p.val.Store(math.Float64bits(v))
	p.stamp.Store(max(now, st))
}

func (s *peakEWMA) Update(dests []*Dest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.tab.Load()
	t := &pewmaTable{dests: dests, lat: make([]*peakLatency, len(dests)), pos: positions(dests)}
	for i, d := range dests {
		if j, ok := old.pos[d]; ok {
			t.lat[i] = old.lat[j] // keep what was learnt of a server that stays
		} else if j, ok := t.pos[d]; ok && int(j) < i {
			t.lat[i] = t.lat[j]
		} else {
			t.lat[i] = new(peakLatency)
		}
	}
	s.tab.Store(t)
}

func (s *peakEWMA) Observe(d *Dest, sig Signal) {
	if sig.Kind != FirstByte && sig.Kind != ConnectTime {
		return
	}
	t := s.tab.Load()
	i, ok := t.pos[d]
	if !ok {
		return
	}
	t.lat[i].observe(float64(max(sig.Latency, 0)), signalTime(&sig, s.clock), sig.Kind == ConnectTime)
}

// cost is the cost of dests[i] at now.
func (t *pewmaTable) cost(i int, now int64) float64 {
	d := t.dests[i]
	conns := float64(max(d.ActiveConns(), 0) + max(d.InactiveConns(), 0))
	w := d.Weight()
	if w <= 0 { // quiesced since it was drawn
		return math.Inf(1)
	}
	l := t.lat[i].at(now)
	if l == 0 && conns > 0 {
		return pewmaPenalty + conns
	}
	return l * (conns + 1) / float64(w)
}

func (s *peakEWMA) Pick(*Key) *Dest {
	t := s.tab.Load()
	n := len(t.dests)
	if n == 0 {
		return nil
	}
	a, b := -1, -1
	// Draw pairs of distinct servers; a server that is not available is
	// drawn again, up to a few times, before a scan finds one.
	for try := 0; try < 4 && b < 0; try++ {
		r := s.rnd()
		i := int((r & (1<<32 - 1)) * uint64(n) >> 32)
		j := i
		if n > 1 {
			j = int((r >> 32) * uint64(n-1) >> 32)
			if j >= i {
				j++
			}
		}
		for _, k := range [2]int{i, j} {
			switch {
			case !t.dests[k].Available() || k == a:
			case a < 0:
				a = k
			case b < 0:
				b = k
			}
		}
	}
	if b < 0 {
		start := int(s.rnd() % uint64(n))
		for o := range n {
			k := (start + o) % n
			if k == a || !t.dests[k].Available() {
				continue
			}
			if a < 0 {
				a = k
				continue
			}
			b = k
			break
		}
		if a < 0 {
			return nil
		}
		if b < 0 {
			return t.dests[a]
		}
	}
	now := s.clock().UnixNano()
	if t.cost(b, now) < t.cost(a, now) {
		return t.dests[b]
	}
	return t.dests[a]
}
