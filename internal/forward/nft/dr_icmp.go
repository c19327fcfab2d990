package nft

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ICMP errors about DR flows (see docs/dr.md, "ICMP errors").
//
// A router on the path from a real server to a client that cannot pass a
// reply (fragmentation needed, IPv6 packet too big), or whose TTL ran out,
// sends its ICMP error to the reply's source: the VIP, which the network
// routes to the director. The real server that sent the reply must get it,
// or path MTU discovery never lowers its MTU and large replies are lost for
// good. IPVS's ip_vs_in_icmp finds the connection by the header the error
// quotes and transmits the error like the flow's packets; here the quoted
// header, read backwards (its destination is the client, its source the
// VIP), makes the flow map's key, and the error goes to the flow's real
// server the way the flow's packets do (dup, drop). An error whose flow is
// not in the map is left alone (the director's own stack sees it).
//
// The quoted header must be a plain one (IPv4 without options, IPv6 without
// extension headers: the transport header right after it), as a real
// server's TCP or UDP reply is.

// drICMPTypes are the ICMP errors IPVS passes on (ip_vs_in_icmp):
// destination unreachable (fragmentation needed among them), source quench,
// time exceeded.
var drICMPTypes = []byte{3, 4, 11}

// drICMPv6Types are the ICMPv6 errors (ip_vs_in_icmp_v6: every error
// type): destination unreachable, packet too big, time exceeded, parameter
// problem.
var drICMPv6Types = []byte{1, 2, 3, 4}

// drICMPRules adds, to d's dr_in chain, one rule per error type that
// forwards an error quoting a pinned flow's packet to the flow's real
// server.
func drICMPRules(c batch, d *drFam) {
	types, proto := drICMPTypes, byte(unix.IPPROTO_ICMP)
	if d.v6 {
		types, proto = drICMPv6Types, unix.IPPROTO_ICMPV6
	}
	for _, ty := range types {
		e := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{ty}},
		}
		e = append(e, drICMPKey(d.v6)...)
		_, data := drRegs(d.v6)
		e = append(e,
			&expr.Lookup{SourceRegister: reg32, DestRegister: data, IsDestRegSet: true, SetName: d.flows.Name},
			&expr.Dup{RegAddr: data},
			&expr.Verdict{Kind: expr.VerdictDrop},
		)
		c.AddRule(&nftables.Rule{Table: d.t, Chain: d.in, Exprs: e})
	}
}

// drICMPKey checks that the ICMP payload quotes a plain IP header and loads
// the flow key of the quoted packet into reg32+0...: the quoted packet is
// the reply (VIP:port -> client:port), the key the client's direction
// (protocol, client address, client port, VIP, VIP port), as drKey loads it.
func drICMPKey(v6 bool) []expr.Any {
	const q = 8 // the quoted header's offset in the ICMP message
	r := uint32(reg32)
	if v6 {
		// version 6 in the high nibble; the next header at 6, source at
		// 8, destination at 24, the transport header at 40.
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: q, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xf0}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x60}},
			&expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: q + 6, Len: 1},
			&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseTransportHeader, Offset: q + 24, Len: 16},
			&expr.Payload{DestRegister: r + 5, Base: expr.PayloadBaseTransportHeader, Offset: q + 40 + 2, Len: 2},
			&expr.Payload{DestRegister: r + 6, Base: expr.PayloadBaseTransportHeader, Offset: q + 8, Len: 16},
			&expr.Payload{DestRegister: r + 10, Base: expr.PayloadBaseTransportHeader, Offset: q + 40, Len: 2},
		}
	}
	// version 4, header length 5 words (no options); the protocol at 9,
	// source at 12, destination at 16, the transport header at 20.
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: q, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x45}},
		&expr.Payload{DestRegister: r, Base: expr.PayloadBaseTransportHeader, Offset: q + 9, Len: 1},
		&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseTransportHeader, Offset: q + 16, Len: 4},
		&expr.Payload{DestRegister: r + 2, Base: expr.PayloadBaseTransportHeader, Offset: q + 20 + 2, Len: 2},
		&expr.Payload{DestRegister: r + 3, Base: expr.PayloadBaseTransportHeader, Offset: q + 12, Len: 4},
		&expr.Payload{DestRegister: r + 4, Base: expr.PayloadBaseTransportHeader, Offset: q + 20, Len: 2},
	}
}
