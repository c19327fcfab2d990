package health

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// answer builds what a real server sends back to a SYN: a TCP segment
// from src:sport to dport with the flags and acknowledgment number, behind
// an IPv4 header (with options when ihl > 20) when v4.
func answer(v4 bool, ihl int, src netip.Addr, sport, dport uint16, ack uint32, flags uint8) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], 12345)
	binary.BigEndian.PutUint32(seg[8:], ack)
	seg[12] = 5 << 4
	seg[13] = flags
	if !v4 {
		return seg
	}
	ip := make([]byte, ihl)
	ip[0] = 4<<4 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+len(seg)))
	ip[8], ip[9] = 64, 6
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], []byte{127, 0, 0, 1})
	return append(ip, seg...)
}

func TestBuildSYNChecksum(t *testing.T) {
	var b [synLen]byte
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	buildSYN(b[:], src, dst, 61000, 80, 0xdeadbeef)
	if b[13] != tcpSYN || binary.BigEndian.Uint32(b[4:]) != 0xdeadbeef || b[12]>>4 != synLen/4 {
		t.Fatalf("SYN header %x", b)
	}
	// A segment with its checksum in place sums to zero (all ones before
	// the complement): recomputing over it gives 0.
	if got := tcpChecksum4(src.As4(), dst.As4(), b[:]); got != 0 {
		t.Fatalf("checksum does not verify: %#04x", got)
	}
	buildSYN(b[:], netip.MustParseAddr("::1"), netip.MustParseAddr("::1"), 61000, 80, 1)
	if b[16] != 0 || b[17] != 0 {
		t.Fatal("IPv6 SYN carries a checksum: the kernel computes it")
	}
}

func TestMatcher(t *testing.T) {
	srv := netip.MustParseAddr("192.0.2.10")
	j1, j2 := &Job{}, &Job{}
	m := newMatcher()
	k1 := keyOf(srv, 80, 61000)
	k2 := keyOf(srv, 81, 61001)
	if !m.add(k1, outstanding{j: j1, gen: 3, seq: 100}) || !m.add(k2, outstanding{j: j2, gen: 1, seq: 0xffffffff}) {
		t.Fatal("add")
	}
	if m.add(k1, outstanding{j: j2}) {
		t.Fatal("a key in use was taken again")
	}
	parse := func(pkt []byte) reply {
		t.Helper()
		r, ok := parseReply(pkt, true, netip.Addr{})
		if !ok {
			t.Fatalf("parseReply refused %x", pkt)
		}
		return r
	}
	// Not answers: wrong ack, wrong port, another server.
	for _, pkt := range [][]byte{
		answer(true, 20, srv, 80, 61000, 100, tcpSYN|tcpACK),                               // ack not seq+1
		answer(true, 20, srv, 80, 61002, 101, tcpSYN|tcpACK),                               // not our port
		answer(true, 20, netip.MustParseAddr("192.0.2.11"), 80, 61000, 101, tcpSYN|tcpACK), // other server
		answer(true, 20, srv, 81, 61000, 101, tcpSYN|tcpACK),                               // other server port
	} {
		if _, _, ok := m.match(parse(pkt)); ok {
			t.Fatalf("%x matched", pkt)
		}
	}
	// A SYN-ACK (behind an IP header with options) says up.
	o, up, ok := m.match(parse(answer(true, 24, srv, 80, 61000, 101, tcpSYN|tcpACK)))
	if !ok || !up || o.j != j1 || o.gen != 3 {
		t.Fatalf("SYN-ACK: %+v up=%v ok=%v", o, up, ok)
	}
	if _, _, ok := m.match(parse(answer(true, 20, srv, 80, 61000, 101, tcpSYN|tcpACK))); ok {
		t.Fatal("a second answer matched a probe already answered")
	}
	// A RST (the sequence number wraps) says down.
	o, up, ok = m.match(parse(answer(true, 20, srv, 81, 61001, 0, tcpRST|tcpACK)))
	if !ok || up || o.j != j2 {
		t.Fatalf("RST: %+v up=%v ok=%v", o, up, ok)
	}
	// forget drops only the job's own probe.
	m.add(k1, outstanding{j: j1, seq: 5})
	m.forget(k1, j2)
	if len(m.out) != 1 {
		t.Fatal("forget dropped another job's probe")
	}
	m.forget(k1, j1)
	if len(m.out) != 0 {
		t.Fatal("forget kept the probe")
	}
}

