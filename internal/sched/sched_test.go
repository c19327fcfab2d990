package sched

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// dests makes servers named A, B, C, ... with the given weights; their
// address is 10.0.0.<index+1>:80.
func dests(weights ...int) []*Dest {
	ds := make([]*Dest, len(weights))
	for i, w := range weights {
		ds[i] = NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80), w)
	}
	return ds
}

func name(ds []*Dest, d *Dest) string {
	if i := slices.Index(ds, d); i >= 0 {
		return string(rune('A' + i))
	}
	return "-"
}

func must(t *testing.T, sched string, o Options) Scheduler {
	t.Helper()
	s, err := New(sched, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sequence(s Scheduler, ds []*Dest, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(name(ds, s.Pick(&Key{})))
	}
	return b.String()
}

// setConns gives a server a active and i inactive connections.
func setConns(d *Dest, a, i int) {
	for range a + i {
		d.Bind()
	}
	for range a {
		d.Activate()
	}
}

func TestNames(t *testing.T) {
	want := []string{"adaptive-weights", "dh", "fo", "lblc", "lblcr", "lc", "mh", "nq", "ovf", "pewma", "predict", "prequal", "random", "rr", "sed", "sh", "twos", "wlc", "wrr"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if _, err := New("nope", Options{}); err == nil {
		t.Fatal("New(nope) succeeded")
	}
}

func TestRoundRobin(t *testing.T) {
	ds := dests(1, 0, 1, 1)
	s := must(t, "rr", Options{})
	s.Update(ds)
	if got := sequence(s, ds, 6); got != "ACDACD" {
		t.Fatalf("rr = %s, want ACDACD (B has weight 0)", got)
	}
	// Removing the last server chosen (D) moves the turn back to C, as
	// ip_vs_rr_del_dest does: next comes A, not a repeat.
	s.Update([]*Dest{ds[0], ds[2]})
	if got := sequence(s, ds, 3); got != "ACA" {
		t.Fatalf("rr after removal = %s, want ACA", got)
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	tests := []struct {
		weights []int
		want    string
	}{
		{[]int{4, 3, 2}, "AABABCABC"},
		{[]int{4, 2}, "AAB"},        // gcd 2: mw = 4 - 1 = 3, cw 3 then 1
		{[]int{6, 4, 2}, "AABABC"},  // gcd 2 scales to 3, 2, 1
		{[]int{1, 1, 1}, "ABC"},     // plain round robin
		{[]int{0, 2, 0, 1}, "BBD"},  // weight 0 never chosen
		{[]int{5, 1}, "AAAAAB"},     // no interleaving possible
		{[]int{3, 3, 1}, "ABABABC"}, // equal weights alternate
		{[]int{10, 5, 5}, "AABC"},   // gcd 5: 2, 1, 1
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			ds := dests(tt.weights...)
			s := must(t, "wrr", Options{})
			s.Update(ds)
			n := len(tt.want)
			if got := sequence(s, ds, 3*n); got != strings.Repeat(tt.want, 3) {
				t.Fatalf("wrr = %s, want %s repeated", got, tt.want)
			}
		})
	}
}

func TestWeightedRoundRobinWeightChange(t *testing.T) {
	ds := dests(4, 3, 2)
	s := must(t, "wrr", Options{})
	s.Update(ds)
	if got := sequence(s, ds, 4); got != "AABA" {
		t.Fatalf("start = %s", got)
	}
	// After four picks cw = 2. Raising C to 4 makes mw 4; cw stays 2 (di 1)
	// and the pass restarts at the head: A B C (all >= 2), then cw 1: A B C,
	// then a full cycle of 4, 3, 4: A C, A B C, A B C, A B C.
	ds[2].SetWeight(4)
	s.Update(ds)
	if got := sequence(s, ds, 6+11); got != "ABCABC"+"ACABCABCABC" {
		t.Fatalf("after weight change = %s", got)
	}
	// A server that becomes overloaded is skipped within the cycle.
	ds[0].SetThresholds(1, 0, 0)
	ds[0].Bind()
	if got := sequence(s, ds, 7); got != "CBCBCBC" {
		t.Fatalf("with A overloaded = %s", got)
	}
}

func TestLeastConnectionFamily(t *testing.T) {
	type conns struct{ a, i, w int }
	tests := []struct {
		sched string
		ds    []conns
		want  string
	}{
		// lc: overhead a*256+i; weights other than 0 do not matter.
		{"lc", []conns{{1, 0, 1}, {0, 200, 9}, {0, 255, 1}}, "B"},
		{"lc", []conns{{1, 0, 1}, {0, 256, 1}}, "A"}, // tie: first
		{"lc", []conns{{0, 0, 0}, {5, 0, 1}}, "B"},   // weight 0 skipped
		// wlc: overhead/weight; 512/2 = 256 ties with 256/1, first wins.
		{"wlc", []conns{{1, 0, 1}, {2, 0, 2}}, "A"},
		{"wlc", []conns{{1, 0, 1}, {2, 0, 3}}, "B"},
		{"wlc", []conns{{0, 3, 1}, {1, 0, 100}}, "B"}, // 3/1 > 256/100
		// sed: (active+1)/weight, inactive ignored.
		{"sed", []conns{{1, 0, 1}, {3, 0, 3}}, "B"}, // 2/1 > 4/3
		{"sed", []conns{{0, 50, 1}, {1, 0, 1}}, "A"},
		{"sed", []conns{{0, 0, 1}, {1, 0, 2}}, "A"}, // 1/1 = 2/2: first
		// nq: first idle server, else sed.
		{"nq", []conns{{3, 0, 10}, {0, 9, 1}, {0, 0, 1}}, "B"},
		{"nq", []conns{{3, 0, 10}, {1, 0, 1}}, "A"}, // 4/10 < 2/1
		// fo: highest weight, first on ties.
		{"fo", []conns{{0, 0, 2}, {9, 0, 5}, {0, 0, 5}}, "B"},
		// ovf: highest weight whose active <= weight.
		{"ovf", []conns{{3, 0, 2}, {1, 0, 1}, {0, 0, 1}}, "B"},
		{"ovf", []conns{{2, 0, 2}, {0, 0, 1}}, "A"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.sched, tt.ds), func(t *testing.T) {
			var ds []*Dest
			for i, c := range tt.ds {
				d := dests(make([]int, i+1)...)[i]
				d.SetWeight(c.w)
				setConns(d, c.a, c.i)
				ds = append(ds, d)
			}
			s := must(t, tt.sched, Options{})
			s.Update(ds)
			if got := name(ds, s.Pick(nil)); got != tt.want {
				t.Fatalf("%s picked %s, want %s", tt.sched, got, tt.want)
			}
		})
	}
}

