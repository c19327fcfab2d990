package vrrp

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// goldenAH is the first advert keepalived 2.2.7 sent (captured with tcpdump
// in a network namespace) for
//
//	vrrp_instance VI_1 { interface v22x; virtual_router_id 51; priority 100;
//	  advert_int 1; authentication { auth_type AH; auth_pass secret }
//	  virtual_ipaddress { 10.77.0.100/24 } }
//
// from 10.77.0.1: IPv4 header (TOS 0xc0, id 1, TTL 255, protocol 51), AH
// (next header 112, length 4, SPI 10.77.0.1, sequence 1, ICV), VRRPv2 (auth
// type 2, zero authentication data).
var goldenAH = mustHex(`45c0 0040 0001 0000 ff33 d069 0a4d 0001
	e000 0012 7004 0000 0a4d 0001 0000 0001
	ef00 47fe 5152 d4b4 bff9 ea61 2133 6401
	0201 6e19 0a4d 0064 0000 0000 0000 0000`)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

func key(s string) (k [AuthLen]byte) {
	copy(k[:], s)
	return k
}

func TestDecodeAHKeepalivedGolden(t *testing.T) {
	var p Packet
	ipi, err := DecodeAH(goldenAH, key("secret"), false, &p)
	if err != nil {
		t.Fatal(err)
	}
	if ipi.Src != ip("10.77.0.1") || ipi.Dst != MulticastIPv4 || ipi.HopLimit != 255 {
		t.Errorf("IP info %+v", ipi)
	}
	if !p.AH || p.Seq != 1 || p.Version != V2 || p.VRID != 51 || p.Priority != 100 || p.AuthType != AuthAH ||
		p.AdverInt != 1 || len(p.Addrs) != 1 || p.Addrs[0] != ip("10.77.0.100") {
		t.Errorf("packet %+v", p)
	}
}

// AppendAH builds keepalived's bytes exactly: the same header fields, the
// same ICV. Only the IP checksum differs, the kernel's to fill in.
func TestAppendAHMatchesKeepalived(t *testing.T) {
	p := Packet{Version: V2, VRID: 51, Priority: 100, AdverInt: 1, AuthType: AuthAH, Addrs: []netip.Addr{ip("10.77.0.100")}}
	b, err := p.AppendAH([]byte{0xee}, AHParams{Src: ip("10.77.0.1"), Dst: MulticastIPv4, ID: 1, Seq: 1}, key("secret"))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), goldenAH...)
	want[10], want[11] = 0, 0
	if !bytes.Equal(b[1:], want) || b[0] != 0xee {
		t.Fatalf("AppendAH:\n got % x\nwant % x", b[1:], want)
	}
	// And it reads back, checksum or not.
	var q Packet
	if _, err := DecodeAH(b[1:], key("secret"), false, &q); err != nil || q.Seq != 1 {
		t.Fatalf("DecodeAH of AppendAH: %v seq %d", err, q.Seq)
	}
}

func TestDecodeAHRejects(t *testing.T) {
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), goldenAH...)) }
	tests := []struct {
		name   string
		b      []byte
		key    string
		uni    bool
		reason Reason
	}{
		{"wrong key", goldenAH, "secreT", false, ReasonAuthFailure},
		{"short key differs", goldenAH, "secre", false, ReasonAuthFailure},
		{"priority changed", mut(func(b []byte) []byte { b[46] = 200; return b }), "secret", false, ReasonAuthFailure},
		{"seq changed", mut(func(b []byte) []byte { b[31] = 2; return b }), "secret", false, ReasonAuthFailure},
		{"id changed", mut(func(b []byte) []byte { b[5] = 9; return b }), "secret", false, ReasonAuthFailure},
		{"ttl zeroed in icv for unicast only", goldenAH, "secret", true, ReasonAuthFailure},
		{"next header", mut(func(b []byte) []byte { b[20] = 6; return b }), "secret", false, ReasonNotVRRP},
		{"ah length", mut(func(b []byte) []byte { b[21] = 5; return b }), "secret", false, ReasonLength},
		{"not AH", mut(func(b []byte) []byte { b[9] = 112; return b }), "secret", false, ReasonAuthMismatch},
		{"ipv6", mut(func(b []byte) []byte { b[0] = 0x65; return b }), "secret", false, ReasonAddrFamily},
		{"truncated", goldenAH[:60], "secret", false, ReasonLength},
		{"tiny", goldenAH[:19], "secret", false, ReasonShort},
		{"ihl", mut(func(b []byte) []byte { b[0] = 0x44; return b }), "secret", false, ReasonShort},
		{"longer than header says", append(append([]byte(nil), goldenAH...), 0), "secret", false, ReasonLength},
	}
	for _, tt := range tests {
		var p Packet
		_, err := DecodeAH(tt.b, key(tt.key), tt.uni, &p)
		if ReasonOf(err) != tt.reason {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.reason)
		}
	}
	// The mutable fields may change on the way: TOS, flags, checksum.
	b := mut(func(b []byte) []byte { b[1], b[6], b[10] = 0, 0x40, 0; return b })
	var p Packet
	if _, err := DecodeAH(b, key("secret"), false, &p); err != nil {
		t.Errorf("mutable fields changed: %v", err)
	}
	// Unicast: the TTL is outside the ICV and unchecked.
	q := Packet{Version: V2, VRID: 7, Priority: 9, AdverInt: 2, AuthType: AuthAH}
	u, err := q.AppendAH(nil, AHParams{Src: ip("10.0.0.1"), Dst: ip("10.0.0.2"), ID: 5, Seq: 9, Unicast: true}, key("k"))
	if err != nil {
		t.Fatal(err)
	}
	u[8] = 60 // routed
	if _, err := DecodeAH(u, key("k"), true, &p); err != nil || p.Seq != 9 {
		t.Errorf("unicast AH with TTL 60: %v", err)
	}
}