func TestParseReply(t *testing.T) {
	srv := netip.MustParseAddr("2001:db8::1")
	r, ok := parseReply(answer(false, 0, netip.Addr{}, 443, 62000, 7, tcpSYN|tcpACK), false, srv)
	if !ok || r.from != srv || r.sport != 443 || r.dport != 62000 || r.ack != 7 {
		t.Fatalf("IPv6 reply %+v ok=%v", r, ok)
	}
	v4 := netip.MustParseAddr("127.0.0.1")
	for name, pkt := range map[string][]byte{
		"SYN alone":    answer(true, 20, v4, 80, 61000, 0, tcpSYN),
		"ACK alone":    answer(true, 20, v4, 80, 61000, 1, tcpACK),
		"FIN-ACK":      answer(true, 20, v4, 80, 61000, 1, tcpFIN|tcpACK),
		"truncated":    answer(true, 20, v4, 80, 61000, 1, tcpSYN|tcpACK)[:30],
		"short":        {0x45, 0},
		"not IPv4":     append([]byte{0x65}, answer(true, 20, v4, 80, 61000, 1, tcpRST)[1:]...),
		"fragment":     func() []byte { p := answer(true, 20, v4, 80, 61000, 1, tcpRST); p[7] = 8; return p }(),
		"bad ihl":      func() []byte { p := answer(true, 20, v4, 80, 61000, 1, tcpRST); p[0] = 0x43; return p }(),
		"not TCP":      func() []byte { p := answer(true, 20, v4, 80, 61000, 1, tcpRST); p[9] = 17; return p }(),
		"v6 too short": answer(false, 0, netip.Addr{}, 80, 61000, 1, tcpRST)[:19],
	} {
		v := name != "v6 too short"
		if _, ok := parseReply(pkt, v, srv); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReplyFilter(t *testing.T) {
	const lo, hi = 61000, 65535
	for _, v4 := range []bool{true, false} {
		vm, err := bpf.NewVM(replyProgram(v4, lo, hi))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replyFilter(v4, lo, hi); err != nil {
			t.Fatal(err)
		}
		src := netip.MustParseAddr("127.0.0.1")
		for _, c := range []struct {
			ihl   int
			dport uint16
			flags uint8
			want  bool
		}{
			{20, 61000, tcpSYN | tcpACK, true},
			{24, 65535, tcpSYN | tcpACK, true},
			{20, 62000, tcpRST | tcpACK, true},
			{20, 62000, tcpRST, true},
			{20, 60999, tcpSYN | tcpACK, false}, // a port of the kernel's
			{20, 80, tcpRST, false},
			{20, 62000, tcpSYN, false}, // a SYN to a server on a high port
			{20, 62000, tcpACK, false},
			{28, 62000, tcpACK | tcpFIN, false},
		} {
			pkt := answer(v4, c.ihl, src, 80, c.dport, 1, c.flags)
			n, err := vm.Run(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != c.want {
				t.Errorf("v4=%v ihl=%d port %d flags %#x: accepted=%v, want %v", v4, c.ihl, c.dport, c.flags, got, c.want)
			}
		}
	}
}

func TestPortsOutside(t *testing.T) {
	for _, c := range []struct {
		elo, ehi int
		lo, hi   uint16
		err      bool
	}{
		{32768, 60999, 61000, 65535, false},
		{1024, 65535, 0, 0, true},
		{40000, 65535, 1024, 39999, false},
		{1100, 65400, 0, 0, true}, // 135 above, 76 below: too few either way
	} {
		lo, hi, err := portsOutside(c.elo, c.ehi)
		if (err != nil) != c.err || lo != c.lo || hi != c.hi {
			t.Errorf("portsOutside(%d, %d) = %d, %d, %v", c.elo, c.ehi, lo, hi, err)
		}
	}
}

// unreachPacket builds an ICMP destination unreachable of code code that
// quotes a SYN from sport to dst:dport with sequence number seq: behind an
// IPv4 header when v4 (a raw ICMPv6 socket's packet starts at the ICMPv6
// header).
func unreachPacket(v4 bool, typ, code byte, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	tcp := make([]byte, 8)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	if v4 {
		quote := make([]byte, 20)
		quote[0], quote[9] = 0x45, 6
		copy(quote[12:], []byte{10, 0, 0, 1})
		copy(quote[16:], dst.AsSlice())
		pkt := make([]byte, 28)
		pkt[0], pkt[9] = 0x45, 1
		pkt[20], pkt[21] = typ, code
		return append(append(pkt, quote...), tcp...)
	}
	quote := make([]byte, 40)
	quote[0], quote[6] = 6<<4, 6
	copy(quote[24:], dst.AsSlice())
	return append(append([]byte{typ, code, 0, 0, 0, 0, 0, 0}, quote...), tcp...)
}

func TestUnreachFilterAndParse(t *testing.T) {
	const lo, hi = 61000, 65535
	for _, v4 := range []bool{true, false} {
		vm, err := bpf.NewVM(unreachProgram(v4, lo, hi))
		if err != nil {
			t.Fatal(err)
		}
		dst, unreachType, hostCode, portCode := netip.MustParseAddr("10.1.2.3"), byte(3), byte(1), byte(3)
		if !v4 {
			dst, unreachType, hostCode, portCode = netip.MustParseAddr("2001:db8::3"), 1, 3, 4
		}
		for _, c := range []struct {
			typ, code byte
			sport     uint16
			want      string // "" rejected
		}{
			{unreachType, hostCode, 62000, "no route to host"},
			{unreachType, portCode, 65535, "connection refused"},
			{unreachType, 0, 61000, "network is unreachable"},
			{unreachType, hostCode, 60999, ""}, // a port of the kernel's
			{unreachType + 8, 0, 62000, ""},    // another type
		} {
			pkt := unreachPacket(v4, c.typ, c.code, dst, c.sport, 80, 777)
			n, err := vm.Run(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != (c.want != "") {
				t.Errorf("v4=%v type %d code %d port %d: accepted=%v", v4, c.typ, c.code, c.sport, got)
			}
			u, ok := parseUnreach(pkt, v4)
			if c.want == "" {
				continue
			}
			if !ok || u.key != keyOf(dst, 80, c.sport) || u.seq != 777 || u.err.Error() != c.want {
				t.Errorf("v4=%v code %d: parsed %+v %v, want %q", v4, c.code, u, ok, c.want)
			}
		}
		if v4 {
			// Fragmentation needed is path MTU discovery, not a failure.
			pkt := unreachPacket(true, 3, 4, dst, 62000, 80, 777)
			if n, _ := vm.Run(pkt); n > 0 {
				t.Error("fragmentation needed accepted by the filter")
			}
			if _, ok := parseUnreach(pkt, true); ok {
				t.Error("fragmentation needed parsed as unreachable")
			}
		}
	}
	// The matcher takes the quote only with the probe's sequence number.
	m := newMatcher()
	k := keyOf(netip.MustParseAddr("10.1.2.3"), 80, 62000)
	m.add(k, outstanding{gen: 1, seq: 777})
	if _, ok := m.matchQuote(unreach{key: k, seq: 778}); ok {
		t.Fatal("a quote with another sequence number matched")
	}
	if o, ok := m.matchQuote(unreach{key: k, seq: 777}); !ok || o.gen != 1 {
		t.Fatal("the probe's quote did not match")
	}
	if len(m.out) != 0 {
		t.Fatal("a matched probe was not forgotten")
	}
}

func TestParseStamp(t *testing.T) {
	var c [cmsgSpace]byte
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	h.SetLen(cmsgSpace)
	*(*unix.Timespec)(unsafe.Pointer(&c[unix.SizeofCmsghdr])) = unix.Timespec{Sec: 1700000000, Nsec: 123}
	if got := parseStamp(c[:]); !got.Equal(time.Unix(1700000000, 123)) {
		t.Fatalf("stamp %v", got)
	}
	if !parseStamp(c[:8]).IsZero() {
		t.Fatal("a truncated control message gave a stamp")
	}
	h.Type = unix.SCM_RIGHTS
	if !parseStamp(c[:]).IsZero() {
		t.Fatal("another control message gave a stamp")
	}
}
