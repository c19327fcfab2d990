package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var (
	ip = netip.MustParseAddr
)

// The golden packets are written out field by field from the formats of
// RFC 3768 section 5.1 and RFC 5798 section 5.1; their checksums were summed
// by hand as 16-bit big-endian words (end-around carry, RFC 1071) and the
// derivation is shown next to each one. They do not come from the code under
// test.

// goldenV2 is VRRPv2, VRID 51, priority 100, one address 192.168.1.100, no
// authentication, advert interval 1 s. Checksum over the VRRP message only:
//
//	0x2133 + 0x6401 + 0x0001 + 0xc0a8 + 0x0164 (+ zero auth words)
//	= 0x14741 -> fold 0x4741 + 0x1 = 0x4742 -> ~ = 0xb8bd
var goldenV2 = []byte{
	0x21, 0x33, 0x64, 0x01, // version 2 type 1, VRID 51, priority 100, count 1
	0x00, 0x01, 0xb8, 0xbd, // auth type 0, adver int 1, checksum
	192, 168, 1, 100, // 192.168.1.100
	0, 0, 0, 0, 0, 0, 0, 0, // authentication data (zero for type 0)
}

// goldenV2Auth is VRRPv2, VRID 1, priority 150, addresses 10.0.0.1 and
// 10.0.0.2, simple password "secret" (keepalived auth_type PASS: the 8 byte
// field, zero padded, after the addresses), interval 1 s.
//
//	0x2101 + 0x9602 + 0x0101 + 0x0a00 + 0x0001 + 0x0a00 + 0x0002
//	+ 0x7365 ("se") + 0x6372 ("cr") + 0x6574 ("et") + 0x0000
//	= 0x13f6c at "se" -> 0x3f6d; ... final 0x10853 -> 0x0854 -> ~ = 0xf7ab
var goldenV2Auth = []byte{
	0x21, 0x01, 0x96, 0x02,
	0x01, 0x01, 0xf7, 0xab,
	10, 0, 0, 1,
	10, 0, 0, 2,
	's', 'e', 'c', 'r', 'e', 't', 0, 0,
}

// goldenV3v4 is VRRPv3 over IPv4 from 192.168.1.10 to 224.0.0.18, VRID 51,
// priority 100, Max Adver Int 100 cs, address 192.168.1.100 (12 bytes).
// Pseudo-header: src 0xc0a8 0x010a, dst 0xe000 0x0012, zero/proto 0x0070,
// length 0x000c: sum 0xa241. Message: 0x3133 + 0x6401 + 0x0064 + 0xc0a8 +
// 0x0164 = 0x57a5 (after one carry). Total 0xf9e6 -> ~ = 0x0619.
var goldenV3v4 = []byte{
	0x31, 0x33, 0x64, 0x01, // version 3 type 1, VRID 51, priority 100, count 1
	0x00, 0x64, 0x06, 0x19, // rsvd 0 + max adver int 100, checksum
	192, 168, 1, 100,
}

// goldenV3v6 is VRRPv3 over IPv6 from fe80::1 to ff02::12, VRID 10, priority
// 200, Max Adver Int 100 cs, addresses fe80::100 and 2001:db8::100 (40
// bytes). Pseudo-header (RFC 8200 8.1): 0xfe80 + 0x0001 + 0xff02 + 0x0012 +
// length 0x0028 + next header 0x0070 = 0xfe2e (after one carry). Message:
// 0x310a + 0xc802 + 0x0064 + 0xfe80 + 0x0100 + 0x2001 + 0x0db8 + 0x0100 =
// 0x27ab (after two carries). Total 0x125d9 -> 0x25da -> ~ = 0xda25.
var goldenV3v6 = []byte{
	0x31, 0x0a, 0xc8, 0x02,
	0x00, 0x64, 0xda, 0x25,
	0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
}

var goldens = []struct {
	name string
	b    []byte
	ip   IPInfo
	p    Packet
}{
	{"v2", goldenV2,
		IPInfo{Src: ip("192.168.1.10"), Dst: MulticastIPv4, HopLimit: 255},
		Packet{Version: V2, VRID: 51, Priority: 100, AdverInt: 1, Addrs: []netip.Addr{ip("192.168.1.100")}}},
	{"v2-auth", goldenV2Auth,
		IPInfo{Src: ip("10.0.0.10"), Dst: MulticastIPv4, HopLimit: 255},
		Packet{Version: V2, VRID: 1, Priority: 150, AdverInt: 1, AuthType: AuthSimple,
			AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'}, Addrs: []netip.Addr{ip("10.0.0.1"), ip("10.0.0.2")}}},
	{"v3-ipv4", goldenV3v4,
		IPInfo{Src: ip("192.168.1.10"), Dst: MulticastIPv4, HopLimit: 255},
		Packet{Version: V3, VRID: 51, Priority: 100, AdverInt: 100, Addrs: []netip.Addr{ip("192.168.1.100")}}},
	{"v3-ipv6", goldenV3v6,
		IPInfo{Src: ip("fe80::1"), Dst: MulticastIPv6, HopLimit: 255},
		Packet{Version: V3, VRID: 10, Priority: 200, AdverInt: 100, Addrs: []netip.Addr{ip("fe80::100"), ip("2001:db8::100")}}},
}

func TestGoldenDecode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			var p Packet
			if err := Decode(g.b, g.ip, &p); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(p, g.p) {
				t.Fatalf("Decode = %+v, want %+v", p, g.p)
			}
		})
	}
}