func TestFailoverOrder(t *testing.T) {
	ds := dests(10, 20, 5)
	s := must(t, "fo", Options{})
	s.Update(ds)
	order := ""
	for range 3 {
		d := s.Pick(nil)
		order += name(ds, d)
		d.SetWeight(0) // fails: the next highest takes over
	}
	if order != "BAC" || s.Pick(nil) != nil {
		t.Fatalf("fail-over order = %s, want BAC then nothing", order)
	}
}

func TestOverflowOrder(t *testing.T) {
	ds := dests(2, 3, 1)
	s := must(t, "ovf", Options{})
	s.Update(ds)
	order := ""
	for range 9 {
		d := s.Pick(nil)
		if d == nil {
			order += "-"
			continue
		}
		order += name(ds, d)
		d.Bind()
		d.Activate()
	}
	// B takes 4 (active 0..3 <= 3), A 3, C 2, then nothing is left.
	if order != "BBBBAAACC" {
		t.Fatalf("overflow order = %s", order)
	}
	if s.Pick(nil) != nil {
		t.Fatal("all over budget, yet a pick")
	}
}

func TestThresholds(t *testing.T) {
	d := dests(1)[0]
	d.SetThresholds(4, 0, 0) // lower defaults to 3/4 of upper
	for range 3 {
		d.Bind()
	}
	if d.Overloaded() {
		t.Fatal("overloaded below the upper threshold")
	}
	d.Bind() // 4 >= 4
	if !d.Overloaded() {
		t.Fatal("not overloaded at the upper threshold")
	}
	d.Unbind(false) // 3: 3*4 < 4*3 is false, still overloaded
	if !d.Overloaded() {
		t.Fatal("relieved at 3 of 4: the 3/4 rule needs fewer")
	}
	d.Unbind(false) // 2: 8 < 12
	if d.Overloaded() {
		t.Fatal("still overloaded below 3/4 of the upper threshold")
	}

	d = dests(1)[0]
	d.SetThresholds(5, 2, 0)
	setConns(d, 3, 2)
	if !d.Overloaded() {
		t.Fatal("not overloaded at 5")
	}
	for n := 4; n >= 2; n-- {
		d.Unbind(n > 2)
		if !d.Overloaded() {
			t.Fatalf("relieved at %d, lower threshold is 2", n)
		}
	}
	d.Unbind(true) // 1 < 2
	if d.Overloaded() {
		t.Fatal("still overloaded below the lower threshold")
	}

	// Raising or removing the upper threshold lifts the overload at once;
	// lowering it waits for the next Bind.
	d = dests(1)[0]
	d.SetThresholds(2, 0, 0)
	setConns(d, 0, 2)
	d.SetThresholds(3, 0, 0)
	if d.Overloaded() {
		t.Fatal("raising the upper threshold kept the overload")
	}
	d.SetThresholds(1, 0, 0)
	if d.Overloaded() {
		t.Fatal("lowering the upper threshold overloaded before a Bind")
	}
	d.Bind()
	if !d.Overloaded() {
		t.Fatal("not overloaded after a Bind above the lowered threshold")
	}
	d.SetThresholds(0, 0, 0)
	if d.Overloaded() {
		t.Fatal("removing the upper threshold kept the overload")
	}

	// The hard limit refuses the connection over it.
	d = dests(1)[0]
	d.SetThresholds(0, 0, 2)
	first, second, third := d.Bind(), d.Bind(), d.Bind()
	if !first || !second || third {
		t.Fatalf("hard limit 2: binds = %v %v %v, want true true false", first, second, third)
	}
	if !d.Overloaded() || d.InactiveConns() != 2 {
		t.Fatalf("at the limit: overloaded %v, inactive %d", d.Overloaded(), d.InactiveConns())
	}
	d.Unbind(false)
	if d.Overloaded() {
		t.Fatal("still overloaded below the hard limit")
	}
}