func TestAppendAHRefuses(t *testing.T) {
	ok := Packet{Version: V2, VRID: 1, Priority: 1, AdverInt: 1, AuthType: AuthAH}
	h := AHParams{Src: ip("10.0.0.1"), Dst: MulticastIPv4, ID: 1}
	for name, f := range map[string]func(p *Packet, h *AHParams){
		"v3":        func(p *Packet, _ *AHParams) { p.Version = V3 },
		"not AH":    func(p *Packet, _ *AHParams) { p.AuthType = AuthSimple },
		"ipv6":      func(_ *Packet, h *AHParams) { h.Src = ip("fe80::1") },
		"id 0":      func(_ *Packet, h *AHParams) { h.ID = 0 },
		"bad vrrp":  func(p *Packet, _ *AHParams) { p.AdverInt = 0 },
		"no dst":    func(_ *Packet, h *AHParams) { h.Dst = netip.Addr{} },
		"ipv6 addr": func(p *Packet, _ *AHParams) { p.Addrs = []netip.Addr{ip("fe80::1")} },
	} {
		p, hh := ok, h
		f(&p, &hh)
		if b, err := p.AppendAH([]byte{1}, hh, key("x")); err == nil || len(b) != 1 {
			t.Errorf("%s: accepted (%x, %v)", name, b, err)
		}
	}
}

// A master and a backup with AH: each advert carries the next number of
// the shared counter, a backup takes the highest it hears, replays and
// adverts without the AH header are refused, and a master hearing a lower
// priority master syncs its counter past it (keepalived's rules).
func TestMachineAH(t *testing.T) {
	c := cfg4("10.0.0.2", 100)
	c.AuthType, c.AuthPass = AuthAH, "secret"
	m := newM(t, c)
	m.Start(t0)
	expect(t, m, "notify BACKUP")
	if m.AuthKey() != key("secret") {
		t.Fatal("AuthKey")
	}
	peer := func(prio uint8, seq uint32) *Packet {
		p := m.Advert(prio)
		p.AH, p.Seq = true, seq
		return &p
	}
	step(t, m, at(time.Second), peer(150, 40), "10.0.0.9")
	if err := m.Step(at(2*time.Second), peer(150, 40), ip("10.0.0.9")); err != ErrReplay {
		t.Fatalf("replayed seq: %v", err)
	}
	if err := m.Step(at(2*time.Second), peer(150, 12), ip("10.0.0.9")); err != ErrReplay {
		t.Fatalf("older seq: %v", err)
	}
	plain := m.Advert(150)
	if err := m.Step(at(2*time.Second), &plain, ip("10.0.0.9")); err != ErrAuthMismatch {
		t.Fatalf("AH auth type without the AH header: %v", err)
	}
	none := *peer(150, 41)
	none.AuthType = AuthNone
	if err := m.Step(at(2*time.Second), &none, ip("10.0.0.9")); err != ErrAuthMismatch {
		t.Fatalf("auth type none inside AH: %v", err)
	}
	if s := m.Stats(); s.Dropped[ReasonReplay] != 2 || s.Dropped[ReasonAuthMismatch] != 2 {
		t.Fatalf("drops %v", s.Dropped)
	}
	// The master goes silent: we take over numbering from 41.
	m.Tick(at(time.Second + m.MasterDownInterval()))
	as := m.Ready()
	if kinds(as) != "log master down timer expired; add-vips accept=false; send-advert priority 100 seq 41; garp x5; notify MASTER" {
		t.Fatalf("takeover: %s", kinds(as))
	}
	m.Tick(at(time.Second + m.MasterDownInterval() + time.Second))
	expect(t, m, "send-advert priority 100 seq 42")
	// A lower priority master numbered 500: we sync to 501, answer with 502.
	step(t, m, at(10*time.Second), peer(50, 500), "10.0.0.9")
	expect(t, m, "log lower priority master (split brain) from 10.0.0.9 priority 50; send-advert priority 100 seq 502")
	// Stopping says goodbye with the next number.
	m.Shutdown(at(11 * time.Second))
	if got := kinds(m.Ready()); !strings.HasPrefix(got, "send-advert priority 0 seq 503") {
		t.Fatalf("shutdown: %s", got)
	}
}

