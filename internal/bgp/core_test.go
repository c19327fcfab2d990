package bgp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	vipA = netip.MustParsePrefix("192.0.2.10/32")
	vipB = netip.MustParsePrefix("2001:db8::10/128")
)

func testDamping() Damping {
	return Damping{AnnounceDelay: 2 * time.Second, HalfLife: 30 * time.Second, Suppress: 3, Reuse: 1}
}

// clock is a fake clock for the pure core.
type clock struct{ t time.Time }

func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func in(running bool, vips ...VIP) Input { return Input{Running: running, Synced: true, VIPs: vips} }

// started steps c through the initial announce delay with vips healthy.
func started(t *testing.T, c *Core, clk *clock, vips ...VIP) {
	t.Helper()
	c.Step(clk.t, in(true, vips...))
	if d := c.Step(clk.add(testDamping().AnnounceDelay), in(true, vips...)); len(d.Announce) == 0 {
		t.Fatalf("not announced after the initial delay: %+v", d)
	}
}

func prefixes(rs []Route) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range rs {
		out = append(out, r.Prefix)
	}
	return out
}

func TestCoreAnnouncesAfterDelayAndWithdrawsAtOnce(t *testing.T) {
	c := NewCore(testDamping())
	clk := &clock{time.Unix(1000, 0)}
	// Not running yet: nothing.
	if d := c.Step(clk.t, in(false, VIP{Prefix: vipA, Up: true})); len(d.Announce)+len(d.Withdraw) != 0 {
		t.Fatalf("before running: %+v", d)
	}
	// Running: vipA healthy, but first the announce delay (the director's
	// first health checks).
	d := c.Step(clk.add(time.Millisecond), in(true, VIP{Prefix: vipA, Up: true}, VIP{Prefix: vipB, Up: false}))
	if len(d.Announce) != 0 || !d.Next.Equal(clk.t.Add(2*time.Second)) {
		t.Fatalf("announced without the delay: %+v", d)
	}
	d = c.Step(clk.add(2*time.Second), in(true, VIP{Prefix: vipA, Up: true}, VIP{Prefix: vipB, Up: false}))
	if !slices.Equal(prefixes(d.Announce), []netip.Prefix{vipA}) || len(d.Withdraw) != 0 {
		t.Fatalf("first announce: %+v", d)
	}
	// Quorum lost: withdrawn in the same step.
	d = c.Step(clk.add(time.Second), in(true, VIP{Prefix: vipA, Up: false}, VIP{Prefix: vipB, Up: false}))
	if !slices.Equal(d.Withdraw, []netip.Prefix{vipA}) {
		t.Fatalf("withdraw at quorum loss: %+v", d)
	}
	// A fault withdraws too.
	c2 := NewCore(testDamping())
	started(t, c2, clk, VIP{Prefix: vipA, Up: true})
	if d := c2.Step(clk.t, in(true, VIP{Prefix: vipA, Up: true, Fault: true})); !slices.Equal(d.Withdraw, []netip.Prefix{vipA}) {
		t.Fatalf("withdraw on fault: %+v", d)
	}
	// Not synced: not announced.
	c3 := NewCore(testDamping())
	if d := c3.Step(clk.t, Input{Running: true, Synced: false, VIPs: []VIP{{Prefix: vipA, Up: true}}}); len(d.Announce) != 0 {
		t.Fatalf("announced before synced: %+v", d)
	}
}

func TestCoreReannouncesAfterDelay(t *testing.T) {
	c := NewCore(testDamping())
	clk := &clock{time.Unix(1000, 0)}
	started(t, c, clk, VIP{Prefix: vipA, Up: true})
	c.Step(clk.add(time.Second), in(true, VIP{Prefix: vipA, Up: false}))
	d := c.Step(clk.add(time.Second), in(true, VIP{Prefix: vipA, Up: true}))
	if len(d.Announce) != 0 || !d.Next.Equal(clk.t.Add(2*time.Second)) {
		t.Fatalf("healthy again: want a wait of 2s, got %+v", d)
	}
	// A break in the healthy stretch restarts the delay.
	c.Step(clk.add(time.Second), in(true, VIP{Prefix: vipA, Up: false}))
	if d := c.Step(clk.add(500*time.Millisecond), in(true, VIP{Prefix: vipA, Up: true})); len(d.Announce) != 0 {
		t.Fatalf("announced during the delay: %+v", d)
	}
	if d := c.Step(clk.add(1999*time.Millisecond), in(true, VIP{Prefix: vipA, Up: true})); len(d.Announce) != 0 {
		t.Fatalf("announced 1ms early: %+v", d)
	}
	d = c.Step(clk.add(time.Millisecond), in(true, VIP{Prefix: vipA, Up: true}))
	if !slices.Equal(prefixes(d.Announce), []netip.Prefix{vipA}) {
		t.Fatalf("not announced after the delay: %+v", d)
	}
}