func TestSourceHash(t *testing.T) {
	ds := dests(2, 1, 1)
	s := must(t, "sh", Options{})
	s.Update(ds)
	// The table is A A B C repeated: bucket b goes to "AABC"[b%4].
	key := func(ip byte, port uint16) *Key {
		return &Key{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, ip}), port)}
	}
	for ip := range 256 {
		k := key(byte(ip), uint16(ip)*7)
		b := uint8((0xc0000200 + uint32(ip)) * goldenHash)
		want := "AABC"[b%4 : b%4+1]
		if got := name(ds, s.Pick(k)); got != want {
			t.Fatalf("client %v: got %s, want %s (bucket %d)", k.Client, got, want, b)
		}
		if s.Pick(k) != s.Pick(key(byte(ip), 1)) {
			t.Fatal("the port changed the choice without sh-port")
		}
	}
	// Weight 0: the pick fails without fallback; with it, the first
	// available bucket from 2 x bucket on wins, so B and C share A's clients.
	ds[0].SetWeight(0)
	sf := must(t, "sh", Options{Fallback: true})
	sf.Update(ds)
	s.Update(ds)
	for ip := range 256 {
		k := key(byte(ip), 0)
		b := uint8((0xc0000200 + uint32(ip)) * goldenHash)
		// Weight 0 still takes one bucket, so the table is A B C repeated.
		owner := "ABC"[int(b)%3]
		got, fb := s.Pick(k), sf.Pick(k)
		if owner == 'A' {
			if got != nil {
				t.Fatal("picked a server of weight 0 without fallback")
			}
			start := 2 * b
			for name(ds, ds[int(start)%3]) == "A" {
				start++
			}
			if want := ds[int(start)%3]; fb != want {
				t.Fatalf("fallback for bucket %d: got %s, want %s", b, name(ds, fb), name(ds, want))
			}
		} else if got == nil || got != fb || name(ds, got)[0] != owner {
			t.Fatalf("bucket %d: got %s and %s, want %c", b, name(ds, got), name(ds, fb), owner)
		}
	}
}

