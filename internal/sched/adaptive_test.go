package sched

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The adaptive schedulers (pewma, prequal, adaptive-weights) on hand-made
// situations, with a fake clock and a fixed random source.

func adaptiveOpts(c *fakeClock, p Prober) Options {
	rng := rand.New(rand.NewPCG(7, 7))
	return Options{Clock: c.now, Rand: rng.Uint64, Prober: p}
}

func observe(s Scheduler, d *Dest, k SignalKind, lat time.Duration, load float64, at time.Time) {
	s.(SignalObserver).Observe(d, Signal{Kind: k, Latency: lat, Load: load, At: at})
}

func TestSignalObservers(t *testing.T) {
	for _, n := range Names() {
		_, ok := must(t, n, Options{}).(SignalObserver)
		if want := n == "pewma" || n == "prequal" || n == "adaptive-weights" || n == "predict"; ok != want {
			t.Errorf("%s implements SignalObserver: %v, want %v", n, ok, want)
		}
	}
}

func TestPeakEWMALatency(t *testing.T) {
	var p peakLatency
	t0 := int64(1e18)
	ms := float64(time.Millisecond)
	p.observe(10*ms, t0, false)
	if got := p.at(t0); got != 10*ms {
		t.Fatalf("first sample: L = %v, want 10ms", got/ms)
	}
	// A peak is taken at once.
	p.observe(30*ms, t0+int64(time.Second), false)
	if got := p.at(t0 + int64(time.Second)); got != 30*ms {
		t.Fatalf("after a peak: L = %v ms, want 30", got/ms)
	}
	// A lower sample a second later is blended with w = exp(-1/10).
	w := math.Exp(-0.1)
	p.observe(10*ms, t0+2*int64(time.Second), false)
	want := 30*ms*w + 10*ms*(1-w)
	if got := p.at(t0 + 2*int64(time.Second)); math.Abs(got-want) > 1 {
		t.Fatalf("after a low sample: L = %v ms, want %v", got/ms, want/ms)
	}
	// Between samples L decays towards 0 with tau = 10 s; reading changes
	// nothing.
	later := t0 + 12*int64(time.Second)
	if got := p.at(later); math.Abs(got-want*math.Exp(-1)) > 1 {
		t.Fatalf("10 s later: L = %v ms, want %v", got/ms, want*math.Exp(-1)/ms)
	}
	// A peak-only sample (a connect) below L is ignored; above, it is a peak.
	p.observe(1*ms, later, true)
	if got := p.at(later); math.Abs(got-want*math.Exp(-1)) > 1 {
		t.Fatalf("a short connect changed L to %v ms", got/ms)
	}
	p.observe(200*ms, later, true)
	if got := p.at(later); got != 200*ms {
		t.Fatalf("a failed connect: L = %v ms, want 200", got/ms)
	}
}

func TestPeakEWMAPick(t *testing.T) {
	c := newClock()
	ds := dests(1, 1)
	s := must(t, "pewma", adaptiveOpts(c, nil))
	s.Update(ds)
	a, b := ds[0], ds[1]
	// No latency yet and no connection: both cost 0, the first drawn wins,
	// whichever it is; with connections and no latency, a penalty.
	setConns(a, 1, 0)
	for range 10 {
		if got := s.Pick(nil); got != b {
			t.Fatalf("picked %s, want B (A has a connection and no latency)", name(ds, got))
		}
	}
	// Cost = L x (conns + 1) / weight: A 10ms x 2 = 20 against B 15ms x 1.
	observe(s, a, FirstByte, 10*time.Millisecond, 0, c.t)
	observe(s, b, FirstByte, 15*time.Millisecond, 0, c.t)
	if got := s.Pick(nil); got != b {
		t.Fatalf("picked %s, want B (15 < 20)", name(ds, got))
	}
	// Weight divides the cost: B at weight 3 with four connections costs
	// 15 x 5 / 3 = 25, more than A's 20.
	b.SetWeight(3)
	s.Update(ds)
	setConns(b, 4, 0)
	if got := s.Pick(nil); got != a {
		t.Fatalf("picked %s, want A (20 < 25)", name(ds, got))
	}
	// Duration is not a latency sample.
	observe(s, a, Duration, time.Hour, 0, c.t)
	if got := s.Pick(nil); got != a {
		t.Fatalf("a long connection made A look slow")
	}
	// A quiesced server is never drawn.
	a.SetWeight(0)
	s.Update(ds)
	for range 10 {
		if got := s.Pick(nil); got != b {
			t.Fatalf("picked %s with A at weight 0", name(ds, got))
		}
	}
}

// recorder is a Prober that keeps the probes asked of it.
type recorder struct {
	mu     sync.Mutex
	probes []*Dest
	reply  SignalObserver
}

