package nft

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/sched"
)

// reals are real servers in service at weights, as a snapshot has them.
func reals(weights ...int) []desired.RealServer {
	var out []desired.RealServer
	for i, w := range weights {
		a := netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:80", i+1))
		out = append(out, desired.RealServer{Addr: a, Weight: w, LastWeight: w, InSet: true, Available: w > 0})
	}
	return out
}

func names(slots []netip.AddrPort) string {
	s := ""
	for _, a := range slots {
		if !a.IsValid() {
			s += "-"
			continue
		}
		s += fmt.Sprint(a.Addr().As4()[3])
	}
	return s
}

// One period of the kernel map is IPVS's wrr sequence: interleaved, each
// server weight/gcd times.
func TestWRRPeriod(t *testing.T) {
	for _, tc := range []struct {
		weights []int
		want    string
	}{
		{[]int{1, 1, 1}, "123"},
		{[]int{4, 3, 2}, "112123123"},
		{[]int{2, 4}, "212"},
		{[]int{5}, "1"},
	} {
		got, ok := wrrPeriod(reals(tc.weights...))
		if !ok || names(got) != tc.want {
			t.Errorf("wrr %v = %q, %v; want %q", tc.weights, names(got), ok, tc.want)
		}
	}
	if _, ok := wrrPeriod(reals(65535, 65534)); ok {
		t.Error("a period longer than maxSlots must go through the queue")
	}
}

// sh's buckets follow ip_vs_sh_reassign; an unavailable server keeps its
// buckets empty (its clients' new flows are dropped, as without sh-fallback).
func TestSHTable(t *testing.T) {
	rs := reals(2, 1, 0)
	got := names(shTable(rs))
	if len(got) != shBuckets || got[:8] != "112-112-" {
		t.Fatalf("sh table starts %q, want 112-112-", got[:8])
	}
}

func TestSlotsSkipUnavailable(t *testing.T) {
	rs := reals(1, 0, 1)
	got, _ := slotsFor(modeInc, "rr", rs)
	if names(got) != "13" {
		t.Fatalf("rr slots %q, want 13", names(got))
	}
}

// A queued packet's flow is read from its IP header.
func TestFlowOf(t *testing.T) {
	p := make([]byte, 40)
	p[0], p[9] = 0x45, 6
	copy(p[12:], []byte{10, 0, 0, 2, 10, 0, 0, 100})
	copy(p[20:], []byte{0x30, 0x39, 0x1f, 0x90})
	proto, client, dst, ok := flowOf(p)
	if !ok || proto != 6 || client.String() != "10.0.0.2:12345" || dst.String() != "10.0.0.100:8080" {
		t.Fatalf("flowOf = %d %v %v %v", proto, client, dst, ok)
	}
	if _, _, _, ok := flowOf(p[:21]); ok {
		t.Fatal("a truncated packet must not parse")
	}
}

func TestStatsInterval(t *testing.T) {
	for _, tc := range []struct{ base, dump, want time.Duration }{
		{time.Second, 5 * time.Millisecond, time.Second},
		{time.Second, 1500 * time.Millisecond, 15 * time.Second},
	} {
		if got := statsInterval(tc.base, tc.dump); got != tc.want {
			t.Errorf("statsInterval(%v, %v) = %v, want %v", tc.base, tc.dump, got, tc.want)
		}
	}
}

// stubDataplane lets a director run services without a kernel, for the
// plans to be built from.
type stubDataplane struct{ director.NullDataplane }

// planOf runs yaml's services in a director and returns their plans.
func planOf(t *testing.T, yaml string) []*plan {
	t.Helper()
	cfg, err := config.Parse("plan.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := director.New(log, stubDataplane{})
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(0) })
	plans, _, err := New(log, Options{}).plan(d.Snapshot().Services, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return plans
}

func planYAML(sched, extra string, weights ...int) string {
	s := fmt.Sprintf("virtual_servers:\n  - address: 10.9.0.100:80\n    forwarding: nat\n    scheduler: %s\n%s    real_servers:\n",
		sched, extra)
	for i, w := range weights {
		s += fmt.Sprintf("      - {address: \"10.9.1.%d:80\", weight: %d}\n", i+1, w)
	}
	return s
}

