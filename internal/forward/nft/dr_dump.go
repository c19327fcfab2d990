package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The DR flow map holds every flow of the last minutes (100,000 and more
// on a busy director), and statistics, the connection sync, the API's
// connection list and a stop all read it whole. google/nftables's
// GetSetElements keeps the whole dump's messages in memory and decodes
// each element through several attribute decoders and a counter
// expression: about 30 allocations an element. drDumper reads the dump
// with one netlink socket and one buffer it keeps, and decodes each
// element straight into a drFlow, so a dump allocates nothing per element
// and costs the kernel's walk of the map and one pass over its bytes.

// drFlowKey is a DR flow's identity: the flow map's key.
type drFlowKey struct {
	proto  uint8
	client netip.AddrPort
	vip    netip.AddrPort
}

// drDumper dumps flow maps over its own netlink socket.
type drDumper struct {
	c   *netlink.Conn
	rc  syscall.RawConn
	buf []byte
	req []byte
	seq uint32
}

// drDumpBuffer is the receive buffer: a dump's messages come in skbs of
// at most 32 KiB (netlink_recvmsg's cap on max_recvmsg_len), some kernels
// allow more; a larger buffer costs nothing but memory.
const drDumpBuffer = 256 << 10

func newDRDumper(netns int) (*drDumper, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("netlink (nftables): %w", err)
	}
	if err := bigBuffers(c); err != nil {
		c.Close()
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &drDumper{c: c, rc: rc, buf: make([]byte, drDumpBuffer)}, nil
}

func (d *drDumper) close() {
	if d != nil {
		d.c.Close()
	}
}

// netlink message types and sizes (linux/netlink.h, nfnetlink.h).
const (
	nlmsgHdrLen   = 16
	nfgenHdrLen   = 4
	nlaHdrLen     = 4
	nlaTypeMask   = 0x3fff // ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
	nftNewSetElem = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM
	nftGetSetElem = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM
	// nftaSetElemExpressions is NFTA_SET_ELEM_EXPRESSIONS (x/sys lacks
	// it): an element's expressions when it has more than one.
	nftaSetElemExpressions = 0xb
)

// dump reads the map set (drFlowsMap or drFreshMap) of the family's table
// into out (reusing its storage) and returns it.
func (d *drDumper) dump(table, set string, v6 bool, out []drFlow) ([]drFlow, error) {
	out = out[:0]
	d.seq++
	seq := d.seq
	fam := byte(unix.NFPROTO_IPV4)
	if v6 {
		fam = unix.NFPROTO_IPV6
	}
	// The request: nlmsghdr, nfgenmsg, NFTA_SET_ELEM_LIST_TABLE and
	// NFTA_SET_ELEM_LIST_SET.
	req := d.req[:0]
	req = append(req, make([]byte, nlmsgHdrLen)...)
	req = append(req, fam, unix.NFNETLINK_V0, 0, 0)
	req = appendAttrString(req, unix.NFTA_SET_ELEM_LIST_TABLE, table)
	req = appendAttrString(req, unix.NFTA_SET_ELEM_LIST_SET, set)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], nftGetSetElem)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], seq)
	d.req = req
	var serr error
	if err := d.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(serr, unix.EAGAIN)
	}); err != nil {
		return out, err
	}
	if serr != nil {
		return out, fmt.Errorf("sending the dump request: %w", serr)
	}
	al := 4
	if v6 {
		al = 16
	}
	for {
		var n int
		var rerr error
		if err := d.rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), d.buf, unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN)
		}); err != nil {
			return out, err
		}
		if rerr != nil {
			// ENOBUFS or an interrupted dump (EINTR for a map changed
			// under a dump is reported as NLM_F_DUMP_INTR instead).
			d.drain()
			return out, fmt.Errorf("reading the dump: %w", rerr)
		}
		b := d.buf[:n]
		for len(b) >= nlmsgHdrLen {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if l < nlmsgHdrLen || l > len(b) {
				d.drain()
				return out, errors.New("reading the dump: malformed netlink message")
			}
			msg := b[nlmsgHdrLen:l]
			b = b[min(nlaAlign(l), len(b)):]
			if mseq != seq {
				continue // the rest of an earlier, abandoned dump
			}
			switch typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(msg) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(msg)); e != 0 {
						return out, fmt.Errorf("dump: %w", syscall.Errno(-e))
					}
				}
				return out, nil
			case nftNewSetElem:
				if len(msg) < nfgenHdrLen {
					continue
				}
				out = parseElemList(msg[nfgenHdrLen:], al, v6, out)
			}
		}
	}
}

// drain reads what is left of an abandoned dump, without waiting.
func (d *drDumper) drain() {
	_ = d.rc.Read(func(fd uintptr) bool {
		for {
			if _, _, err := unix.Recvfrom(int(fd), d.buf, unix.MSG_DONTWAIT); err != nil {
				return true
			}
		}
	})
}