func (r *recorder) Probe(d *Dest, reply SignalObserver) {
	r.mu.Lock()
	r.probes = append(r.probes, d)
	r.reply = reply
	r.mu.Unlock()
}

func TestPrequalHotCold(t *testing.T) {
	c := newClock()
	rec := &recorder{}
	ds := dests(1, 1, 1, 1)
	s := must(t, "prequal", adaptiveOpts(c, rec))
	s.Update(ds)
	probe := func(d *Dest, rif float64, lat time.Duration) {
		observe(s, d, Probe, lat, rif, c.t)
	}
	// RIF history 0..9 (10 values): the 0.6 quantile is the 6th, 5; a
	// probe above 5 is hot.
	for i := range 10 {
		s.(*prequal).record(int32(i))
	}
	// A: cold and slow; B: hot and fast; C: cold and fastest of the cold.
	probe(ds[0], 1, 30*time.Millisecond)
	probe(ds[1], 9, 5*time.Millisecond)
	probe(ds[2], 4, 20*time.Millisecond)
	if got := s.Pick(nil); got != ds[2] {
		t.Fatalf("picked %s, want C: the cold probe with the lowest latency", name(ds, got))
	}
	if len(rec.probes) == 0 || rec.reply != s.(SignalObserver) {
		t.Fatalf("no probe sent, or the answers would not come back to the scheduler")
	}
	// Every probe hot: the lowest RIF wins, whatever its latency.
	p := s.(*prequal)
	p.n = 0
	probe(ds[0], 8, 50*time.Millisecond)
	probe(ds[1], 7, 90*time.Millisecond)
	probe(ds[3], 9, 1*time.Millisecond)
	p.mu.Lock()
	for range prequalHistory {
		p.record(0) // every recorded RIF 0: all probes hot
	}
	k := p.choose()
	p.mu.Unlock()
	if got := ds[p.pool[k].dest]; got != ds[1] {
		t.Fatalf("all hot: chose %s, want B (lowest RIF)", name(ds, got))
	}
}

func TestPrequalAging(t *testing.T) {
	c := newClock()
	ds := dests(1, 1)
	s := must(t, "prequal", adaptiveOpts(c, &recorder{}))
	s.Update(ds)
	p := s.(*prequal)
	for range 10 {
		p.record(5) // probes at RIF 0 to 2 stay cold
	}
	observe(s, ds[0], Probe, 10*time.Millisecond, 0, c.t)
	observe(s, ds[1], Probe, 12*time.Millisecond, 0, c.t)
	// The director's own connections to A since the probe raise its RIF
	// and, in proportion, its latency: 10 x 3 > 12.
	setConns(ds[0], 2, 0)
	if got := s.Pick(nil); got != ds[1] {
		t.Fatalf("picked %s, want B: A has two more connections since its probe", name(ds, got))
	}
	// Probes older than a second are dropped; with none left, the less
	// loaded of two draws is picked.
	c.add(1100 * time.Millisecond)
	setConns(ds[1], 5, 0)
	if got := s.Pick(nil); got != ds[0] || p.n != 0 {
		t.Fatalf("picked %s with %d probes, want A from an empty pool", name(ds, got), p.n)
	}
	// Reuse budget: the cap for 16 servers or fewer, 2 for a thousand.
	if got := reuseBudget(16); got != prequalMaxReuse {
		t.Errorf("reuseBudget(16) = %d, want %d", got, prequalMaxReuse)
	}
	if got := reuseBudget(1000); got != 2 {
		t.Errorf("reuseBudget(1000) = %d, want 2", got)
	}
}

func TestPrequalPassive(t *testing.T) {
	c := newClock()
	ds := dests(1, 1, 1)
	s := must(t, "prequal", adaptiveOpts(c, nil))
	s.Update(ds)
	// Without a Prober, probes are read from the director's counts and
	// the FirstByte latency: C is slow, A busy, B is the choice.
	observe(s, ds[0], FirstByte, 10*time.Millisecond, 0, c.t)
	observe(s, ds[1], FirstByte, 10*time.Millisecond, 0, c.t)
	observe(s, ds[2], FirstByte, 80*time.Millisecond, 0, c.t)
	setConns(ds[0], 3, 0)
	counts := map[*Dest]int{}
	for range 30 {
		counts[s.Pick(nil)]++
	}
	if counts[ds[1]] < 20 {
		t.Fatalf("picks A %d, B %d, C %d: want mostly B", counts[ds[0]], counts[ds[1]], counts[ds[2]])
	}
}

// filterProber probes only the servers in probed, recording the probes.
type filterProber struct {
	recorder
	probed map[*Dest]bool
}

func (f *filterProber) Probes(d *Dest) bool { return f.probed[d] }