// At the top of the sequence space the counter stops (the master's adverts
// are then refused, so a peer takes over) and restarts from 0 when it next
// becomes master without having heard a peer since, as keepalived does.
func TestMachineAHCycle(t *testing.T) {
	c := cfg4("10.0.0.2", 100)
	c.AuthType, c.AuthPass = AuthAH, "secret"
	m := newM(t, c)
	m.Start(t0)
	m.Ready()
	p := m.Advert(150)
	p.AH, p.Seq = true, 0xfffffffd
	step(t, m, at(time.Second), &p, "10.0.0.9")
	m.Tick(at(time.Second + m.MasterDownInterval()))
	if got := kinds(m.Ready()); !strings.Contains(got, "seq 4294967294") {
		t.Fatalf("takeover: %s", got)
	}
	m.Tick(at(time.Second + m.MasterDownInterval() + time.Second))
	expect(t, m, "send-advert priority 100 seq 4294967294") // stuck: cycled
	// A fault and back: no advert heard, so the flag is still set when we
	// become master again.
	m.SetFault(at(20*time.Second), "interface eth0", true)
	m.SetFault(at(20*time.Second), "interface eth0", false)
	m.Ready()
	m.Tick(at(20*time.Second + m.MasterDownInterval()))
	if got := kinds(m.Ready()); !strings.Contains(got, "send-advert priority 100 seq 1;") {
		t.Fatalf("master again after the cycle: %s", got)
	}
}

// FuzzDecodeAH checks that DecodeAH never panics on any bytes, and that
// every packet AppendAH builds from the fuzzer's fields decodes back equal
// with the right key and fails with any other.
func FuzzDecodeAH(f *testing.F) {
	f.Add(goldenAH, "secret", false, uint8(51), uint8(100), uint16(1), uint32(1), uint8(1))
	f.Add([]byte{0x45}, "", true, uint8(0), uint8(0), uint16(0), uint32(0), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, pass string, unicast bool, vrid, prio uint8, id uint16, seq uint32, naddr uint8) {
		k := key(pass)
		var p Packet
		if _, err := DecodeAH(b, k, unicast, &p); err == nil {
			if !p.AH || p.AuthType != AuthAH || p.Version != V2 {
				t.Fatalf("accepted without AH: %+v", p)
			}
		} else if ReasonOf(err) == ReasonNone {
			t.Fatalf("untyped error %v", err)
		}
		q := Packet{Version: V2, VRID: vrid, Priority: prio, AdverInt: uint16(vrid)%MaxAdverIntV2 + 1, AuthType: AuthAH}
		for i := range int(naddr % 8) {
			q.Addrs = append(q.Addrs, netip.AddrFrom4([4]byte{10, vrid, prio, byte(i)}))
		}
		dst := MulticastIPv4
		if unicast {
			dst = ip("10.0.0.2")
		}
		h := AHParams{Src: ip("10.0.0.1"), Dst: dst, ID: id | 1, Seq: seq, Unicast: unicast}
		pkt, err := q.AppendAH(nil, h, k)
		if err != nil {
			t.Fatal(err)
		}
		var r Packet
		ipi, err := DecodeAH(pkt, k, unicast, &r)
		if err != nil || r.Seq != seq || r.VRID != vrid || r.Priority != prio || len(r.Addrs) != len(q.Addrs) || ipi.Src != h.Src || ipi.Dst != dst {
			t.Fatalf("round trip: %v %+v", err, r)
		}
		other := k
		other[0] ^= 1
		if _, err := DecodeAH(pkt, other, unicast, &r); ReasonOf(err) != ReasonAuthFailure {
			t.Fatalf("another key: %v", err)
		}
	})
}
