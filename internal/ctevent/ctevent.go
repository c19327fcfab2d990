// Package ctevent reads conntrack's events from the kernel: a netlink
// socket subscribed to the new, update and destroy groups that the caller
// chooses, in the caller's network namespace or another one.
//
// It is govs's one conntrack event reader: the connection sync (new and
// update events of the synced services) and the kernel dataplane's access
// log (destroy events of nat and fullnat services) each open one. A general
// netlink library reads each event with two recvmsg (a peek to size the
// buffer, then the read) and decodes every attribute into allocated
// objects; at thousands of events a second (five or so per short TCP
// connection) that was most of the sync's CPU. This reader reads each
// datagram once into a reused buffer and decodes the attributes its users
// need into a value, allocating nothing per event. It owns the conntrack
// netlink numbers (attrs.go), which the sync's writer uses too.
//
// The kernel never waits for a reader: the socket does not ask for reliable
// delivery (NETLINK_BROADCAST_ERROR), so when its buffer is full the kernel
// drops events and the next read returns ENOBUFS (Lost reports it).
package ctevent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is what happened to a flow.
type Kind uint8

// Event kinds.
const (
	New Kind = iota + 1
	Update
	Destroy
)

// Groups are the event groups a Reader subscribes to (bit i-1 is the
// netlink multicast group NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY).
type Groups uint32

// The event groups.
const (
	GroupNew     Groups = 1 << 0
	GroupUpdate  Groups = 1 << 1
	GroupDestroy Groups = 1 << 2
)

// Tuple is one direction of a flow.
type Tuple struct {
	Src, Dst netip.AddrPort
}

// Event is a conntrack event. Fields the kernel did not send are zero:
// counters without nf_conntrack_acct, times without
// nf_conntrack_timestamp, the TCP state of other protocols. A destroy
// event carries the mark, the counters, the times and the TCP state; new
// and update events carry the timeout, not the times.
type Event struct {
	Kind   Kind
	Proto  uint8
	State  uint8 // TCP conntrack state (TCP_CONNTRACK_*)
	Zone   uint16
	Orig   Tuple
	Reply  Tuple
	Status uint32 // IPS_* bits
	Mark   uint32
	ID     uint32
	// Timeout is the seconds left. A destroy event carries it (on recent
	// kernels) only when the flow was deleted before it timed out.
	Timeout uint32
	// Counters, original direction (client to server) and reply.
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64
	HasCounters                                      bool
	// Start and Stop are the flow's creation and end, ns since the epoch
	// (wall clock); Stop is the time it expired when it timed out, or
	// the time it was deleted.
	Start, Stop int64
}

// Kernel constants (linux/netfilter/nfnetlink_conntrack.h) this reader
// needs and the exported ones of attrs.go do not cover.
const (
	nfnlSubsysCTNetlink = 1
	nlaTypeMask         = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// Reader is a netlink socket subscribed to conntrack event groups.
type Reader struct {
	fd  int
	buf []byte
}

// Open subscribes to groups in the network namespace netns (a file
// descriptor; 0: the caller's). bufSize is the socket's receive buffer:
// how many events can wait for the reader before the kernel drops some.
// Reads time out after timeout (ErrTimeout), so that a reader notices when
// it is to stop.
func Open(netns int, groups Groups, bufSize int, timeout time.Duration) (*Reader, error) {
	var fd int
	err := InNetNS(netns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("conntrack events: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: uint32(groups)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("conntrack events: %w", err)
	}
	// Root may raise the buffer past rmem_max.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufSize) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bufSize)
	}
	tv := unix.NsecToTimeval(int64(timeout))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &Reader{fd: fd, buf: make([]byte, 1<<16)}, nil
}

// Close closes the socket. A Read under way returns at its timeout.
func (r *Reader) Close() { unix.Close(r.fd) }

// ErrTimeout is a read that timed out: nothing happened.
var ErrTimeout = errors.New("timeout")

// Lost reports whether err says the kernel dropped events (the socket's
// buffer was full).
func Lost(err error) bool { return errors.Is(err, unix.ENOBUFS) }

// Read waits for the next datagram and appends its events to out. An
// error satisfying Lost means events were dropped before this read.
func (r *Reader) Read(out []Event) ([]Event, error) {
	n, _, err := unix.Recvfrom(r.fd, r.buf, 0)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return out, ErrTimeout
		}
		return out, err
	}
	return AppendEvents(out, r.buf[:n]), nil
}