func TestPrequalProbeFilter(t *testing.T) {
	c := newClock()
	ds := dests(1, 1, 1)
	f := &filterProber{probed: map[*Dest]bool{ds[0]: true}}
	s := must(t, "prequal", adaptiveOpts(c, f))
	s.Update(ds)
	p := s.(*prequal)
	observe(s, ds[1], FirstByte, 10*time.Millisecond, 0, c.t)
	observe(s, ds[2], FirstByte, 40*time.Millisecond, 0, c.t)
	// Only A is probed through the Prober; B and C are answered
	// passively, as without a Prober: their probes enter the pool with
	// their FirstByte latency.
	passive := map[*Dest]float64{}
	for range 50 {
		s.Pick(nil)
		for _, e := range p.pool[:p.n] {
			passive[ds[e.dest]] = e.lat
		}
	}
	for _, d := range f.probes {
		if d != ds[0] {
			t.Fatalf("probe sent to %s, which the filter declines", name(ds, d))
		}
	}
	if len(f.probes) == 0 {
		t.Fatal("A was never probed")
	}
	if _, ok := passive[ds[0]]; ok {
		t.Fatal("A, which is probed, got a passive probe")
	}
	// (C's, the slowest, is the worst probe, dropped by the pick that
	// made it.)
	if passive[ds[1]] != float64(10*time.Millisecond) {
		t.Fatalf("B's passive probe: %v", passive[ds[1]])
	}
	// A's answer enters the pool; with A cold and faster, it is chosen.
	for range prequalHistory {
		p.record(3)
	}
	observe(s, ds[0], Probe, time.Millisecond, 1, c.t)
	if got := s.Pick(nil); got != ds[0] {
		t.Fatalf("picked %s, want A: its probe is cold and the fastest", name(ds, got))
	}
}

func TestAdaptiveWeightsLatency(t *testing.T) {
	c := newClock()
	ds := dests(1, 1, 1)
	s := must(t, "adaptive-weights", adaptiveOpts(c, nil))
	s.Update(ds)
	a := s.(*adaptiveWeights)
	// C answers four times slower than the median: its factor falls at
	// once to (1.1 x 10 / 40)^2.
	for i, l := range []time.Duration{10, 10, 40} {
		observe(s, ds[i], FirstByte, l*time.Millisecond, 0, c.t)
	}
	c.add(time.Second) // the loop runs at the first signal after its interval
	observe(s, ds[0], FirstByte, 10*time.Millisecond, 0, c.t)
	want := int64(math.Round(math.Pow(1.1*10/40, 2) * adaptScale))
	if got := a.stats[ds[2]].factor; got != want {
		t.Fatalf("C's factor = %d/1024, want %d", got, want)
	}
	if a.stats[ds[0]].factor != adaptScale || a.stats[ds[1]].factor != adaptScale {
		t.Fatalf("A and B lost weight")
	}
	// wlc would send the next connection to C (1 active against 4); with
	// C's weight cut, A gets it.
	setConns(ds[0], 4, 0)
	setConns(ds[1], 4, 0)
	setConns(ds[2], 1, 0)
	if got := s.Pick(nil); got != ds[0] {
		t.Fatalf("picked %s, want A", name(ds, got))
	}
	// C recovers: the factor climbs half way each interval.
	for step := range 3 {
		c.add(time.Second)
		for _, i := range []int{2, 0, 1} {
			observe(s, ds[i], FirstByte, 10*time.Millisecond, 0, c.t)
		}
		f := a.stats[ds[2]].factor
		if f >= adaptScale && step < 2 || f <= want {
			t.Fatalf("step %d: C's factor %d/1024, want between %d and 1024", step, f, want)
		}
	}
	// Noise within 10% of the median changes nothing.
	c.add(time.Minute)
	for i, l := range []time.Duration{100, 105, 109} {
		observe(s, ds[i], FirstByte, l*time.Millisecond, 0, c.t)
	}
	c.add(time.Second)
	observe(s, ds[0], FirstByte, 100*time.Millisecond, 0, c.t)
	for i := range ds {
		if f := a.stats[ds[i]].factor; f < adaptScale/2 {
			t.Fatalf("%s's factor %d/1024 after small differences", name(ds, ds[i]), f)
		}
	}
}

