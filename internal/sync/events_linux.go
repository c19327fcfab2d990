package connsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// A conntrack event reader of govs's own. A general netlink library reads
// each event with two recvmsg (a peek to size the buffer, then the read)
// and decodes every attribute into allocated objects; at thousands of
// events a second (five or so per short TCP connection) that was most of
// the sync's CPU. This one reads each event once into a reused buffer and
// decodes only what the sync needs, for the synced services' flows only.

// Event kinds.
const (
	evNew = iota + 1
	evUpdate
	evDestroy
)

// ctEvent is a conntrack event of a flow the sync may want.
type ctEvent struct {
	kind   int
	entry  Entry
	dstNAT bool // the director translated it (IPS_DST_NAT)
}

const (
	nfnlSubsysCTNetlink = 1
	ipctnlMsgCtDelete   = 2
	ctaStatusDstNAT     = 1 << 5 // IPS_DST_NAT
	nlaTypeMask         = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
	ctaProtoInfoTCPAttr = 1
)

// eventReader is a netlink socket subscribed to conntrack's new, update
// and destroy groups.
type eventReader struct {
	fd  int
	buf []byte
}

func openEvents() (*eventReader, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("conntrack events: %w", err)
	}
	// NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY are groups 1, 2, 3.
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 | 2 | 4}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("conntrack events: %w", err)
	}
	// A burst of new flows must not overflow the socket (ENOBUFS loses
	// events); root may raise the buffer past rmem_max.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
	}
	// Reads time out so that the reader notices when it is to stop.
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &eventReader{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (r *eventReader) close() { unix.Close(r.fd) }

// errTimeout is a read that timed out (nothing happened).
var errTimeout = errors.New("timeout")

// read waits for the next datagram and appends its events to out.
// unix.ENOBUFS means events were lost.
func (r *eventReader) read(out []ctEvent) ([]ctEvent, error) {
	n, _, err := unix.Recvfrom(r.fd, r.buf, 0)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return out, errTimeout
		}
		return out, err
	}
	b := r.buf[:n]
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		msg := b[unix.NLMSG_HDRLEN:l]
		b = b[min(align4(l), len(b)):]
		if typ>>8 != nfnlSubsysCTNetlink || len(msg) < 4 {
			continue
		}
		kind := evUpdate
		switch {
		case typ&0xff == ipctnlMsgCtDelete:
			kind = evDestroy
		case typ&0xff == ipctnlMsgCtNew && flags&(unix.NLM_F_CREATE|unix.NLM_F_EXCL) != 0:
			kind = evNew
		case typ&0xff != ipctnlMsgCtNew:
			continue
		}
		if ev, ok := parseEvent(msg[4:]); ok {
			ev.kind = kind
			out = append(out, ev)
		}
	}
	return out, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// attrs calls f for each netlink attribute in b.
func attrs(b []byte, f func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		f(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:l])
		b = b[min(align4(l), len(b)):]
	}
}

func parseTuple(b []byte) (t Tuple, proto uint8, ok bool) {
	var src, dst netip.Addr
	var sport, dport uint16
	attrs(b, func(typ uint16, v []byte) {
		switch typ {
		case ctaTupleIP:
			attrs(v, func(typ uint16, v []byte) {
				switch {
				case (typ == ctaIPv4Src || typ == ctaIPv4Dst) && len(v) == 4:
					a := netip.AddrFrom4([4]byte(v))
					if typ == ctaIPv4Src {
						src = a
					} else {
						dst = a
					}
				case (typ == ctaIPv6Src || typ == ctaIPv6Dst) && len(v) == 16:
					a := netip.AddrFrom16([16]byte(v))
					if typ == ctaIPv6Src {
						src = a
					} else {
						dst = a
					}
				}
			})
		case ctaTupleProto:
			attrs(v, func(typ uint16, v []byte) {
				switch {
				case typ == ctaProtoNum && len(v) == 1:
					proto = v[0]
				case typ == ctaProtoSrc && len(v) == 2:
					sport = binary.BigEndian.Uint16(v)
				case typ == ctaProtoDst && len(v) == 2:
					dport = binary.BigEndian.Uint16(v)
				}
			})
		}
	})
	if !src.IsValid() || !dst.IsValid() {
		return Tuple{}, 0, false
	}
	return Tuple{netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)}, proto, true
}

// parseEvent decodes the attributes of one conntrack message.
func parseEvent(b []byte) (ctEvent, bool) {
	var ev ctEvent
	var okOrig, okReply bool
	attrs(b, func(typ uint16, v []byte) {
		switch typ {
		case ctaTupleOrig:
			ev.entry.Orig, ev.entry.Proto, okOrig = parseTuple(v)
		case ctaTupleReply:
			ev.entry.Reply, _, okReply = parseTuple(v)
		case ctaStatus:
			if len(v) == 4 {
				ev.dstNAT = binary.BigEndian.Uint32(v)&ctaStatusDstNAT != 0
			}
		case ctaTimeout:
			if len(v) == 4 {
				ev.entry.Timeout = binary.BigEndian.Uint32(v)
			}
		case ctaMark:
			if len(v) == 4 {
				ev.entry.Mark = binary.BigEndian.Uint32(v)
			}
		case ctaProtoInfo:
			attrs(v, func(typ uint16, v []byte) {
				if typ == ctaProtoInfoTCPAttr {
					attrs(v, func(typ uint16, v []byte) {
						if typ == ctaTCPState && len(v) == 1 {
							ev.entry.State = v[0]
						}
					})
				}
			})
		}
	})
	return ev, okOrig && okReply
}
