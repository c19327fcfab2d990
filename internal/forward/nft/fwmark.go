package nft

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// Firewall-mark services (ipvsadm -f; docs/fwmark.md). The operator's own
// rules set the packet mark; govs matches it instead of a VIP and port:
//
//   - Each fwmark service has two plans, tcp and udp (IPVS's fwmark
//     services take every protocol; these are the two the kernel dataplane
//     translates), programmed before the address services: IPVS looks the
//     mark up first.
//   - chain queue: the flow's first packet with "meta mark N" gets
//     "ct mark set N", then goes to NFQUEUE (queue-scheduled) or is accepted
//     (so no address service's queue rule takes it). The verdict's mark
//     replaces the packet mark, so the dnat chain jumps by "ct mark N"; the
//     service chain looks the verdict's mark up, then sets the packet mark
//     back to N (the operator may route by it). The conntrack mark of every
//     fwmark flow is its service's mark: flowService and the statistics
//     tell the flows apart by it, and the real servers' NFQUEUE marks never
//     take a fwmark service's value (Dataplane.plan).
//   - chain snat (fullnat): "ct mark N" instead of the original VIP:port.
//   - DR (chain dr_in, before conntrack, priority raw): "meta mark N"; the
//     operator's marking rule must run before it (priority below -300).
//     dr_pick jumps by the service's verdict marks (or N: bypass).
//   - A real server without a port (port 0) keeps the packet's destination
//     port: its service's maps hold addresses only and DNAT leaves the port
//     (config forbids mixing, so one map serves the service).
//
// Read by this file from the snapshot's desired.Service: FWMark, IPv6,
// and, as for every service, Protocol (ignored: both plans), Forwarding,
// the scheduler, SNAT, the real servers and the sorry server (their Addr,
// port 0 meaning none); from the running director.VirtualService only its
// FWMark and IPv6 (identity) for the flows' statistics.

// markKey is the view's key of a fwmark service.
func markKey(mark uint32, v6 bool) vipKey { return vipKey{mark: mark, v6: v6} }

// key is p's view key: its VIP, or its mark.
func (p *plan) key() vipKey {
	if p.fwmark != 0 {
		return markKey(p.fwmark, p.v6)
	}
	return vipKey{proto: p.proto, addr: p.vip}
}

// fwmarksOf is the set of the fwmark services' marks.
func fwmarksOf(services []*desired.Service) map[uint32]bool {
	out := map[uint32]bool{}
	for _, s := range services {
		if s.FWMark != 0 {
			out[s.FWMark] = true
		}
	}
	return out
}