// mh runs in the kernel, flags included: its map is sched.MaglevTable's
// table (the mh scheduler's algorithm) over the real servers by weight,
// looked up by the client's address and, with mh-port, its port.
func TestPlanMaglev(t *testing.T) {
	p := planOf(t, planYAML("mh", "    scheduler_flags: [mh-port, mh-fallback]\n", 1, 2, 1))[0]
	if p.mode != modeMaglev || !p.port || len(p.slots) != MaglevTableSize || len(p.marks) != 0 {
		t.Fatalf("plan: mode %v port %v slots %d marks %v", p.mode, p.port, len(p.slots), p.marks)
	}
	var servers []sched.MaglevServer
	for i, w := range []int{1, 2, 1} {
		servers = append(servers, sched.MaglevServer{Addr: netip.MustParseAddrPort(fmt.Sprintf("10.9.1.%d:80", i+1)), Weight: w})
	}
	count := map[netip.AddrPort]int{}
	for pos, i := range sched.MaglevTable(servers, MaglevTableSize) {
		if p.slots[pos] != servers[i].Addr {
			t.Fatalf("slot %d is %v, the Maglev table says %v", pos, p.slots[pos], servers[i].Addr)
		}
		count[p.slots[pos]]++
	}
	if c := count[servers[1].Addr]; c < MaglevTableSize/2-10 || c > MaglevTableSize/2+10 {
		t.Fatalf("weight 2 of 4 has %d of %d slots", c, MaglevTableSize)
	}
	if p := planOf(t, planYAML("mh", "", 1))[0]; p.mode != modeMaglev || p.port {
		t.Fatalf("mh without flags: mode %v port %v", p.mode, p.port)
	}
}

// What the kernel cannot run goes through the queue, mh included.
func TestPlanQueueCases(t *testing.T) {
	for _, tc := range []struct{ sched, extra string }{
		{"mh", "    persistence_timeout: 60s\n"},
		{"sh", "    scheduler_flags: [sh-port]\n"},
		{"wlc", ""},
	} {
		if p := planOf(t, planYAML(tc.sched, tc.extra, 1, 1))[0]; p.mode != modeQueue {
			t.Errorf("%s %q: mode %v, want the queue", tc.sched, tc.extra, p.mode)
		}
	}
	yaml := "virtual_servers:\n  - address: 10.9.0.100:80\n    forwarding: nat\n    scheduler: mh\n" +
		"    real_servers: [{address: \"10.9.1.1:80\", max_connections: 5}]\n"
	if p := planOf(t, yaml)[0]; p.mode != modeQueue {
		t.Errorf("mh with max_connections: mode %v, want the queue", p.mode)
	}
}

// An unavailable server keeps its positions: empty without mh-fallback
// (the kernel drops its clients' new flows, as IPVS fails the pick); with
// it they go to the available servers, and no other position changes.
func TestMHSlotsUnavailable(t *testing.T) {
	set := reals(1, 1, 1, 1)
	all := mhSlots(set, false)
	set[2].Weight, set[2].Available = 0, false // quiesced: keeps its last weight
	strict, fb := mhSlots(set, false), mhSlots(set, true)
	moved := map[netip.AddrPort]int{}
	for pos, a := range all {
		switch {
		case a != set[2].Addr:
			if strict[pos] != a || fb[pos] != a {
				t.Fatalf("slot %d of an available server changed: %v, %v, %v", pos, a, strict[pos], fb[pos])
			}
		case strict[pos].IsValid():
			t.Fatalf("slot %d of the quiesced server holds %v without fallback", pos, strict[pos])
		case !fb[pos].IsValid() || fb[pos] == a:
			t.Fatalf("slot %d of the quiesced server holds %v with fallback", pos, fb[pos])
		default:
			moved[fb[pos]]++
		}
	}
	// The orphaned slots spread over the three others.
	if len(moved) != 3 {
		t.Fatalf("orphaned slots went to %v", moved)
	}
	for i := range set {
		set[i].Weight, set[i].Available = 0, false
	}
	for pos, a := range mhSlots(set, true) {
		if a.IsValid() {
			t.Fatalf("slot %d holds %v with every server at weight 0", pos, a)
		}
	}
}

// While the quorum is lost every new flow goes to the sorry server, for
// any scheduler; before, a queue-scheduled service gives the sorry server a
// mark of its own.
func TestPlanSorry(t *testing.T) {
	check := "    sorry_server: 10.9.2.1:80\n    alpha: true\n" +
		"    health_check: {type: script, command: \"exit 1\", interval: 1h}\n"
	for _, name := range []string{"rr", "mh", "wlc"} {
		p := planOf(t, planYAML(name, check, 1, 1))[0]
		if !p.sorry || p.mode != modeInc || len(p.slots) != 1 || p.slots[0].String() != "10.9.2.1:80" {
			t.Errorf("%s with the quorum lost: sorry %v mode %v slots %v", name, p.sorry, p.mode, p.slots)
		}
	}
	p := planOf(t, planYAML("wlc", "    sorry_server: 10.9.2.1:80\n", 1, 1))[0]
	if p.sorry || p.mode != modeQueue || len(p.marks) != 3 || names(p.slots) != "12" {
		t.Fatalf("wlc with its quorum: sorry %v mode %v marks %v slots %v", p.sorry, p.mode, p.marks, p.slots)
	}
}

// A Maglev map is described exactly but compactly.
func TestSlotsText(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	if got := slotsText([]netip.AddrPort{a, {}, b, a}); got != "[10.0.0.1:80 10.0.0.2:80] 0100000002000100" {
		t.Fatalf("slotsText = %q", got)
	}
}