func TestGoldenEncode(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b, err := g.p.Append(nil, g.ip.Src, g.ip.Dst)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(b, g.b) {
				t.Fatalf("Append = % x\nwant     % x", b, g.b)
			}
			if n := g.p.Len(); n != len(g.b) {
				t.Fatalf("Len = %d, want %d", n, len(g.b))
			}
			// Appending keeps the prefix and checksums only the message.
			b, err = g.p.Append([]byte{1, 2, 3}, g.ip.Src, g.ip.Dst)
			if err != nil || !bytes.Equal(b[3:], g.b) || !bytes.Equal(b[:3], []byte{1, 2, 3}) {
				t.Fatalf("Append after prefix = % x, %v", b, err)
			}
		})
	}
}

func TestInterval(t *testing.T) {
	p := Packet{Version: V2, AdverInt: 3}
	if got := p.Interval(); got != 3*time.Second {
		t.Errorf("v2 interval = %v", got)
	}
	p = Packet{Version: V3, AdverInt: 150}
	if got := p.Interval(); got != 1500*time.Millisecond {
		t.Errorf("v3 interval = %v", got)
	}
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte) []byte) []byte {
	return f(append([]byte(nil), b...))
}

// fixsum recomputes the checksum of a (possibly corrupted) message so a test
// can reach the checks after the checksum one.
func fixsum(b []byte, v3 bool, ipi IPInfo) []byte {
	b[6], b[7] = 0, 0
	var s uint32
	if v3 {
		s = pseudoSum(ipi.Src, ipi.Dst, len(b))
	}
	c := checksum(s, b)
	b[6], b[7] = byte(c>>8), byte(c)
	return b
}

func TestDecodeRejects(t *testing.T) {
	v4 := IPInfo{Src: ip("192.168.1.10"), Dst: MulticastIPv4, HopLimit: 255}
	v6 := IPInfo{Src: ip("fe80::1"), Dst: MulticastIPv6, HopLimit: 255}
	tests := []struct {
		name string
		b    []byte
		ip   IPInfo
		want error
	}{
		{"empty", nil, v4, ErrShort},
		{"short", goldenV2[:7], v4, ErrShort},
		{"ttl", goldenV2, IPInfo{Src: v4.Src, Dst: v4.Dst, HopLimit: 254}, ErrTTL},
		{"version 1", mutate(goldenV2, func(b []byte) []byte { b[0] = 0x11; return b }), v4, ErrVersion},
		{"version 4", mutate(goldenV2, func(b []byte) []byte { b[0] = 0x41; return b }), v4, ErrVersion},
		{"type 2", mutate(goldenV2, func(b []byte) []byte { b[0] = 0x22; return b }), v4, ErrType},
		{"v2 over ipv6", goldenV2, v6, ErrAddrFamily},
		{"mixed families", goldenV3v4, IPInfo{Src: v4.Src, Dst: MulticastIPv6, HopLimit: 255}, ErrAddrFamily},
		{"no source", goldenV3v4, IPInfo{Dst: v4.Dst, HopLimit: 255}, ErrAddrFamily},
		{"count too big", mutate(goldenV2, func(b []byte) []byte { b[3] = 2; return b }), v4, ErrLength},
		{"count too small", mutate(goldenV2, func(b []byte) []byte { b[3] = 0; return b }), v4, ErrLength},
		{"v2 missing auth data", goldenV2[:12], v4, ErrLength},
		{"trailing byte", append(append([]byte(nil), goldenV3v4...), 0), v4, ErrLength},
		{"v3 as ipv6", goldenV3v4, v6, ErrLength},
		{"v2 checksum", mutate(goldenV2, func(b []byte) []byte { b[7]++; return b }), v4, ErrChecksum},
		{"v2 corrupt addr", mutate(goldenV2, func(b []byte) []byte { b[11]++; return b }), v4, ErrChecksum},
		{"v3 checksum", mutate(goldenV3v4, func(b []byte) []byte { b[6]++; return b }), v4, ErrChecksum},
		{"v3 wrong pseudo src", goldenV3v4, IPInfo{Src: ip("192.168.1.11"), Dst: v4.Dst, HopLimit: 255}, ErrChecksum},
		{"v3 wrong pseudo dst", goldenV3v4, IPInfo{Src: v4.Src, Dst: ip("192.168.1.1"), HopLimit: 255}, ErrChecksum},
		{"v4-mapped address in ipv6", mutate(goldenV3v6, func(b []byte) []byte {
			m := netip.MustParseAddr("::ffff:10.0.0.1").As16()
			copy(b[HeaderLen:], m[:])
			return fixsum(b, true, v6)
		}), v6, ErrAddrFamily},
		{"v3v6 checksum", mutate(goldenV3v6, func(b []byte) []byte { b[20]++; return b }), v6, ErrChecksum},
		{"auth 3", mutate(goldenV2, func(b []byte) []byte { b[4] = 3; return fixsum(b, false, v4) }), v4, ErrAuthType},
		{"v2 interval 0", mutate(goldenV2, func(b []byte) []byte { b[5] = 0; return fixsum(b, false, v4) }), v4, ErrInterval},
		{"v3 interval 0", mutate(goldenV3v4, func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return fixsum(b, true, v4) }), v4, ErrInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			err := Decode(tt.b, tt.ip, &p)
			if err != tt.want {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
			if !errors.Is(err, tt.want) || ReasonOf(err) != tt.want.(*Error).Reason {
				t.Fatalf("errors.Is/ReasonOf broken for %v", err)
			}
		})
	}
}