// serviceKey is s's view key: its protocol and VIP, or its mark.
func serviceKey(s *desired.Service) vipKey {
	if s.FWMark != 0 {
		return markKey(s.FWMark, s.IPv6)
	}
	return vipKey{proto: s.Protocol.Number(), addr: s.VIP}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// udpTwin is the udp plan of the fwmark service of tcp plan p: the same
// choice of real servers (the same maps' contents) in chains of its own.
func udpTwin(p *plan) *plan {
	u := *p
	u.proto, u.chain = 17, p.chain+"u"
	return &u
}

// noPort reports whether p's real servers keep the packet's port: a
// fwmark service whose real servers have none.
func noPort(p *plan) bool {
	if p.fwmark == 0 {
		return false
	}
	for _, a := range p.slots {
		if a.IsValid() {
			return a.Port() == 0
		}
	}
	for _, a := range p.marks {
		return a.Port() == 0
	}
	return false
}

// addFWMark adds fwmark plan p's service e to the view.
func (v *view) addFWMark(p *plan, e director.ServiceSnapshot) {
	v.byMark[p.key()] = e.Live
	if !p.dr {
		return
	}
	for _, r := range e.Desired.Served() {
		v.drRIP[r.Addr.Addr()] = e.Live
	}
}

// flowMarkService is the fwmark service of a conntrack flow, by its mark,
// and its real server: the reply's source, or that address with port 0
// when the service's real server has no port.
func flowMarkService(v *view, f *conntrack.Flow) (*director.VirtualService, netip.AddrPort, bool) {
	if f.Mark == 0 || len(v.byMark) == 0 {
		return nil, netip.AddrPort{}, false
	}
	vs := v.byMark[markKey(f.Mark, !f.TupleOrig.IP.SourceAddress.Unmap().Is4())]
	if vs == nil {
		return nil, netip.AddrPort{}, false
	}
	r := f.TupleReply
	return vs, fwmDest(v.want[vs], netip.AddrPortFrom(r.IP.SourceAddress.Unmap(), r.Proto.SourcePort)), true
}

// fwmDest is the real server of fwmark service vs at ap: ap itself, or its
// address with port 0 (the packet's port) when no real server has ap.
func fwmDest(want *desired.Service, ap netip.AddrPort) netip.AddrPort {
	if want != nil {
		if _, ok := want.Real(ap); ok {
			return ap
		}
	}
	return netip.AddrPortFrom(ap.Addr(), 0)
}

// flowMarkKey is the markKey of a flow's conntrack mark (for the retired
// services, which are no longer in the view).
func flowMarkKey(f *conntrack.Flow) vipKey {
	return markKey(f.Mark, !f.TupleOrig.IP.SourceAddress.Unmap().Is4())
}

// drFlowService is the service of a DR flow: by its VIP, or, for a fwmark
// service, by its real server's address.
func drFlowService(v *view, fl drFlow) *director.VirtualService {
	if vs := v.byVIP[vipKey{proto: fl.proto, addr: fl.vip}]; vs != nil {
		return vs
	}
	return v.drRIP[fl.rs]
}

// vsIPv6 reports whether vs is of the IPv6 family.
func vsIPv6(vs *director.VirtualService) bool {
	if vs.FWMark != 0 {
		return vs.IPv6
	}
	return vs.Address.Addr().Is6()
}

// matchMark matches the packets of fwmark plan p by their packet mark:
// family, "meta mark N", protocol.
func matchMark(p *plan) []expr.Any {
	return markMatch(p, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, p.fwmark)
}

// matchCtMark matches the new flows of fwmark plan p by the conntrack mark
// the queue chain set: family, "ct mark N", protocol.
func matchCtMark(p *plan) []expr.Any {
	return markMatch(p, &expr.Ct{Key: expr.CtKeyMARK, Register: 1}, p.fwmark)
}

func markMatch(p *plan, load expr.Any, mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(nfproto(p.v6))}},
		load,
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
	}
}

// matchNew matches the new flows the dnat chain sends to p's chain.
func matchNew(p *plan) []expr.Any {
	if p.fwmark != 0 {
		return matchCtMark(p)
	}
	return matchVIP(p)
}

// markReg is the register that carries a fwmark service's mark back into
// the packet mark, clear of the address and port registers.
const markReg = unix.NFT_REG32_15

// restoreMark sets the packet mark back to p's fwmark (after a lookup of
// the verdict's mark); nothing for an address service.
func restoreMark(p *plan) []expr.Any {
	if p.fwmark == 0 {
		return nil
	}
	return []expr.Any{
		&expr.Immediate{Register: markReg, Data: binaryutil.NativeEndian.PutUint32(p.fwmark)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: markReg, SourceRegister: true},
	}
}

// fwmQueueRule is the queue chain's rule of fwmark plan p: the first
// packet of a marked flow records the mark in conntrack, then goes to
// NFQUEUE (target) or is accepted.
func fwmQueueRule(p *plan, target expr.Any) []expr.Any {
	e := append(matchMark(p), unconfirmed()...)
	e = append(e,
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	)
	if target == nil {
		return append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	}
	return append(e, target)
}

// unconfirmed matches a flow's first packet: ct status & confirmed == 0.
func unconfirmed() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(1 << ipsConfirmedBit), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
	}
}

// natData is a map value: "addr . port" (addrPortData), or the address
// alone for a service whose real servers keep the packet's port.
func natData(p *plan, a netip.AddrPort) []byte {
	if p.noPort {
		return a.Addr().AsSlice()
	}
	return addrPortData(a)
}

// pktMark reads a queued packet's mark attribute (NFQA_MARK).
func pktMark(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}
