package sched

import (
	"math"
	"testing"
	"time"
)

// connsTo sets d's connections to a active ones.
func connsTo(d *Dest, a int) {
	for d.ActiveConns() > 0 {
		d.Unbind(true)
	}
	for d.InactiveConns() > 0 {
		d.Unbind(false)
	}
	setConns(d, a, 0)
}

// teach makes s learn the latency curve base + step x q of ds[only] from
// FirstByte signals, the other servers out (weight 0) meanwhile; q runs
// over 0..8 as this director's connections, which are left at 0.
func teach(s Scheduler, c *fakeClock, ds []*Dest, only int, base, step time.Duration) {
	for i, d := range ds {
		d.SetWeight(0)
		if i == only {
			d.SetWeight(1)
		}
	}
	s.Update(ds)
	for k := range 45 {
		q := k % 9
		connsTo(ds[only], q)
		if d := s.Pick(nil); d == ds[only] {
			lat := base + time.Duration(q)*step
			observe(s, d, FirstByte, lat, 0, c.t.Add(lat))
		}
		c.add(100 * time.Microsecond)
	}
	connsTo(ds[only], 0)
	for _, d := range ds {
		d.SetWeight(1)
	}
	s.Update(ds)
}

// TestPredictLearnsSpeed: a server four times as slow gets a connection only
// when the fast one has enough in flight that waiting there is longer.
func TestPredictLearnsSpeed(t *testing.T) {
	c := newClock()
	ds := dests(1, 1)
	s := must(t, "predict", adaptiveOpts(c, nil))
	s.Update(ds)
	teach(s, c, ds, 0, 10*time.Millisecond, 2500*time.Microsecond)
	teach(s, c, ds, 1, 40*time.Millisecond, 10*time.Millisecond)
	p := s.(*predict)
	if a, b := p.m[0].alpha, p.m[0].beta; math.Abs(a-10e6) > 1e5 || math.Abs(b-2.5e6) > 1e5 {
		t.Fatalf("fast server fit: alpha %.0f ns, beta %.0f ns, want 10 ms and 2.5 ms", a, b)
	}
	if got := s.Pick(nil); got != ds[0] {
		t.Fatalf("both idle: picked %s, want the fast A", name(ds, got))
	}
	// The fits are blended a little with the average model (predictPrior),
	// so the margins are wide.
	connsTo(ds[0], 9) // 10 + 2.5 x 9 = 32.5 ms < 40 ms
	if got := s.Pick(nil); got != ds[0] {
		t.Fatalf("A with 9 in flight: picked %s, want A", name(ds, got))
	}
	connsTo(ds[0], 15) // 47.5 ms > 40 ms
	if got := s.Pick(nil); got != ds[1] {
		t.Fatalf("A with 15 in flight: picked %s, want the slow B", name(ds, got))
	}
}

// TestPredictOthers: a probe that reports requests in flight from other
// directors counts, until it is too old.
func TestPredictOthers(t *testing.T) {
	c := newClock()
	ds := dests(1, 1)
	s := must(t, "predict", adaptiveOpts(c, nil))
	s.Update(ds)
	teach(s, c, ds, 0, 10*time.Millisecond, 2500*time.Microsecond)
	teach(s, c, ds, 1, 10*time.Millisecond, 2500*time.Microsecond)
	observe(s, ds[0], Probe, 10*time.Millisecond, 6, c.t) // six from other directors
	if got := s.Pick(nil); got != ds[1] {
		t.Fatalf("A busy with the others' requests: picked %s, want B", name(ds, got))
	}
	connsTo(ds[1], 7)
	if got := s.Pick(nil); got != ds[0] {
		t.Fatalf("B with 7 of ours, A with 6 of theirs: picked %s, want A", name(ds, got))
	}
	connsTo(ds[1], 2)
	c.add(2 * time.Second) // the probe of A is stale: A counts as idle
	if got := s.Pick(nil); got != ds[0] {
		t.Fatalf("after the probe aged: picked %s, want A", name(ds, got))
	}
}

// TestPredictFirstByte: a FirstByte is paired with the requests in flight
// its request met when it was sent, and a server that was slow looks average
// again once its samples are old, so that it is tried again.
func TestPredictFirstByte(t *testing.T) {
	c := newClock()
	ds := dests(1, 1)
	s := must(t, "predict", adaptiveOpts(c, nil))
	s.Update(ds)
	p := s.(*predict)
	// Each server alone in turn (the other's weight 0), so that both learn.
	for phase, only := range []int{1, 0} {
		ds[only].SetWeight(1)
		ds[1-only].SetWeight(0)
		s.Update(ds)
		for i := range 100 {
			connsTo(ds[only], i%5)
			d := s.Pick(nil)
			if d != ds[only] {
				t.Fatalf("phase %d: picked %s", phase, name(ds, d))
			}
			q := float64(conns(d))
			lat := 10*time.Millisecond + time.Duration(q*float64(2*time.Millisecond))
			if d == ds[1] {
				lat *= 4
			}
			observe(s, d, FirstByte, lat, 0, c.t.Add(lat))
			c.add(time.Millisecond)
		}
	}
	if !p.m[0].fitted || !p.m[1].fitted {
		t.Fatal("FirstByte samples were not paired with their picks")
	}
	now := c.t.UnixNano()
	if a, b := p.cost(0, 0, now), p.cost(1, 0, now); b < 3*a {
		t.Fatalf("idle costs: A %.1f ms, B %.1f ms: B should be about 4x", a/1e6, b/1e6)
	}
	c.add(10 * time.Second)
	now = c.t.UnixNano()
	if a, b := p.cost(0, 0, now), p.cost(1, 0, now); b > 1.01*a {
		t.Fatalf("10 s later: A %.1f ms, B %.1f ms, want both the average", a/1e6, b/1e6)
	}
}
