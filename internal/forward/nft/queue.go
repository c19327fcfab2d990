package nft

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/director"
)

// nfnetlink_queue, spoken directly (linux/netfilter/nfnetlink_queue.h).
const (
	nfqMsgPacket  = 0
	nfqMsgVerdict = 1
	nfqMsgConfig  = 2

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaMark       = 3
	nfqaPayload    = 10

	nfqaCfgCmd      = 1
	nfqaCfgParams   = 2
	nfqaCfgQueueMax = 3
	nfqaCfgMask     = 4
	nfqaCfgFlags    = 5

	nfqCmdBind   = 1
	nfqCmdUnbind = 2

	nfqCopyPacket = 2
	nfqFailOpen   = 1 // NFQA_CFG_F_FAIL_OPEN: accept when the queue is full
	nfqGSO        = 4 // NFQA_CFG_F_GSO: no need to segment for us

	nfDrop   = 0
	nfAccept = 1

	// copyRange is how much of each packet govs reads: the IP and
	// transport headers up to the ports.
	copyRange = 128
	queueLen  = 8192
	// recvBufSize is the fixed receive buffer: a queued packet's message
	// (copyRange bytes of payload and a few attributes) is a few hundred
	// bytes; a larger one would end the reader (truncated message).
	recvBufSize = 64 << 10
)

// queue is one NFQUEUE reader.
type queue struct {
	d      *Dataplane
	num    uint16
	c      *netlink.Conn
	closed atomic.Bool
}

func nfqMsg(typ uint16, num uint16, attrs []netlink.Attribute) (netlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	for _, a := range attrs {
		ae.Bytes(a.Type, a.Data)
	}
	b, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	data := make([]byte, 4, 4+len(b))
	data[0] = unix.AF_UNSPEC
	data[1] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(data[2:], num)
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_QUEUE<<8 | typ), Flags: netlink.Request},
		Data:   append(data, b...),
	}, nil
}

func openQueue(d *Dataplane, netns int, num uint16) (*queue, error) {
	// A fixed receive buffer: without it every Receive first peeks at the
	// next message's size (one more recvmsg per queued packet) and
	// allocates a page for it.
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns, MessageBufferSize: recvBufSize})
	if err != nil {
		return nil, err
	}
	q := &queue{d: d, num: num, c: c}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, copyRange)
	params[4] = nfqCopyPacket
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for _, attrs := range [][]netlink.Attribute{
		{{Type: nfqaCfgCmd, Data: []byte{nfqCmdBind, 0, 0, 0}}},
		{{Type: nfqaCfgParams, Data: params}, {Type: nfqaCfgQueueMax, Data: be32(queueLen)},
			{Type: nfqaCfgFlags, Data: be32(nfqFailOpen | nfqGSO)}, {Type: nfqaCfgMask, Data: be32(nfqFailOpen | nfqGSO)}},
	} {
		m, err := nfqMsg(nfqMsgConfig, num, attrs)
		if err == nil {
			m.Header.Flags |= netlink.Acknowledge
			_, err = c.Execute(m)
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	// A reader that falls behind must not stop on ENOBUFS: the kernel
	// then drops or (fail-open) accepts, and the reader goes on.
	c.SetOption(netlink.NoENOBUFS, true)
	c.SetReadBuffer(4 << 20)
	return q, nil
}

func (q *queue) close() {
	if q.closed.Swap(true) {
		return
	}
	if m, err := nfqMsg(nfqMsgConfig, q.num, []netlink.Attribute{{Type: nfqaCfgCmd, Data: []byte{nfqCmdUnbind, 0, 0, 0}}}); err == nil {
		q.c.Send(m)
	}
	q.c.Close()
}

// run reads queued packets and schedules them; the verdicts go to
// sendVerdicts, which answers all that are ready in one sendmsg. Sending is
// the slow half: the kernel reinjects each accepted packet within the
// sendmsg, and runs the network receive work pending on that CPU there
// too. Reading on meanwhile turns a backlog into one batch instead of a
// sendmsg per packet.
func (q *queue) run() {
	defer q.d.wg.Done()
	// As many verdicts as the kernel queue holds packets: the reader
	// never waits for the sender.
	verdicts := make(chan netlink.Message, queueLen)
	sent := make(chan struct{})
	go q.sendVerdicts(verdicts, sent)
	defer func() {
		close(verdicts)
		<-sent
	}()
	for {
		msgs, err := q.c.Receive()
		if err != nil {
			if q.closed.Load() {
				return
			}
			var oe *netlink.OpError
			if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
				continue
			}
			// An error answer to one of our verdicts (the library gives
			// it as a bare errno, where a failed recvmsg is an
			// os.SyscallError): ENOENT when the packet is gone, dropped
			// by the kernel when the table was replaced (at start, or
			// after a failed update) and the hook it was queued from went
			// with it. The socket is fine: read on, or this
			// queue's flows would wait on a reader that is gone.
			var se *os.SyscallError
			if errors.As(err, &oe) && !errors.As(oe.Err, &se) {
				q.d.log.Debug("nfqueue verdict refused", "queue", q.num, "err", err)
				continue
			}
			q.d.log.Error("nfqueue read failed, flows fall back to kernel round robin", "queue", q.num, "err", err)
			// Unbound, the queue has no listener: the rule's bypass
			// flag lets its flows through to the fallback rule instead
			// of leaving them queued for nobody.
			q.close()
			return
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_QUEUE<<8|nfqMsgPacket) || len(m.Data) < 4 {
				continue
			}
			id, payload, pmark, ok := parsePacket(m.Data[4:])
			if !ok {
				continue
			}
			verdict, mark := q.d.decide(payload, pmark)
			attrs := []netlink.Attribute{{Type: nfqaVerdictHdr, Data: binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, verdict), id)}}
			if mark != 0 {
				attrs = append(attrs, netlink.Attribute{Type: nfqaMark, Data: binary.BigEndian.AppendUint32(nil, mark)})
			}
			if vm, err := nfqMsg(nfqMsgVerdict, q.num, attrs); err == nil {
				verdicts <- vm
			}
		}
	}
}