func TestAdaptiveWeightsKernelSignals(t *testing.T) {
	c := newClock()
	ds := dests(2, 2, 2)
	s := must(t, "adaptive-weights", adaptiveOpts(c, nil))
	s.Update(ds)
	a := s.(*adaptiveWeights)
	// No per-connection latency: health-check latency and agent load
	// drive the loop. A reports 90% load against a median of 30%: its
	// headroom 0.1 against 0.7 gives 1.1 x 0.1 / 0.7.
	for i, l := range []float64{0.9, 0.3, 0.3} {
		observe(s, ds[i], AgentLoad, 0, l, c.t)
		observe(s, ds[i], HealthLatency, 2*time.Millisecond, 0, c.t)
	}
	c.add(time.Second)
	observe(s, ds[0], HealthLatency, 2*time.Millisecond, 0, c.t)
	want := int64(math.Round(1.1 * 0.1 / 0.7 * adaptScale))
	if got := a.stats[ds[0]].factor; math.Abs(float64(got-want)) > 2 {
		t.Fatalf("A's factor = %d/1024, want about %d", got, want)
	}
	// The factor survives an Update that keeps A; a server that leaves
	// and comes back starts again at 1.
	s.Update(ds)
	if a.stats[ds[0]].factor == adaptScale {
		t.Fatal("Update forgot A's factor")
	}
	s.Update(ds[1:])
	s.Update(ds)
	if a.stats[ds[0]].factor != adaptScale {
		t.Fatal("A came back with an old factor")
	}
}

// TestAdaptiveAllocations checks that Pick and Observe do not allocate.
func TestAdaptiveAllocations(t *testing.T) {
	for _, n := range []string{"pewma", "prequal", "adaptive-weights", "predict"} {
		c := newClock()
		ds := benchServers(100)
		s := must(t, n, adaptiveOpts(c, &nopProber{}))
		s.Update(ds)
		o := s.(SignalObserver)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			d := ds[i%len(ds)]
			i++
			o.Observe(d, Signal{Kind: FirstByte, Latency: time.Duration(i%50) * time.Millisecond})
			o.Observe(d, Signal{Kind: Probe, Latency: time.Millisecond, Load: float64(i % 7)})
			o.Observe(d, Signal{Kind: AgentLoad, Load: 0.5})
			c.add(time.Millisecond)
			if s.Pick(nil) == nil {
				t.Fatal("no pick")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Observe and Pick", n, allocs)
		}
	}
}

type nopProber struct{}

func (nopProber) Probe(*Dest, SignalObserver) {}

// echoProber answers each probe at once, with the director's own count.
type echoProber struct{}

func (echoProber) Probe(d *Dest, reply SignalObserver) {
	reply.Observe(d, Signal{Kind: Probe, Latency: 5 * time.Millisecond, Load: float64(d.ActiveConns())})
}

// TestConcurrentSignals runs Observe, Pick, connection churn and Update at
// once; run it with -race.
func TestConcurrentSignals(t *testing.T) {
	for _, n := range []string{"pewma", "prequal", "adaptive-weights", "predict"} {
		t.Run(n, func(t *testing.T) {
			t.Parallel()
			ds := dests(3, 1, 2, 0, 5, 1, 1, 4)
			var rec recorder
			s := must(t, n, Options{Prober: &rec})
			s.Update(ds)
			o := s.(SignalObserver)
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					kinds := [...]SignalKind{ConnectTime, FirstByte, Duration, AgentLoad, HealthLatency, Probe}
					for i := range 3000 {
						d := s.Pick(nil)
						if d == nil || !d.Bind() {
							continue
						}
						d.Activate()
						o.Observe(d, Signal{Kind: kinds[(g+i)%len(kinds)], Latency: time.Duration(i%20) * time.Millisecond, Load: float64(i % 5)})
						d.Unbind(true)
					}
				}()
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for range 200 {
				ds[rng.IntN(len(ds))].SetWeight(rng.IntN(5))
				sub := append([]*Dest(nil), ds[:1+rng.IntN(len(ds))]...)
				s.Update(sub)
				runtime.Gosched()
			}
			wg.Wait()
			s.Update(nil)
		})
	}
}

// BenchmarkAdaptive measures Pick of the adaptive schedulers once they have
// learnt something, and Observe, at 10, 100 and 1,000 servers.
func BenchmarkAdaptive(b *testing.B) {
	for _, n := range []string{"pewma", "prequal", "adaptive-weights", "predict"} {
		for _, size := range []int{10, 100, 1000} {
			c := newClock()
			ds := benchServers(size)
			s, _ := New(n, adaptiveOpts(c, echoProber{}))
			s.Update(ds)
			o := s.(SignalObserver)
			for i, d := range ds {
				o.Observe(d, Signal{Kind: FirstByte, Latency: time.Duration(5+i%20) * time.Millisecond, At: c.t})
				o.Observe(d, Signal{Kind: Probe, Latency: time.Duration(5+i%20) * time.Millisecond, Load: float64(i % 9), At: c.t})
			}
			b.Run(fmt.Sprintf("Pick/%s/%d", n, size), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if s.Pick(nil) == nil {
						b.Fatal("no pick")
					}
				}
			})
			b.Run(fmt.Sprintf("Observe/%s/%d", n, size), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					o.Observe(ds[i%size], Signal{Kind: FirstByte, Latency: time.Duration(i%30) * time.Millisecond, At: c.t})
					i++
				}
			})
		}
	}
}
