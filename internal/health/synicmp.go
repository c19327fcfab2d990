package health

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"golang.org/x/net/bpf"
)

// ICMP destination unreachable for the SYN probes: a router (or the
// director's own kernel, when the neighbour does not answer ARP or
// neighbour discovery) that cannot deliver a probe says so with an ICMP
// error quoting the probe's IP header and the first bytes of its TCP
// header. A raw ICMP socket per family, filtered to those errors that
// quote a TCP segment from the probes' port range, reads them, and the
// probe they quote (its real server, ports and sequence number: a forger
// must know the sequence number, as for a RST) is down at once instead of
// at its timeout. "Fragmentation needed" (path MTU) is no failure and is
// left out; every other unreachable code (network, host, port, protocol,
// administratively prohibited) is.

// ICMP types and codes read.
const (
	icmp4Unreach      = 3
	icmp4FragNeeded   = 4 // code of icmp4Unreach: path MTU, not a failure
	icmp6Unreach      = 1
	icmp4QuoteOff     = 28 // the quoted IP header, after a 20-byte IP header and the 8-byte ICMP header
	icmp6QuoteOff     = 8  // a raw ICMPv6 socket's packet starts at the ICMPv6 header
	icmp6QuotedTCPOff = icmp6QuoteOff + 40
)

// unreachProgram is the raw ICMP socket's filter: accept a destination
// unreachable (not fragmentation needed, for IPv4) that quotes a TCP
// segment whose source port is in [lo, hi]. IPv4: an ICMP error carries no
// IP options (routers send none), so the quote starts at 28; IPv6: no
// extension header between the quoted IPv6 header and TCP (the probes
// carry none).
func unreachProgram(v4 bool, lo, hi uint16) []bpf.Instruction {
	reject := bpf.RetConstant{Val: 0}
	if v4 {
		return []bpf.Instruction{
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x45, SkipTrue: 11}, // IPv4, no options
			bpf.LoadAbsolute{Off: 20, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmp4Unreach, SkipTrue: 9},
			bpf.LoadAbsolute{Off: 21, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmp4FragNeeded, SkipTrue: 7},
			bpf.LoadAbsolute{Off: icmp4QuoteOff + 9, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 5}, // quotes TCP
			bpf.LoadMemShift{Off: icmp4QuoteOff},                    // X = the quoted header's length
			bpf.LoadIndirect{Off: icmp4QuoteOff, Size: 2},           // its TCP source port
			bpf.JumpIf{Cond: bpf.JumpLessThan, Val: uint32(lo), SkipTrue: 2},
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(hi), SkipTrue: 1},
			bpf.RetConstant{Val: 0xffff},
			reject,
		}
	}
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmp6Unreach, SkipTrue: 6},
		bpf.LoadAbsolute{Off: icmp6QuoteOff + 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 6, SkipTrue: 4}, // next header TCP
		bpf.LoadAbsolute{Off: icmp6QuotedTCPOff, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: uint32(lo), SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: uint32(hi), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		reject,
	}
}

// unreach is what an ICMP error says of a probe.
type unreach struct {
	key probeKey
	seq uint32 // the quoted sequence number: the probe's
	err syscall.Errno
}

// parseUnreach reads an ICMP destination unreachable that a raw ICMP
// socket received (IPv4: behind its IP header; IPv6: from the ICMPv6
// header) and quotes a TCP segment; false for anything else.
func parseUnreach(pkt []byte, v4 bool) (unreach, bool) {
	var u unreach
	var code byte
	var quote []byte
	if v4 {
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 1 {
			return u, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl+8+20+8 || pkt[ihl] != icmp4Unreach {
			return u, false
		}
		code, quote = pkt[ihl+1], pkt[ihl+8:]
		if code == icmp4FragNeeded || quote[0]>>4 != 4 || quote[9] != 6 {
			return u, false
		}
		qhl := int(quote[0]&0x0f) * 4
		if qhl < 20 || len(quote) < qhl+8 {
			return u, false
		}
		u.key.addr = netip.AddrFrom4([4]byte(quote[16:20])).As16()
		quote = quote[qhl:]
		switch code {
		case 3: // port
			u.err = syscall.ECONNREFUSED
		case 0, 6: // network, network unknown
			u.err = syscall.ENETUNREACH
		default: // host, protocol, prohibited, ...
			u.err = syscall.EHOSTUNREACH
		}
	} else {
		if len(pkt) < icmp6QuotedTCPOff+8 || pkt[0] != icmp6Unreach || pkt[icmp6QuoteOff]>>4 != 6 || pkt[icmp6QuoteOff+6] != 6 {
			return u, false
		}
		code = pkt[1]
		u.key.addr = [16]byte(pkt[icmp6QuoteOff+24 : icmp6QuoteOff+40])
		quote = pkt[icmp6QuotedTCPOff:]
		switch code {
		case 4: // port
			u.err = syscall.ECONNREFUSED
		case 0: // no route
			u.err = syscall.ENETUNREACH
		default: // address, prohibited, policy, ...
			u.err = syscall.EHOSTUNREACH
		}
	}
	u.key.lport = binary.BigEndian.Uint16(quote[0:])
	u.key.rport = binary.BigEndian.Uint16(quote[2:])
	u.seq = binary.BigEndian.Uint32(quote[4:])
	return u, true
}

// matchQuote finds, and forgets, the probe that an ICMP error quotes: its
// key and its sequence number.
func (m *matcher) matchQuote(u unreach) (outstanding, bool) {
	o, ok := m.out[u.key]
	if !ok || o.seq != u.seq {
		return outstanding{}, false
	}
	delete(m.out, u.key)
	return o, true
}