func TestSourceHashPortAndStability(t *testing.T) {
	ds := dests(1, 1, 1, 1)
	s := must(t, "sh", Options{Port: true})
	s.Update(ds)
	k1 := &Key{Client: netip.MustParseAddrPort("198.51.100.7:1000")}
	k2 := &Key{Client: netip.MustParseAddrPort("198.51.100.7:1001")}
	if s.Pick(k1) == s.Pick(k2) {
		t.Fatal("sh-port: consecutive ports landed on the same server")
	}
	// Removing the last server keeps exactly the clients of buckets whose
	// owner stays the same in IPVS's table: b%4 == b%3, that is b in 0..2
	// modulo 12.
	before := map[uint16]*Dest{}
	for p := range uint16(2000) {
		before[p] = s.Pick(&Key{Client: netip.AddrPortFrom(k1.Client.Addr(), p)})
	}
	s.Update(ds[:3])
	for p, d := range before {
		b := uint8((uint32(p) + 0xc6336407) * goldenHash)
		got := s.Pick(&Key{Client: netip.AddrPortFrom(k1.Client.Addr(), p)})
		if got != ds[int(b)%3] {
			t.Fatalf("port %d: got %s, want %s", p, name(ds, got), name(ds, ds[int(b)%3]))
		}
		if kept := int(b)%4 == int(b)%3; kept != (got == d) {
			t.Fatalf("port %d: moved %v, IPVS's table says kept %v", p, got != d, kept)
		}
	}
}

func TestDestinationHash(t *testing.T) {
	ds := dests(5, 1, 1)
	s := must(t, "dh", Options{Fallback: true})
	s.Update(ds)
	counts := map[*Dest]int{}
	for i := range 3000 {
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 80)
		k := &Key{VIP: vip, Client: netip.MustParseAddrPort("192.0.2.1:1")}
		d := s.Pick(k)
		b := uint8(fold(vip.Addr()) * goldenHash)
		if d != ds[int(b)%3] {
			t.Fatalf("destination %v: got %s, want bucket %d's %s", vip, name(ds, d), b, name(ds, ds[int(b)%3]))
		}
		k.Client = netip.MustParseAddrPort("192.0.2.99:2")
		if s.Pick(k) != d {
			t.Fatal("the client changed a dh choice")
		}
		counts[d]++
	}
	// Weights play no part: each server holds a third of the buckets.
	for _, d := range ds {
		if c := counts[d]; c < 800 || c > 1200 {
			t.Fatalf("%s got %d of 3000", name(ds, d), c)
		}
	}
	ds[1].SetWeight(0)
	for i := range 300 {
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 0, byte(i)}), 80)
		if d := s.Pick(&Key{VIP: vip}); d == ds[1] {
			t.Fatal("dh picked a server of weight 0")
		}
	}
}

func TestHsiphashVector(t *testing.T) {
	// lib/siphash_kunit.c, 64-bit: hsiphash of bytes 00 01 02 03 under the
	// key 00..0f is 0x88d38328.
	if got := hsiphash32(0x03020100, 0x0706050403020100, 0x0f0e0d0c0b0a0908); got != 0x88d38328 {
		t.Fatalf("hsiphash = %#x, want 0x88d38328", got)
	}
}

func TestMaglevOptions(t *testing.T) {
	for _, size := range []int{-1, 1, 4, 65536, 1<<24 + 1} {
		if _, err := New("mh", Options{TableSize: size}); err == nil {
			t.Errorf("table size %d accepted", size)
		}
	}
	for _, size := range []int{0, 251, 4093, 65537} {
		if _, err := New("mh", Options{TableSize: size}); err != nil {
			t.Errorf("table size %d: %v", size, err)
		}
	}
}

func clientKey(i int) *Key {
	return &Key{Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(i))}
}