func nlaAlign(n int) int { return (n + 3) &^ 3 }

func appendAttrString(b []byte, typ uint16, s string) []byte {
	l := nlaHdrLen + len(s) + 1
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nextAttr splits the first attribute off b: its type, payload and the
// rest. ok is false at the end or on a malformed attribute.
func nextAttr(b []byte) (typ uint16, payload, rest []byte, ok bool) {
	if len(b) < nlaHdrLen {
		return 0, nil, nil, false
	}
	l := int(binary.NativeEndian.Uint16(b[0:]))
	if l < nlaHdrLen || l > len(b) {
		return 0, nil, nil, false
	}
	typ = binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
	return typ, b[nlaHdrLen:l], b[min(nlaAlign(l), len(b)):], true
}

// dataValue is the NFTA_DATA_VALUE inside an NFTA_SET_ELEM_KEY or _DATA.
func dataValue(b []byte) []byte {
	for {
		t, p, rest, ok := nextAttr(b)
		if !ok {
			return nil
		}
		if t == unix.NFTA_DATA_VALUE {
			return p
		}
		b = rest
	}
}

// parseElemList appends the elements of one NEWSETELEM message (its
// attributes after nfgenmsg) to out. Elements that do not have the flow
// map's shape are skipped.
func parseElemList(b []byte, al int, v6 bool, out []drFlow) []drFlow {
	for {
		t, p, rest, ok := nextAttr(b)
		if !ok {
			return out
		}
		b = rest
		if t != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		for {
			t, e, rest, ok := nextAttr(p)
			if !ok {
				break
			}
			p = rest
			if t != unix.NFTA_LIST_ELEM {
				continue
			}
			if f, ok := parseElem(e, al, v6); ok {
				out = append(out, f)
			}
		}
	}
}

// parseElem decodes one NFTA_LIST_ELEM of the flow map: the key (proto .
// client addr . client port . VIP . VIP port, each padded to 4 bytes), the
// real server, the time left and the counter.
func parseElem(b []byte, al int, v6 bool) (drFlow, bool) {
	var f drFlow
	var key, val []byte
	for {
		t, p, rest, ok := nextAttr(b)
		if !ok {
			break
		}
		b = rest
		switch t {
		case unix.NFTA_SET_ELEM_KEY:
			key = dataValue(p)
		case unix.NFTA_SET_ELEM_DATA:
			val = dataValue(p)
		case unix.NFTA_SET_ELEM_EXPIRATION:
			if len(p) >= 8 {
				f.expires = time.Duration(binary.BigEndian.Uint64(p)) * time.Millisecond
			}
		case unix.NFTA_SET_ELEM_EXPR:
			f.pkts, f.bytes = counterOf(p, f.pkts, f.bytes)
		case nftaSetElemExpressions:
			for {
				t, x, r, ok := nextAttr(p)
				if !ok {
					break
				}
				p = r
				if t == unix.NFTA_LIST_ELEM {
					f.pkts, f.bytes = counterOf(x, f.pkts, f.bytes)
				}
			}
		}
	}
	if len(key) < 4+al+4+al+4 || len(val) < al {
		return drFlow{}, false
	}
	addr := func(b []byte) netip.Addr {
		if v6 {
			return netip.AddrFrom16([16]byte(b[:16]))
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	f.v6, f.proto = v6, key[0]
	f.client = netip.AddrPortFrom(addr(key[4:]), binary.BigEndian.Uint16(key[4+al:]))
	f.vip = netip.AddrPortFrom(addr(key[8+al:]), binary.BigEndian.Uint16(key[8+2*al:]))
	f.rs = addr(val)
	return f, true
}

// counterOf reads a "counter" expression (NFTA_EXPR_NAME, NFTA_EXPR_DATA
// with NFTA_COUNTER_BYTES and _PACKETS); another expression leaves pkts
// and bytes as they are.
func counterOf(b []byte, pkts, bytes uint64) (uint64, uint64) {
	var data []byte
	counter := false
	for {
		t, p, rest, ok := nextAttr(b)
		if !ok {
			break
		}
		b = rest
		switch t {
		case unix.NFTA_EXPR_NAME:
			counter = string(p) == "counter\x00" || string(p) == "counter"
		case unix.NFTA_EXPR_DATA:
			data = p
		}
	}
	if !counter {
		return pkts, bytes
	}
	for {
		t, p, rest, ok := nextAttr(data)
		if !ok {
			return pkts, bytes
		}
		data = rest
		if len(p) < 8 {
			continue
		}
		switch t {
		case unix.NFTA_COUNTER_BYTES:
			bytes = binary.BigEndian.Uint64(p)
		case unix.NFTA_COUNTER_PACKETS:
			pkts = binary.BigEndian.Uint64(p)
		}
	}
}

// key is f's identity.
func (f *drFlow) key() drFlowKey { return drFlowKey{proto: f.proto, client: f.client, vip: f.vip} }
