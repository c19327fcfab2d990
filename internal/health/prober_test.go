package health

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

func TestProbeSignal(t *testing.T) {
	rtt := 300 * time.Microsecond
	for _, tc := range []struct {
		reply string
		load  float64
		lat   time.Duration
		ok    bool
	}{
		{"inflight:7 latency:3ms", 7, 3 * time.Millisecond, true},
		{"50% inflight:7", 7, rtt, true}, // inflight wins over the percentage
		{"75%", 25, rtt, true},           // hundredths of capacity
		{"25% maxconn:40", 30, rtt, true},
		{"0%", 100, rtt, true},
		{"150%", 0, rtt, true}, // above 100%: idle
		{"up", 0, 0, false},    // nothing about load
		{"latency:2ms", 0, 0, false},
	} {
		sig, ok := probeSignal(ParseAgent(tc.reply), rtt)
		if ok != tc.ok || ok && (sig.Kind != sched.Probe || sig.Load != tc.load || sig.Latency != tc.lat) {
			t.Errorf("%q: %+v %v, want load %v latency %v ok %v", tc.reply, sig, ok, tc.load, tc.lat, tc.ok)
		}
	}
}

// TestProbeAnswerAges: between replies, held-back probes are answered from
// the last one, aged by this director's connections since.
func TestProbeAnswerAges(t *testing.T) {
	d := sched.NewDest(netip.MustParseAddrPort("127.0.0.1:9"), 1)
	ans := probeAnswer{sig: sched.Signal{Kind: sched.Probe, Load: 30, Latency: 31 * time.Millisecond}, own: 0}
	d.Bind()
	d.Bind()
	if s := ans.now(d); s.Load != 32 || s.Latency != 33*time.Millisecond { // 31 x (32+1)/(30+1)
		t.Fatalf("answer aged by 2 connections: %+v, want 32 in flight, 33ms", s)
	}
}

// countSignals counts what it observes, without allocating.
type countSignals struct{ n atomic.Int64 }

func (c *countSignals) Observe(*sched.Dest, sched.Signal) { c.n.Add(1) }

// TestProberAllocations: Probes, and Probe held back by the rate bound
// (answered from the last reply), do not allocate: prequal calls them at
// each pick.
func TestProberAllocations(t *testing.T) {
	pool := NewAgentProbes()
	defer pool.Close()
	d := sched.NewDest(netip.MustParseAddrPort("127.0.0.1:9"), 1)
	var ps AgentProbe
	ps.target.Store(&probeTarget{addr: netip.MustParseAddrPort("127.0.0.1:1"), timeout: ProbeTimeout, ctx: t.Context(), pool: pool})
	ps.next.Store(probeNow() + int64(time.Hour)) // a probe in flight
	ps.last.Store(&probeAnswer{sig: sched.Signal{Kind: sched.Probe, Load: 3, Latency: time.Millisecond, At: time.Now()}, mono: probeNow()})
	var c countSignals
	allocs := testing.AllocsPerRun(1000, func() {
		if !ps.Probes() {
			t.Fatal("not probed")
		}
		ps.Probe(d, &c)
	})
	if allocs != 0 || c.n.Load() == 0 {
		t.Fatalf("%v allocations per Probes and Probe; %d answers", allocs, c.n.Load())
	}
}
