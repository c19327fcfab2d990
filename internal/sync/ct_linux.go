package connsync

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/ctevent"
)

// The conntrack netlink numbers are ctevent's (attrs.go): one owner for
// the reader and this writer.
const tcpLiberalFlags uint16 = ctevent.TCPFlagBeLiberal<<8 | ctevent.TCPFlagBeLiberal // struct nf_ct_tcp_flags {flags, mask}

// flowEntry is a conntrack flow as a sync entry.
func flowEntry(f *conntrack.Flow) Entry {
	ap := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a.Unmap(), p) }
	o, r := f.TupleOrig, f.TupleReply
	e := Entry{Proto: o.Proto.Protocol, Mark: f.Mark, Timeout: f.Timeout,
		Orig:  Tuple{ap(o.IP.SourceAddress, o.Proto.SourcePort), ap(o.IP.DestinationAddress, o.Proto.DestinationPort)},
		Reply: Tuple{ap(r.IP.SourceAddress, r.Proto.SourcePort), ap(r.IP.DestinationAddress, r.Proto.DestinationPort)}}
	if f.ProtoInfo.TCP != nil {
		e.State = f.ProtoInfo.TCP.State
	}
	return e
}

func ctTuple(t Tuple, proto uint8) conntrack.Tuple {
	return conntrack.Tuple{IP: conntrack.IPTuple{SourceAddress: t.Src.Addr(), DestinationAddress: t.Dst.Addr()},
		Proto: conntrack.ProtoTuple{Protocol: proto, SourcePort: t.Src.Port(), DestinationPort: t.Dst.Port()}}
}

// sink installs peers' entries into the local conntrack table.
type sink struct {
	ct  *conntrack.Conn
	raw *netfilter.Conn
}

func dialSink(netns int) (*sink, error) {
	ct, err := conntrack.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	raw, err := netfilter.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		ct.Close()
		return nil, fmt.Errorf("conntrack netlink: %w", err)
	}
	return &sink{ct: ct, raw: raw}, nil
}

func (s *sink) close() {
	s.ct.Close()
	s.raw.Close()
}

// apply installs e: creates it with its NAT mapping, or updates the state,
// mark and timeout of the flow already there; a delete deletes.
func (s *sink) apply(e *Entry) error {
	if e.Kind != KindFlow {
		return nil
	}
	f := conntrack.Flow{TupleOrig: ctTuple(e.Orig, e.Proto)}
	if e.Delete {
		err := s.ct.Delete(f)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	err := s.create(e)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	f.Timeout, f.Mark = max(e.Timeout, 1), e.Mark
	if e.Proto == unix.IPPROTO_TCP && e.State > 0 && e.State < ctevent.TCPStateMax {
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: e.State, OriginalFlags: tcpLiberalFlags, ReplyFlags: tcpLiberalFlags}
	}
	return s.ct.Update(f)
}

func attr(typ uint16, data []byte) netfilter.Attribute {
	return netfilter.Attribute{Type: typ, Data: data}
}

func nested(typ uint16, children ...netfilter.Attribute) netfilter.Attribute {
	return netfilter.Attribute{Type: typ, Nested: true, Children: children}
}

func tupleAttr(typ uint16, t Tuple, proto uint8) netfilter.Attribute {
	src, dst := uint16(ctevent.AttrIPv4Src), uint16(ctevent.AttrIPv4Dst)
	sa, da := t.Src.Addr().AsSlice(), t.Dst.Addr().AsSlice()
	if len(sa) == 16 {
		src, dst = ctevent.AttrIPv6Src, ctevent.AttrIPv6Dst
	}
	return nested(typ,
		nested(ctevent.AttrTupleIP, attr(src, sa), attr(dst, da)),
		nested(ctevent.AttrTupleProto, attr(ctevent.AttrProtoNum, []byte{proto}),
			attr(ctevent.AttrProtoSrcPort, netfilter.Uint16Bytes(t.Src.Port())), attr(ctevent.AttrProtoDstPort, netfilter.Uint16Bytes(t.Dst.Port()))))
}

func natAttr(typ uint16, to netip.AddrPort) netfilter.Attribute {
	lo, hi := uint16(ctevent.AttrNATV4Min), uint16(ctevent.AttrNATV4Max)
	a := to.Addr().AsSlice()
	if len(a) == 16 {
		lo, hi = ctevent.AttrNATV6Min, ctevent.AttrNATV6Max
	}
	port := netfilter.Uint16Bytes(to.Port())
	return nested(typ, attr(lo, a), attr(hi, a),
		nested(ctevent.AttrNATProto, attr(ctevent.AttrProtoNATPortMin, port), attr(ctevent.AttrProtoNATPortMax, port)))
}

// create adds e as a new conntrack entry. The reply tuple is given as the
// plain inverse of the original, and the NAT mapping as CTA_NAT_DST (the
// real server) and CTA_NAT_SRC (fullnat's local address) ranges of one
// address and port: the kernel's NAT setup then rewrites the reply tuple
// and sets the IPS_DST_NAT/IPS_SRC_NAT status bits that make it translate
// the flow's packets (given the translated reply tuple directly, it would
// see no change and translate nothing). That is what conntrack -I
// --dst-nat does, and conntrackd.
func (s *sink) create(e *Entry) error {
	inv := Tuple{Src: e.Orig.Dst, Dst: e.Orig.Src}
	attrs := []netfilter.Attribute{
		tupleAttr(ctevent.AttrTupleOrig, e.Orig, e.Proto),
		tupleAttr(ctevent.AttrTupleReply, inv, e.Proto),
		attr(ctevent.AttrTimeout, netfilter.Uint32Bytes(max(e.Timeout, 1))),
		attr(ctevent.AttrStatus, netfilter.Uint32Bytes(ctevent.StatusSeenReply|ctevent.StatusAssured|ctevent.StatusConfirmed)),
	}
	if e.Mark != 0 {
		attrs = append(attrs, attr(ctevent.AttrMark, netfilter.Uint32Bytes(e.Mark)))
	}
	if e.Proto == unix.IPPROTO_TCP && e.State > 0 && e.State < ctevent.TCPStateMax {
		// Window tracking off for this flow (IP_CT_TCP_FLAG_BE_LIBERAL in
		// both directions): the backup never saw its sequence numbers, and
		// its first packets after a failover are mid-stream.
		attrs = append(attrs, nested(ctevent.AttrProtoInfo, nested(ctevent.AttrProtoInfoTCP,
			attr(ctevent.AttrTCPState, []byte{e.State}),
			attr(ctevent.AttrTCPFlagsOrig, netfilter.Uint16Bytes(tcpLiberalFlags)),
			attr(ctevent.AttrTCPFlagsReply, netfilter.Uint16Bytes(tcpLiberalFlags)))))
	}
	if e.Reply.Src != e.Orig.Dst {
		attrs = append(attrs, natAttr(ctevent.AttrNATDst, e.Reply.Src))
	}
	if e.Reply.Dst != e.Orig.Src {
		attrs = append(attrs, natAttr(ctevent.AttrNATSrc, e.Reply.Dst))
	}
	family := netfilter.ProtoIPv4
	if e.Orig.Src.Addr().Is6() {
		family = netfilter.ProtoIPv6
	}
	req, err := netfilter.MarshalNetlink(netfilter.Header{SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(ctevent.MsgNew), Family: family,
		Flags: netlink.Request | netlink.Acknowledge | netlink.Excl | netlink.Create}, attrs)
	if err != nil {
		return err
	}
	_, err = s.raw.Query(req)
	return err
}