func TestDecodeLenient(t *testing.T) {
	v4 := IPInfo{Src: ip("192.168.1.10"), Dst: MulticastIPv4, HopLimit: 255}
	var p Packet
	// Unicast skips the TTL check (keepalived with unicast_peer).
	if err := Decode(goldenV2, IPInfo{Src: v4.Src, Dst: ip("192.168.1.20"), HopLimit: 64, Unicast: true}, &p); err != nil {
		t.Errorf("unicast v2 with TTL 64: %v", err)
	}
	// v3 reserved bits are ignored on reception.
	b := mutate(goldenV3v4, func(b []byte) []byte { b[4] |= 0xf0; return fixsum(b, true, v4) })
	if err := Decode(b, v4, &p); err != nil || p.AdverInt != 100 {
		t.Errorf("v3 reserved bits: %v, adver int %d", err, p.AdverInt)
	}
	// v2 auth data is ignored with auth type 0.
	b = mutate(goldenV2, func(b []byte) []byte { b[15] = 'x'; return fixsum(b, false, v4) })
	if err := Decode(b, v4, &p); err != nil || p.AuthData != [8]byte{} {
		t.Errorf("v2 auth data with type 0: %v, %q", err, p.AuthData)
	}
	// IPv4-mapped IPv6 addresses from a dual-stack socket are IPv4.
	if err := Decode(goldenV3v4, IPInfo{Src: ip("::ffff:192.168.1.10"), Dst: ip("::ffff:224.0.0.18"), HopLimit: 255}, &p); err != nil {
		t.Errorf("mapped addresses: %v", err)
	}
	// Zero addresses is valid.
	z := Packet{Version: V3, VRID: 1, Priority: 1, AdverInt: 1}
	zb, err := z.Append(nil, v4.Src, v4.Dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(zb, v4, &p); err != nil || len(p.Addrs) != 0 {
		t.Errorf("zero addresses: %v %v", err, p.Addrs)
	}
}

func TestAppendRejects(t *testing.T) {
	s4, d4 := ip("192.168.1.10"), MulticastIPv4
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = s4
	}
	tests := []struct {
		name     string
		p        Packet
		src, dst netip.Addr
	}{
		{"version", Packet{Version: 4, AdverInt: 1}, s4, d4},
		{"count", Packet{Version: V2, AdverInt: 1, Addrs: many}, s4, d4},
		{"v2 ipv6 addr", Packet{Version: V2, AdverInt: 1, Addrs: []netip.Addr{ip("fe80::1")}}, s4, d4},
		{"v3 mixed", Packet{Version: V3, AdverInt: 1, Addrs: []netip.Addr{ip("fe80::1")}}, s4, d4},
		{"v3 no src", Packet{Version: V3, AdverInt: 1}, netip.Addr{}, d4},
		{"v3 family src/dst", Packet{Version: V3, AdverInt: 1}, s4, MulticastIPv6},
		{"interval 0", Packet{Version: V3}, s4, d4},
		{"v2 interval", Packet{Version: V2, AdverInt: 256}, s4, d4},
		{"v3 interval", Packet{Version: V3, AdverInt: 4096}, s4, d4},
		{"v2 auth 3", Packet{Version: V2, AdverInt: 1, AuthType: 3}, s4, d4},
		{"invalid addr", Packet{Version: V2, AdverInt: 1, Addrs: []netip.Addr{{}}}, s4, d4},
	}
	for _, tt := range tests {
		if b, err := tt.p.Append(nil, tt.src, tt.dst); err == nil {
			t.Errorf("%s: Append = % x, want an error", tt.name, b)
		}
	}
}

