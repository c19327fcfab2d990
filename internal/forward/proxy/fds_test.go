package proxy

import (
	"net/netip"
	"testing"
)

// The budget keeps its reserve, sheds UDP flows at three quarters of it and
// admits TCP connections up to all of it.
func TestFDBudget(t *testing.T) {
	var b fdBudget
	b.setLimit(256)
	if b.reserve.Load() != 80 || b.total() != 176 || b.udpCeiling() != 132 {
		t.Fatalf("limit 256: reserve %d total %d udp %d", b.reserve.Load(), b.total(), b.udpCeiling())
	}
	flows := 0
	for b.takeUDP() {
		flows++
	}
	if flows != 132 {
		t.Errorf("%d udp flows admitted, want 132", flows)
	}
	conns := 0
	for b.takeTCP() {
		conns++
	}
	if conns != 22 {
		t.Errorf("%d tcp connections admitted beside the flows, want 22", conns)
	}
	b.give(1)
	if b.takeUDP() {
		t.Error("a udp flow admitted above its ceiling")
	}
	b.give(2)
	if !b.takeTCP() {
		t.Error("a freed tcp slot not taken again")
	}

	var small fdBudget
	small.setLimit(64)
	if small.reserve.Load() != 32 {
		t.Errorf("limit 64: reserve %d, want half", small.reserve.Load())
	}
	var big fdBudget
	big.setLimit(20000)
	if big.reserve.Load() != 1314 {
		t.Errorf("limit 20000: reserve %d, want 1314", big.reserve.Load())
	}
}

func TestClientCount(t *testing.T) {
	var cc clientCount
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for range 3 {
		if !cc.add(a, 3) {
			t.Fatal("refused within the limit")
		}
	}
	if cc.add(a, 3) {
		t.Error("admitted beyond the limit")
	}
	if !cc.add(b, 3) {
		t.Error("another client refused")
	}
	cc.remove(a)
	if !cc.add(a, 3) {
		t.Error("a freed slot not taken again")
	}
	for range 3 {
		cc.remove(a)
	}
	cc.remove(b)
	if len(cc.m) != 0 {
		t.Errorf("counts left: %v", cc.m)
	}
}