func TestCoreSuppressesFlappingVIP(t *testing.T) {
	dm := testDamping()
	c := NewCore(dm)
	clk := &clock{time.Unix(1000, 0)}
	up := func(ok bool) Decision { return c.Step(clk.t, in(true, VIP{Prefix: vipA, Up: ok})) }
	started(t, c, clk, VIP{Prefix: vipA, Up: true})
	// A flap every 4s: the decayed penalty after three is 1 + 2^(-4/30) +
	// 2^(-8/30) ≈ 2.74, below 3, so each is re-announced after the delay.
	for i := range 3 {
		clk.add(time.Second)
		if d := up(false); len(d.Withdraw) != 1 {
			t.Fatalf("flap %d: not withdrawn: %+v", i, d)
		}
		clk.add(time.Second)
		up(true)
		clk.add(dm.AnnounceDelay)
		if d := up(true); len(d.Announce) != 1 {
			t.Fatalf("flap %d: not re-announced: %+v", i, d)
		}
	}
	// The fourth brings it to about 3.5: suppressed.
	clk.add(time.Second)
	d := up(false)
	if st := c.Status(clk.t)[0]; !st.Suppressed || st.Flaps != 4 || len(d.Withdraw) != 1 {
		t.Fatalf("not suppressed after four flaps: %+v %+v", st, d)
	}
	// Healthy, but held back: Next says when the penalty reaches Reuse.
	clk.add(time.Second)
	d = up(true)
	if len(d.Announce) != 0 || d.Next.IsZero() {
		t.Fatalf("suppressed VIP announced: %+v", d)
	}
	wait := d.Next.Sub(clk.t)
	// From a penalty of about 3.4 to 1 with a 30s half-life: about 53s.
	if wait < 45*time.Second || wait > 60*time.Second {
		t.Fatalf("suppression wait %v, want about 53s", wait)
	}
	clk.add(wait - 2*time.Second)
	if d := up(true); len(d.Announce) != 0 {
		t.Fatalf("announced before reuse: %+v", d)
	}
	clk.add(2 * time.Second)
	if d := up(true); !slices.Equal(prefixes(d.Announce), []netip.Prefix{vipA}) {
		t.Fatalf("not announced at reuse: %+v %+v", d, c.Status(clk.t))
	}
}

func TestCoreStopIsNotAFlap(t *testing.T) {
	c := NewCore(testDamping())
	clk := &clock{time.Unix(1000, 0)}
	started(t, c, clk, VIP{Prefix: vipA, Up: true})
	d := c.Step(clk.add(time.Second), in(false, VIP{Prefix: vipA, Up: true}))
	if !slices.Equal(d.Withdraw, []netip.Prefix{vipA}) {
		t.Fatalf("stop did not withdraw: %+v", d)
	}
	if st := c.Status(clk.t)[0]; st.Flaps != 0 || st.Penalty != 0 {
		t.Fatalf("stop counted as a flap: %+v", st)
	}
}

func TestCoreAttributeChangeAndRemovedVIP(t *testing.T) {
	c := NewCore(testDamping())
	clk := &clock{time.Unix(1000, 0)}
	started(t, c, clk, VIP{Prefix: vipA, Up: true}, VIP{Prefix: vipB, Up: true})
	med := uint32(50)
	d := c.Step(clk.t, in(true, VIP{Prefix: vipA, Up: true, Attrs: Attrs{MED: &med, Prepend: 2}}, VIP{Prefix: vipB, Up: true}))
	if len(d.Announce) != 1 || d.Announce[0].Attrs.Prepend != 2 || *d.Announce[0].Attrs.MED != 50 {
		t.Fatalf("attribute change: %+v", d)
	}
	d = c.Step(clk.t, in(true, VIP{Prefix: vipA, Up: true, Attrs: Attrs{MED: &med, Prepend: 2}}))
	if !slices.Equal(d.Withdraw, []netip.Prefix{vipB}) || len(c.Status(clk.t)) != 1 {
		t.Fatalf("removed VIP: %+v", d)
	}
}
