package health

import (
	"encoding/binary"
	"net/netip"
)

// The pure half of the SYN probe (syn.go): building the SYN, reading a
// reply, and matching it to the probe it answers. No socket here, so the
// tests feed it packets of their own.

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// synLen is the length of the SYN: a TCP header with one option (MSS), so
// that it looks like any client's to firewalls and to the real server.
const synLen = 24

// buildSYN writes into b (synLen bytes) a SYN from port sport to dport
// with sequence number seq. The checksum covers the IPv4 pseudo-header of
// src and dst when both are IPv4; for IPv6 the kernel computes it
// (IPV6_CHECKSUM), and it is left zero.
func buildSYN(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) {
	_ = b[synLen-1]
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], 0)      // ack
	b[12] = (synLen / 4) << 4                 // data offset
	b[13] = tcpSYN                            // flags
	binary.BigEndian.PutUint16(b[14:], 64240) // window, as Linux's first SYN
	b[16], b[17] = 0, 0                       // checksum
	b[18], b[19] = 0, 0                       // urgent pointer
	b[20], b[21] = 2, 4                       // MSS option
	binary.BigEndian.PutUint16(b[22:], 1460)
	if src.Is4() && dst.Is4() {
		binary.BigEndian.PutUint16(b[16:], tcpChecksum4(src.As4(), dst.As4(), b[:synLen]))
	}
}

// tcpChecksum4 is the checksum of an IPv4 TCP segment whose checksum
// field is zero.
func tcpChecksum4(src, dst [4]byte, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += 6 + uint32(len(seg)) // zero, protocol, TCP length
	add(seg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// reply is what a probe's answer says.
type reply struct {
	from  netip.Addr // the real server
	sport uint16     // its port
	dport uint16     // the probe's source port
	ack   uint32
	flags uint8
}

// parseReply reads a TCP segment that a raw socket received: an IPv4
// socket's starts with the IP header, an IPv6 socket's does not (from is
// then the sender's address, from the socket). False: not a TCP segment
// that could answer a SYN (no SYN-ACK, no RST), or truncated, or a
// fragment.
func parseReply(pkt []byte, v4 bool, from netip.Addr) (reply, bool) {
	var r reply
	seg := pkt
	if v4 {
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 6 {
			return r, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl+20 || binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
			return r, false
		}
		from = netip.AddrFrom4([4]byte(pkt[12:16]))
		seg = pkt[ihl:]
	}
	if len(seg) < 20 {
		return r, false
	}
	r = reply{
		from:  from.Unmap(),
		sport: binary.BigEndian.Uint16(seg[0:]),
		dport: binary.BigEndian.Uint16(seg[2:]),
		ack:   binary.BigEndian.Uint32(seg[8:]),
		flags: seg[13],
	}
	synAck := r.flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK
	rst := r.flags&tcpRST != 0
	return r, synAck || rst
}

// probeKey names an outstanding probe: the real server, its port and the
// probe's source port. A reply is the probe's if it comes from the real
// server's address and port to the source port, and acknowledges the
// probe's sequence number. The address is in its 16-byte form: a key
// without pointers hashes and compares as plain memory (a netip.Addr
// holds a pointer to its zone).
type probeKey struct {
	addr  [16]byte
	rport uint16
	lport uint16
}

// keyOf is the key of a probe to addr:rport from lport.
func keyOf(addr netip.Addr, rport, lport uint16) probeKey {
	return probeKey{addr: addr.Unmap().As16(), rport: rport, lport: lport}
}

// outstanding is a probe waiting for its answer.
type outstanding struct {
	j   *Job
	gen uint32
	seq uint32
}

// matcher is the table of outstanding probes. Not safe for concurrent use:
// the prober guards it.
type matcher struct {
	out map[probeKey]outstanding
}

func newMatcher() matcher { return matcher{out: make(map[probeKey]outstanding)} }

// add records a probe; false if its key is taken (pick another port).
func (m *matcher) add(k probeKey, o outstanding) bool {
	if _, ok := m.out[k]; ok {
		return false
	}
	m.out[k] = o
	return true
}

// match finds, and forgets, the probe that r answers: up is true for a
// SYN-ACK (the port listens), false for a RST (closed). ok is false for a
// packet that answers no probe (another connection's, a stale answer, a
// wrong acknowledgment number: left alone, it may be a forgery).
func (m *matcher) match(r reply) (o outstanding, up, ok bool) {
	k := keyOf(r.from, r.sport, r.dport)
	o, ok = m.out[k]
	if !ok || r.ack != o.seq+1 {
		return outstanding{}, false, false
	}
	delete(m.out, k)
	return o, r.flags&tcpRST == 0, true
}

// forget drops the probe at k if it is j's.
func (m *matcher) forget(k probeKey, j *Job) {
	if o, ok := m.out[k]; ok && o.j == j {
		delete(m.out, k)
	}
}