func TestMaglevConsistency(t *testing.T) {
	const n, keys = 20, 100000
	ds := make([]*Dest, n)
	for i := range ds {
		ds[i] = NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 8080), 1)
	}
	s := must(t, "mh", Options{})
	s.Update(ds)
	before := make([]*Dest, keys)
	for i := range before {
		before[i] = s.Pick(clientKey(i))
	}
	// Remove one server: its keys must move, and the others' should stay.
	// Maglev bounds the extra disruption; assert at most 1/N + 2%.
	gone := ds[7]
	s.Update(slices.Delete(slices.Clone(ds), 7, 8))
	moved, lost := 0, 0
	for i, d := range before {
		got := s.Pick(clientKey(i))
		if got == gone {
			t.Fatal("picked a removed server")
		}
		if d == gone {
			lost++
		} else if got != d {
			moved++
		}
	}
	if total := lost + moved; float64(total) > keys*(1.0/n+0.02) {
		t.Fatalf("removing 1 of %d servers remapped %d of %d keys (%d of them not its own)", n, total, keys, moved)
	}
	t.Logf("removing 1 of %d: %d keys were its own, %d others moved", n, lost, moved)

	// Quiescing keeps the table: the server's keys fail without fallback
	// and come back to it when its weight returns.
	s.Update(ds)
	ds[3].SetWeight(0)
	s.Update(ds)
	for i := range 2000 {
		if before[i] == ds[3] && s.Pick(clientKey(i)) != nil {
			t.Fatal("a quiesced server's key was moved without fallback")
		}
	}
	ds[3].SetWeight(1)
	s.Update(ds)
	for i := range 2000 {
		if s.Pick(clientKey(i)) != before[i] {
			t.Fatal("keys did not come back after the weight returned")
		}
	}
}

func TestMaglevWeightsAndFallback(t *testing.T) {
	ds := dests(1, 2, 3, 4)
	s := must(t, "mh", Options{Fallback: true, Port: true})
	s.Update(ds)
	counts := map[*Dest]int{}
	const keys = 100000
	for i := range keys {
		counts[s.Pick(clientKey(i))]++
	}
	// Shares within 10% (relative) of weight / 10.
	for i, d := range ds {
		want := float64(keys) * float64(i+1) / 10
		if got := float64(counts[d]); got < want*0.9 || got > want*1.1 {
			t.Errorf("%s (weight %d) got %v keys, want %v within 10%%", name(ds, d), i+1, got, want)
		}
	}
	ds[3].SetThresholds(1, 0, 0)
	ds[3].Bind()
	for i := range 5000 {
		if d := s.Pick(clientKey(i)); d == nil || d == ds[3] {
			t.Fatal("fallback did not avoid the overloaded server")
		}
	}
	for _, d := range ds {
		d.SetWeight(0)
	}
	if s.Pick(clientKey(1)) != nil {
		t.Fatal("picked with every server at weight 0")
	}
}

func TestTwoChoices(t *testing.T) {
	ds := dests(1, 3)
	s := must(t, "twos", Options{}).(*twoChoices)
	s.Update(ds)
	// Draws are in [0, 4]: 0 and 1 land on A, 2, 3 and 4 on B.
	for _, tt := range []struct {
		r1, r2 uint64
		loadA  int
		want   string
	}{
		{0, 0, 0, "A"}, {1, 4, 0, "A"}, {4, 0, 0, "B"}, {2, 3, 0, "B"}, // equal loads keep the first draw
		{1, 4, 1, "B"}, // B's 0/3 beats A's 256/1
	} {
		s.rnd = func() uint64 { return tt.r1<<32 | tt.r2 }
		if tt.loadA > 0 {
			setConns(ds[0], tt.loadA, 0)
		}
		if got := name(ds, s.Pick(nil)); got != tt.want {
			t.Errorf("draws %d,%d: got %s, want %s", tt.r1, tt.r2, got, tt.want)
		}
	}
	ds[0].SetWeight(0)
	ds[1].SetWeight(0)
	if s.Pick(nil) != nil {
		t.Fatal("picked with no weight left")
	}
}