func TestReasonStrings(t *testing.T) {
	for r := range NumReasons {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
	}
	if ReasonOf(nil) != ReasonNone || ReasonOf(errors.New("x")) != ReasonNone {
		t.Error("ReasonOf of a foreign error")
	}
	if ErrChecksum.Error() != "vrrp: bad checksum" {
		t.Errorf("Error() = %q", ErrChecksum.Error())
	}
}

func TestDecodeReusesAddrs(t *testing.T) {
	p := Packet{Addrs: make([]netip.Addr, 0, 4)}
	ipi := goldens[3].ip
	allocs := testing.AllocsPerRun(100, func() {
		if err := Decode(goldenV3v6, ipi, &p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %v times with a reused Packet", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() { _ = Decode(goldenV3v6[:9], ipi, &p) })
	if allocs != 0 {
		t.Errorf("rejecting allocates %v times", allocs)
	}
}

// FuzzDecode checks that Decode never panics, and the round trip: whatever
// Decode accepts, Append re-encodes into something Decode reads back equal;
// and a packet built from the fuzzer's fields survives Append then Decode.
func FuzzDecode(f *testing.F) {
	for _, g := range goldens {
		f.Add(g.b, g.ip.Src.Is6(), uint8(255), false, uint8(1), uint8(100), uint16(100), uint8(1))
	}
	f.Add([]byte{}, false, uint8(0), true, uint8(0), uint8(0), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, v6 bool, ttl uint8, v2 bool, vrid, prio uint8, adv uint16, naddr uint8) {
		ipi := IPInfo{Src: ip("192.168.1.10"), Dst: MulticastIPv4, HopLimit: ttl, Unicast: ttl == 0}
		if v6 {
			ipi.Src, ipi.Dst = ip("fe80::1"), MulticastIPv6
		}
		var p Packet
		if err := Decode(b, ipi, &p); err == nil {
			roundTrip(t, &p, ipi)
		} else if ReasonOf(err) == ReasonNone {
			t.Fatalf("untyped error %v", err)
		}
		// The same bytes with a correct checksum reach the later checks.
		if len(b) >= HeaderLen {
			c := fixsum(append([]byte(nil), b...), b[0]>>4 == 3, ipi)
			if err := Decode(c, ipi, &p); err == nil {
				roundTrip(t, &p, ipi)
			}
		}

		// A valid packet from the fuzzer's fields.
		q := Packet{Version: V3, VRID: vrid, Priority: prio, AdverInt: adv&MaxAdverIntV3 | 1}
		if v2 && !v6 {
			q.Version, q.AdverInt = V2, uint16(uint8(adv)|1)
			if adv&0x100 != 0 {
				q.AuthType = AuthSimple
				copy(q.AuthData[:], b)
			}
		}
		for i := range int(naddr % 8) {
			if v6 {
				q.Addrs = append(q.Addrs, netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(i), 14: vrid}))
			} else {
				q.Addrs = append(q.Addrs, netip.AddrFrom4([4]byte{10, vrid, prio, byte(i)}))
			}
		}
		ipi.HopLimit = 255
		roundTrip(t, &q, ipi)
	})
}

func roundTrip(t *testing.T, p *Packet, ipi IPInfo) {
	t.Helper()
	b, err := p.Append(nil, ipi.Src, ipi.Dst)
	if err != nil {
		t.Fatalf("Append(%+v): %v", p, err)
	}
	if len(b) != p.Len() {
		t.Fatalf("Len %d, encoded %d", p.Len(), len(b))
	}
	ipi.HopLimit = 255
	var q Packet
	if err := Decode(b, ipi, &q); err != nil {
		t.Fatalf("Decode(Append(%+v)): %v", p, err)
	}
	if len(p.Addrs) == 0 && len(q.Addrs) == 0 {
		q.Addrs = p.Addrs // nil vs empty
	}
	if !reflect.DeepEqual(*p, q) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", q, *p)
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, g := range goldens {
		b.Run(g.name, func(b *testing.B) {
			buf := make([]byte, 0, MaxLen+AuthLen)
			b.ReportAllocs()
			b.SetBytes(int64(len(g.b)))
			for b.Loop() {
				var err error
				if buf, err = g.p.Append(buf[:0], g.ip.Src, g.ip.Dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, g := range goldens {
		b.Run(g.name, func(b *testing.B) {
			var p Packet
			b.ReportAllocs()
			b.SetBytes(int64(len(g.b)))
			for b.Loop() {
				if err := Decode(g.b, g.ip, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