// AppendEvents decodes the conntrack messages of one netlink datagram b
// and appends them to out; anything else in b is skipped.
func AppendEvents(out []Event, b []byte) []Event {
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
		kind := Update
		switch {
		case typ&0xff == MsgDelete:
			kind = Destroy
		case typ&0xff == MsgNew && flags&(unix.NLM_F_CREATE|unix.NLM_F_EXCL) != 0:
			kind = New
		case typ&0xff != MsgNew:
			continue
		}
		if ev, ok := Parse(msg[4:]); ok {
			ev.Kind = kind
			out = append(out, ev)
		}
	}
	return out
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
		case AttrTupleIP:
			attrs(v, func(typ uint16, v []byte) {
				switch {
				case (typ == AttrIPv4Src || typ == AttrIPv4Dst) && len(v) == 4:
					a := netip.AddrFrom4([4]byte(v))
					if typ == AttrIPv4Src {
						src = a
					} else {
						dst = a
					}
				case (typ == AttrIPv6Src || typ == AttrIPv6Dst) && len(v) == 16:
					a := netip.AddrFrom16([16]byte(v))
					if typ == AttrIPv6Src {
						src = a
					} else {
						dst = a
					}
				}
			})
		case AttrTupleProto:
			attrs(v, func(typ uint16, v []byte) {
				switch {
				case typ == AttrProtoNum && len(v) == 1:
					proto = v[0]
				case typ == AttrProtoSrcPort && len(v) == 2:
					sport = binary.BigEndian.Uint16(v)
				case typ == AttrProtoDstPort && len(v) == 2:
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

// counters decodes CTA_COUNTERS_ORIG or _REPLY.
func counters(b []byte) (pkts, bytes uint64) {
	attrs(b, func(typ uint16, v []byte) {
		switch {
		case typ == AttrCountersPackets && len(v) == 8:
			pkts = binary.BigEndian.Uint64(v)
		case typ == AttrCountersBytes && len(v) == 8:
			bytes = binary.BigEndian.Uint64(v)
		case typ == AttrCounters32Packets && len(v) == 4:
			pkts = uint64(binary.BigEndian.Uint32(v))
		case typ == AttrCounters32Bytes && len(v) == 4:
			bytes = uint64(binary.BigEndian.Uint32(v))
		}
	})
	return pkts, bytes
}

// Parse decodes the attributes of one conntrack message (after its
// nfgenmsg header); false when it lacks either tuple.
func Parse(b []byte) (Event, bool) {
	var ev Event
	var okOrig, okReply bool
	attrs(b, func(typ uint16, v []byte) {
		switch typ {
		case AttrTupleOrig:
			ev.Orig, ev.Proto, okOrig = parseTuple(v)
		case AttrTupleReply:
			ev.Reply, _, okReply = parseTuple(v)
		case AttrStatus:
			if len(v) == 4 {
				ev.Status = binary.BigEndian.Uint32(v)
			}
		case AttrTimeout:
			if len(v) == 4 {
				ev.Timeout = binary.BigEndian.Uint32(v)
			}
		case AttrMark:
			if len(v) == 4 {
				ev.Mark = binary.BigEndian.Uint32(v)
			}
		case AttrID:
			if len(v) == 4 {
				ev.ID = binary.BigEndian.Uint32(v)
			}
		case AttrZone:
			if len(v) == 2 {
				ev.Zone = binary.BigEndian.Uint16(v)
			}
		case AttrCountersOrig:
			ev.OrigPackets, ev.OrigBytes = counters(v)
			ev.HasCounters = true
		case AttrCountersReply:
			ev.ReplyPackets, ev.ReplyBytes = counters(v)
			ev.HasCounters = true
		case AttrTimestamp:
			attrs(v, func(typ uint16, v []byte) {
				if len(v) != 8 {
					return
				}
				switch typ {
				case AttrTimestampStart:
					ev.Start = int64(binary.BigEndian.Uint64(v))
				case AttrTimestampStop:
					ev.Stop = int64(binary.BigEndian.Uint64(v))
				}
			})
		case AttrProtoInfo:
			attrs(v, func(typ uint16, v []byte) {
				if typ == AttrProtoInfoTCP {
					attrs(v, func(typ uint16, v []byte) {
						if typ == AttrTCPState && len(v) == 1 {
							ev.State = v[0]
						}
					})
				}
			})
		}
	})
	return ev, okOrig && okReply
}

// InNetNS runs f on an OS thread switched into the network namespace netns
// (a file descriptor; 0: f runs here, in the caller's), so that the
// sockets f opens, and the files under /proc/sys/net it reads or writes,
// are that namespace's. The thread is switched back before it is released;
// if that fails it stays locked and ends with its goroutine.
func InNetNS(netns int, f func() error) error {
	if netns == 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leaving network namespace: %w", err)
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