// maxVerdictBatch bounds one sendmsg of verdicts.
const maxVerdictBatch = 256

// sendVerdicts sends the verdicts from in, all those ready at once in one
// sendmsg, until in is closed; then it closes done.
func (q *queue) sendVerdicts(in <-chan netlink.Message, done chan<- struct{}) {
	defer close(done)
	batch := make([]netlink.Message, 0, maxVerdictBatch)
	for m := range in {
		batch = append(batch[:0], m)
	fill:
		for len(batch) < maxVerdictBatch {
			select {
			case m, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if _, err := q.c.SendMessages(batch); err != nil && !q.closed.Load() {
			q.d.log.Warn("nfqueue verdicts failed", "queue", q.num, "err", err)
		}
	}
}

// parsePacket returns a queued packet's id, payload and packet mark.
func parsePacket(b []byte) (id uint32, payload []byte, mark uint32, ok bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, nil, 0, false
	}
	ad.ByteOrder = binary.BigEndian
	var haveID bool
	for ad.Next() {
		switch ad.Type() {
		case nfqaPacketHdr:
			if h := ad.Bytes(); len(h) >= 4 {
				id, haveID = binary.BigEndian.Uint32(h), true
			}
		case nfqaPayload:
			payload = ad.Bytes()
		case nfqaMark:
			mark = pktMark(ad.Bytes())
		}
	}
	return id, payload, mark, haveID && ad.Err() == nil
}

// flowOf reads protocol, client and destination from an IP packet.
func flowOf(p []byte) (proto uint8, client, dst netip.AddrPort, ok bool) {
	if len(p) < 1 {
		return
	}
	var l4 []byte
	var src, dstA netip.Addr
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < ihl+4 || ihl < 20 {
			return
		}
		proto = p[9]
		src = netip.AddrFrom4([4]byte(p[12:16]))
		dstA = netip.AddrFrom4([4]byte(p[16:20]))
		l4 = p[ihl:]
	case 6:
		if len(p) < 44 {
			return
		}
		proto = p[6]
		src = netip.AddrFrom16([16]byte(p[8:24]))
		dstA = netip.AddrFrom16([16]byte(p[24:40]))
		l4 = p[40:]
	default:
		return
	}
	client = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4[0:2]))
	dst = netip.AddrPortFrom(dstA, binary.BigEndian.Uint16(l4[2:4]))
	return proto, client, dst, true
}

// decide schedules a queued first packet: accept with the chosen real
// server's mark, accept unmarked (the kernel's round robin fallback takes
// it) when govs does not know the flow, or drop when no real server can
// take it. pmark is the packet's mark: a fwmark service's, looked up first.
func (d *Dataplane) decide(payload []byte, pmark uint32) (verdict, mark uint32) {
	d.queued.Add(1)
	proto, client, dst, ok := flowOf(payload)
	if !ok {
		return nfAccept, 0
	}
	v := d.view.Load()
	var vs *director.VirtualService
	if pmark != 0 {
		vs = v.byMark[markKey(pmark, !dst.Addr().Is4())]
	}
	if vs == nil {
		vs = v.byVIP[vipKey{proto: proto, addr: dst}]
	}
	if vs == nil {
		return nfAccept, 0
	}
	var exclude []*director.RealServer
	unknown := false
	for range 4 {
		b := vs.Schedule(client, exclude)
		rs := b.RealServer
		if rs == nil {
			break
		}
		// The kernel keeps no reference to the persistence template:
		// released now, it lives for the persistence timeout from this
		// connection's start.
		vs.Release(b)
		mk, known := v.marks[vs][rs.Addr]
		if !known || !rs.Dest.Bind() {
			unknown = unknown || !known // added a moment ago
			exclude = append(exclude, rs)
			continue
		}
		vs.Stats.Conns.Add(1)
		rs.Stats.Conns.Add(1)
		return nfAccept, mk
	}
	if unknown {
		return nfAccept, 0
	}
	vs.Stats.Refused.Add(1)
	return nfDrop, 0
}
