package connsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"
)

// The message format. Every message is one UDP datagram:
//
//	0  magic "GS" (2)  version (1)  type (1)
//	4  sync_id (1)  flags (1)  count (2)      count: entries (DATA), ranges (NACK)
//	8  sender (4)                              random per process
//	12 epoch (8)                               sender's start, Unix ms
//	20 seq (4)                                 DATA: its sequence number;
//	                                           ALIVE: the last DATA seq sent
//	24 timestamp (8)                           Unix ms when sent
//	32 payload
//	.. HMAC-SHA256 (32) over everything before it
//
// All integers are big endian. DATA's payload is count entries (see
// appendEntry); the other types' payloads are fixed (see Message).
const (
	magic0, magic1 = 'G', 'S'
	Version        = 1
	headerLen      = 32
	macLen         = sha256.Size
	// Overhead is the bytes a message adds to its payload.
	Overhead = headerLen + macLen
	// MaxMessage is the largest message decoded at all (a UDP datagram).
	MaxMessage = 65507
)

// Type is a message type.
type Type uint8

// The message types.
const (
	TypeData   Type = 1 // entries, sequenced and retransmitted on NACK
	TypeNack   Type = 2 // a receiver misses DATA seqs of Target
	TypeResync Type = 3 // a receiver asks Target (0: everyone) for its table
	TypeDone   Type = 4 // a bulk resync for Target ended: DATA seqs First..Last
	TypeAlive  Type = 5 // heartbeat: Seq is the sender's last DATA seq
)

// FlagResync marks DATA carrying a bulk resync.
const FlagResync = 1

// Message is a decoded message.
type Message struct {
	Type   Type
	SyncID uint8
	Flags  uint8
	Sender uint32
	Epoch  uint64
	Seq    uint32
	Time   int64 // Unix ms

	Entries []Entry // TypeData
	// Target is the node a NACK, Resync or Done is for (0 in Resync: all).
	Target      uint32
	TargetEpoch uint64      // TypeNack: the epoch the seqs belong to
	Ranges      [][2]uint32 // TypeNack: missing seqs, inclusive ranges
	ReqID       uint32      // TypeResync, TypeDone
	First, Last uint32      // TypeDone: the resync's DATA seqs (Last < First: none)
	Count       uint32      // TypeDone: entries sent
}

// Kind says what an Entry is.
type Kind uint8

// Entry kinds.
const (
	KindFlow     Kind = 0 // a conntrack flow
	KindTemplate Kind = 1 // a persistence template
	KindDR       Kind = 2 // a DR flow: Orig the client to the VIP, Reply.Src the real server
)

// Tuple is one direction of a flow.
type Tuple struct {
	Src, Dst netip.AddrPort
}

// Entry is one synced object. A flow is its conntrack original and reply
// tuples (the reply tuple carries the NAT mapping: its source is the real
// server, its destination the SNAT address in fullnat), its conntrack mark,
// TCP state and remaining timeout. A persistence template is a client
// (Orig.Src, port 0) bound to a real server (Reply.Src) for a service
// (Orig.Dst) with Proto; fwmark services put the mark in Mark.
type Entry struct {
	Kind    Kind
	Delete  bool
	Proto   uint8
	State   uint8 // TCP conntrack state (TCP_CONNTRACK_*); 0 for others
	Orig    Tuple
	Reply   Tuple
	Mark    uint32
	Timeout uint32 // seconds
}

// Entry flag bits, in its first byte.
const (
	efTemplate = 1 << 0
	efDelete   = 1 << 1
	efV6       = 1 << 2
	efRSrc     = 1 << 3 // reply source present (else the original destination: no DNAT)
	efRDst     = 1 << 4 // reply destination present (else the original source: no SNAT)
	efDR       = 1 << 5 // a DR flow (KindDR)
	efKnown    = efTemplate | efDelete | efV6 | efRSrc | efRDst | efDR
)

// Key identifies an entry: kind, protocol and original tuple.
type Key struct {
	Kind  Kind
	Proto uint8
	Orig  Tuple
}

// Key returns e's key.
func (e Entry) Key() Key { return Key{e.Kind, e.Proto, e.Orig} }

func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// EntrySize is the encoded size of e.
func EntrySize(e *Entry) int {
	al := 4
	if is6(e.Orig.Src.Addr()) {
		al = 16
	}
	n := 3 + 2*(al+2)
	if e.Reply.Src != e.Orig.Dst {
		n += al + 2
	}
	if e.Reply.Dst != e.Orig.Src {
		n += al + 2
	}
	if !e.Delete {
		n += 8
	}
	return n
}

var errFamily = errors.New("addresses of one entry must all be IPv4 or all IPv6")

