package nft

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/sched"
)

func reals(weights ...int) []*director.RealServer {
	var out []*director.RealServer
	for i, w := range weights {
		a := netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:80", i+1))
		out = append(out, &director.RealServer{Addr: a, Dest: sched.NewDest(a, w)})
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
