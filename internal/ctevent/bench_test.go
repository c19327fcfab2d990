package ctevent

import (
	"encoding/binary"
	"testing"

	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// destroyMessage is a conntrack destroy event as the kernel sends one: a
// TCP flow translated to a real server, with counters and times.
func destroyMessage(tb testing.TB) []byte {
	tb.Helper()
	a := func(typ uint16, data []byte) netfilter.Attribute { return netfilter.Attribute{Type: typ, Data: data} }
	n := func(typ uint16, c ...netfilter.Attribute) netfilter.Attribute {
		return netfilter.Attribute{Type: typ, Nested: true, Children: c}
	}
	tuple := func(typ uint16, src, dst []byte, sport, dport uint16) netfilter.Attribute {
		return n(typ, n(AttrTupleIP, a(AttrIPv4Src, src), a(AttrIPv4Dst, dst)),
			n(AttrTupleProto, a(AttrProtoNum, []byte{6}), a(AttrProtoSrcPort, netfilter.Uint16Bytes(sport)), a(AttrProtoDstPort, netfilter.Uint16Bytes(dport))))
	}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	attrs := []netfilter.Attribute{
		tuple(AttrTupleOrig, []byte{10, 77, 0, 2}, []byte{10, 77, 0, 100}, 40000, 80),
		tuple(AttrTupleReply, []byte{10, 77, 1, 2}, []byte{10, 77, 0, 2}, 80, 40000),
		a(AttrID, netfilter.Uint32Bytes(12345)),
		a(AttrStatus, netfilter.Uint32Bytes(StatusAssured|StatusSeenReply|StatusDstNAT)),
		n(AttrCountersOrig, a(AttrCountersPackets, u64(6)), a(AttrCountersBytes, u64(420))),
		n(AttrCountersReply, a(AttrCountersPackets, u64(5)), a(AttrCountersBytes, u64(318))),
		n(AttrTimestamp, a(AttrTimestampStart, u64(1e18)), a(AttrTimestampStop, u64(1e18+5e9))),
		n(AttrProtoInfo, n(AttrProtoInfoTCP, a(AttrTCPState, []byte{7}))),
		a(AttrMark, netfilter.Uint32Bytes(0x08000000)),
	}
	msg, err := netfilter.MarshalNetlink(netfilter.Header{SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: netfilter.MessageType(MsgDelete), Family: netfilter.ProtoIPv4}, attrs)
	if err != nil {
		tb.Fatal(err)
	}
	msg.Header.Length = uint32(unix.NLMSG_HDRLEN + len(msg.Data))
	b, err := msg.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestAppendEvents decodes a destroy message whole.
func TestAppendEvents(t *testing.T) {
	evs := AppendEvents(nil, destroyMessage(t))
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	if ev.Kind != Destroy || ev.Orig.Src.String() != "10.77.0.2:40000" || ev.Reply.Src.String() != "10.77.1.2:80" ||
		ev.OrigBytes != 420 || ev.ReplyPackets != 5 || ev.Stop-ev.Start != 5e9 || ev.State != 7 ||
		ev.Mark != 0x08000000 || ev.ID != 12345 || ev.Status&StatusDstNAT == 0 {
		t.Errorf("%+v", ev)
	}
}

// BenchmarkAppendEvents is the decoding of one destroy event: no
// allocation.
func BenchmarkAppendEvents(b *testing.B) {
	msg := destroyMessage(b)
	evs := make([]Event, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		evs = AppendEvents(evs[:0], msg)
	}
	if len(evs) != 1 {
		b.Fatal(len(evs))
	}
}