func TestRandomIsUniformOverAvailable(t *testing.T) {
	ds := dests(1, 0, 5, 1)
	s := must(t, "random", Options{})
	s.Update(ds)
	counts := map[string]int{}
	for range 30000 {
		counts[name(ds, s.Pick(nil))]++
	}
	if counts["B"] != 0 {
		t.Fatal("random picked a server of weight 0")
	}
	for _, n := range []string{"A", "C", "D"} {
		if c := counts[n]; c < 9000 || c > 11000 {
			t.Fatalf("random: %s got %d of 30000", n, c)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func vipKey(s string) *Key               { return &Key{VIP: netip.MustParseAddrPort(s)} }
func newClock() *fakeClock               { return &fakeClock{t: time.Unix(1e9, 0)} }

func TestLocalityLeastConnection(t *testing.T) {
	clk := newClock()
	ds := dests(2, 2, 2)
	s := must(t, "lblc", Options{Clock: clk.now, Expiration: time.Hour})
	s.Update(ds)
	k := vipKey("203.0.113.9:80")
	first := s.Pick(k) // wlc: A
	if first != ds[0] {
		t.Fatalf("first pick %s, want A", name(ds, first))
	}
	setConns(ds[0], 2, 0) // A is busier, but 2 active is not more than weight 2
	if s.Pick(k) != ds[0] {
		t.Fatal("lblc left its server before it was overloaded")
	}
	setConns(ds[0], 1, 0) // 3 > 2 while B has 0*2 < 2: overloaded, move to wlc
	if got := s.Pick(k); got != ds[1] {
		t.Fatalf("overloaded entry moved to %s, want B", name(ds, got))
	}
	// A busy server stays if no server is below half its weight.
	setConns(ds[1], 3, 0)
	setConns(ds[2], 1, 0)
	if s.Pick(k) != ds[1] {
		t.Fatal("lblc moved although no server was below half its weight")
	}
	// Unused for the expiration: scheduled afresh (wlc: C, 256/2 < A 768/2).
	clk.add(time.Hour)
	if got := s.Pick(k); got != ds[2] {
		t.Fatalf("after expiry got %s, want wlc's C", name(ds, got))
	}
	// A removed server is never used from the table.
	s.Update(ds[:2])
	if got := s.Pick(k); got == ds[2] {
		t.Fatal("lblc used a removed server")
	}
	// Expire drops unused entries on the 30th check.
	e := s.(Expirer)
	s.Pick(vipKey("203.0.113.10:80"))
	removed := 0
	for i := range 31 {
		removed += e.Expire(clk.now().Add(2*time.Hour + time.Duration(i)*time.Minute))
	}
	if removed != 2 {
		t.Fatalf("Expire removed %d entries, want 2", removed)
	}
}

func TestLocalityLeastConnectionReplicated(t *testing.T) {
	clk := newClock()
	ds := dests(1, 1, 1)
	s := must(t, "lblcr", Options{Clock: clk.now, Expiration: time.Hour})
	s.Update(ds)
	k := vipKey("203.0.113.9:80")
	if s.Pick(k) != ds[0] {
		t.Fatal("first pick is not wlc's A")
	}
	setConns(ds[0], 2, 0) // 2 > 1 while B is idle: overloaded, add wlc's B
	if got := s.Pick(k); got != ds[1] {
		t.Fatalf("got %s, want B added to the set", name(ds, got))
	}
	// The set is {B, A}; its least loaded member B serves.
	if got := s.Pick(k); got != ds[1] {
		t.Fatalf("got %s, want the set's least loaded B", name(ds, got))
	}
	setConns(ds[1], 1, 0) // B: 1 active, not more than weight: stays
	setConns(ds[2], 3, 0) // C busy too
	if got := s.Pick(k); got != ds[1] {
		t.Fatalf("got %s, want B", name(ds, got))
	}
	// After the expiration without change, the most loaded member (A,
	// 512/1) is dropped and the least loaded still serves.
	clk.add(time.Hour - time.Second) // keep the entry in use
	s.Pick(k)
	clk.add(2 * time.Second)
	if got := s.Pick(k); got != ds[1] {
		t.Fatalf("got %s, want B", name(ds, got))
	}
	en := s.(*localityLeastConnRepl).table[k.VIP.Addr()]
	if len(en.set) != 1 || en.set[0] != ds[1] {
		t.Fatalf("set after shrinking = %v, want [B]", en.set)
	}
}

func TestUpdateNilDetaches(t *testing.T) {
	ds := dests(1, 1)
	for _, n := range Names() {
		s := must(t, n, Options{})
		s.Update(ds)
		s.Update(nil)
		if s.Pick(clientKey(1)) != nil {
			t.Errorf("%s picked with no servers", n)
		}
	}
	for _, d := range ds {
		if d.watchers.Load() != nil {
			t.Fatal("a scheduler stayed attached after Update(nil)")
		}
	}
}