// appendEntry encodes e:
//
//	flags (1) proto (1) state (1)
//	orig src addr+port, orig dst addr+port (4+2 or 16+2 each)
//	[reply src addr+port] [reply dst addr+port]   when they differ from the
//	                                              original dst / src
//	[mark (4) timeout (4)]                        unless Delete
func appendEntry(b []byte, e *Entry) ([]byte, error) {
	if err := checkEntry(e); err != nil {
		return b, err
	}
	v6 := is6(e.Orig.Src.Addr())
	var f byte
	switch e.Kind {
	case KindTemplate:
		f |= efTemplate
	case KindDR:
		f |= efDR
	}
	if e.Delete {
		f |= efDelete
	}
	if v6 {
		f |= efV6
	}
	rsrc, rdst := e.Reply.Src != e.Orig.Dst, e.Reply.Dst != e.Orig.Src
	if rsrc {
		f |= efRSrc
	}
	if rdst {
		f |= efRDst
	}
	b = append(b, f, e.Proto, e.State)
	put := func(a netip.AddrPort) {
		if v6 {
			x := a.Addr().As16()
			b = append(b, x[:]...)
		} else {
			x := a.Addr().Unmap().As4()
			b = append(b, x[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, a.Port())
	}
	put(e.Orig.Src)
	put(e.Orig.Dst)
	if rsrc {
		put(e.Reply.Src)
	}
	if rdst {
		put(e.Reply.Dst)
	}
	if !e.Delete {
		b = binary.BigEndian.AppendUint32(b, e.Mark)
		b = binary.BigEndian.AppendUint32(b, e.Timeout)
	}
	return b, nil
}

// checkEntry reports whether e can be encoded.
func checkEntry(e *Entry) error {
	v6 := is6(e.Orig.Src.Addr())
	for _, a := range [...]netip.AddrPort{e.Orig.Src, e.Orig.Dst, e.Reply.Src, e.Reply.Dst} {
		if is6(a.Addr()) != v6 || !a.Addr().IsValid() {
			return errFamily
		}
	}
	return nil
}

// reader reads big endian fields; a short read sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || len(r.b) < n {
		r.bad = true
		return make([]byte, n)
	}
	x := r.b[:n]
	r.b = r.b[n:]
	return x
}
func (r *reader) u8() uint8   { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

func (r *reader) addrPort(v6 bool) netip.AddrPort {
	var a netip.Addr
	if v6 {
		a = netip.AddrFrom16([16]byte(r.take(16)))
	} else {
		a = netip.AddrFrom4([4]byte(r.take(4)))
	}
	return netip.AddrPortFrom(a, r.u16())
}

func (r *reader) entry() (Entry, error) {
	f := r.u8()
	if f&^efKnown != 0 {
		return Entry{}, fmt.Errorf("unknown entry flags %#x", f)
	}
	v6 := f&efV6 != 0
	e := Entry{Delete: f&efDelete != 0, Proto: r.u8(), State: r.u8()}
	switch f & (efTemplate | efDR) {
	case efTemplate:
		e.Kind = KindTemplate
	case efDR:
		e.Kind = KindDR
	case efTemplate | efDR:
		return Entry{}, errors.New("entry both a template and a DR flow")
	}
	e.Orig.Src = r.addrPort(v6)
	e.Orig.Dst = r.addrPort(v6)
	e.Reply = Tuple{Src: e.Orig.Dst, Dst: e.Orig.Src}
	if f&efRSrc != 0 {
		e.Reply.Src = r.addrPort(v6)
	}
	if f&efRDst != 0 {
		e.Reply.Dst = r.addrPort(v6)
	}
	if !e.Delete {
		e.Mark = r.u32()
		e.Timeout = r.u32()
	}
	if r.bad {
		return Entry{}, errors.New("truncated entry")
	}
	return e, nil
}

// Codec encodes and authenticates messages with one key.
type Codec struct {
	mac hash.Hash
}

// NewCodec returns a codec for key (at least 16 bytes).
func NewCodec(key []byte) (*Codec, error) {
	if len(key) < 16 {
		return nil, fmt.Errorf("sync key is %d bytes, want at least 16", len(key))
	}
	return &Codec{mac: hmac.New(sha256.New, key)}, nil
}

func (c *Codec) sum(b []byte) []byte {
	c.mac.Reset()
	c.mac.Write(b)
	return c.mac.Sum(b)
}

// header appends m's header with count.
func header(b []byte, m *Message, count int) []byte {
	b = append(b, magic0, magic1, Version, byte(m.Type), m.SyncID, m.Flags)
	b = binary.BigEndian.AppendUint16(b, uint16(count))
	b = binary.BigEndian.AppendUint32(b, m.Sender)
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.BigEndian.AppendUint32(b, m.Seq)
	return binary.BigEndian.AppendUint64(b, uint64(m.Time))
}

// Encode encodes and signs m.
func (c *Codec) Encode(m *Message) ([]byte, error) {
	var b []byte
	switch m.Type {
	case TypeData:
		if len(m.Entries) > 0xffff {
			return nil, errors.New("too many entries")
		}
		b = header(make([]byte, 0, 1400), m, len(m.Entries))
		for i := range m.Entries {
			var err error
			if b, err = appendEntry(b, &m.Entries[i]); err != nil {
				return nil, err
			}
		}
	case TypeNack:
		if len(m.Ranges) > 0xffff {
			return nil, errors.New("too many ranges")
		}
		b = header(nil, m, len(m.Ranges))
		b = binary.BigEndian.AppendUint32(b, m.Target)
		b = binary.BigEndian.AppendUint64(b, m.TargetEpoch)
		for _, r := range m.Ranges {
			b = binary.BigEndian.AppendUint32(b, r[0])
			b = binary.BigEndian.AppendUint32(b, r[1])
		}
	case TypeResync:
		b = header(nil, m, 0)
		b = binary.BigEndian.AppendUint32(b, m.Target)
		b = binary.BigEndian.AppendUint32(b, m.ReqID)
	case TypeDone:
		b = header(nil, m, 0)
		for _, v := range []uint32{m.Target, m.ReqID, m.First, m.Last, m.Count} {
			b = binary.BigEndian.AppendUint32(b, v)
		}
	case TypeAlive:
		b = header(nil, m, 0)
	default:
		return nil, fmt.Errorf("unknown message type %d", m.Type)
	}
	return c.sum(b), nil
}

// Reason is why a message was dropped.
type Reason int

// Drop reasons.
const (
	DropMalformed Reason = iota // not a message of this protocol, or truncated
	DropTooBig                  // larger than the path MTU allows
	DropSyncID                  // another sync_id
	DropBadMAC                  // authentication failed: forged, or another key
	DropStale                   // timestamp outside the allowed skew, or an old epoch
	DropReplay                  // sequence number (or control timestamp) already seen
	NumReasons
)

var reasonNames = [...]string{"malformed", "too_big", "unknown_sync_id", "bad_mac", "stale", "replay"}

func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// DropError is a message rejected by Decode or by a Node.
type DropError struct {
	Reason Reason
	Detail string
}

func (e *DropError) Error() string {
	return "sync message dropped (" + e.Reason.String() + "): " + e.Detail
}

func drop(r Reason, format string, args ...any) error {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Decode checks and decodes one datagram: size (at most maxLen bytes),
// sync_id, MAC, then the payload. It checks no time or sequence: Node does.
func (c *Codec) Decode(b []byte, syncID uint8, maxLen int) (*Message, error) {
	if len(b) > maxLen || len(b) > MaxMessage {
		return nil, drop(DropTooBig, "%d bytes, limit %d", len(b), maxLen)
	}
	if len(b) < Overhead || b[0] != magic0 || b[1] != magic1 {
		return nil, drop(DropMalformed, "not a govs sync message")
	}
	if b[2] != Version {
		return nil, drop(DropMalformed, "version %d, want %d", b[2], Version)
	}
	if b[4] != syncID {
		return nil, drop(DropSyncID, "sync_id %d, ours %d", b[4], syncID)
	}
	body := b[:len(b)-macLen]
	c.mac.Reset()
	c.mac.Write(body)
	var sum [macLen]byte
	if !hmac.Equal(c.mac.Sum(sum[:0]), b[len(body):]) {
		return nil, drop(DropBadMAC, "HMAC mismatch")
	}
	return parse(body)
}

// parse decodes an authenticated message without its MAC.
func parse(body []byte) (*Message, error) {
	if len(body) < headerLen {
		return nil, drop(DropMalformed, "short header")
	}
	r := reader{b: body}
	hdr := r.take(8)
	m := &Message{Type: Type(hdr[3]), SyncID: hdr[4], Flags: hdr[5], Sender: r.u32(), Epoch: r.u64(), Seq: r.u32(), Time: int64(r.u64())}
	count := int(binary.BigEndian.Uint16(hdr[6:]))
	switch m.Type {
	case TypeData:
		if count*15 > len(r.b) { // 15 is the smallest entry
			return nil, drop(DropMalformed, "%d entries in %d bytes", count, len(r.b))
		}
		m.Entries = make([]Entry, 0, count)
		for range count {
			e, err := r.entry()
			if err != nil {
				return nil, drop(DropMalformed, "entry %d: %v", len(m.Entries), err)
			}
			m.Entries = append(m.Entries, e)
		}
	case TypeNack:
		m.Target, m.TargetEpoch = r.u32(), r.u64()
		if count*8 != len(r.b) {
			return nil, drop(DropMalformed, "%d ranges in %d bytes", count, len(r.b))
		}
		for range count {
			from, to := r.u32(), r.u32()
			if to < from {
				return nil, drop(DropMalformed, "range %d..%d", from, to)
			}
			m.Ranges = append(m.Ranges, [2]uint32{from, to})
		}
	case TypeResync:
		m.Target, m.ReqID = r.u32(), r.u32()
	case TypeDone:
		m.Target, m.ReqID, m.First, m.Last, m.Count = r.u32(), r.u32(), r.u32(), r.u32(), r.u32()
	case TypeAlive:
	default:
		return nil, drop(DropMalformed, "unknown type %d", m.Type)
	}
	if r.bad || len(r.b) != 0 {
		return nil, drop(DropMalformed, "%s: payload length", typeName(m.Type))
	}
	return m, nil
}

func typeName(t Type) string {
	switch t {
	case TypeData:
		return "data"
	case TypeNack:
		return "nack"
	case TypeResync:
		return "resync"
	case TypeDone:
		return "done"
	case TypeAlive:
		return "alive"
	}
	return "unknown"
}
