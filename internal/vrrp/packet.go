package vrrp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Protocol is VRRP's IP protocol number (IPv4 Protocol, IPv6 Next Header).
const Protocol = 112

// TTL is the IPv4 TTL / IPv6 Hop Limit every advertisement is sent with and
// must arrive with (RFC 3768 section 5.2.3, RFC 5798 section 5.1.1.3).
const TTL = 255

// The multicast groups advertisements are sent to (RFC 5798 section 5.1).
var (
	MulticastIPv4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	MulticastIPv6 = netip.MustParseAddr("ff02::12")
)

// Version is the VRRP protocol version: 2 (RFC 3768) or 3 (RFC 5798).
type Version uint8

// The supported versions.
const (
	V2 Version = 2
	V3 Version = 3
)

// TypeAdvertisement is the only VRRP packet type.
const TypeAdvertisement = 1

// AuthType is the VRRPv2 Auth Type field. RFC 3768 deprecated types 1 and 2
// but keepalived still implements them; VRRPv3 has no authentication.
type AuthType uint8

// The VRRPv2 authentication types.
const (
	AuthNone   AuthType = 0 // no authentication
	AuthSimple AuthType = 1 // keepalived "auth_type PASS": 8-byte clear text password
	AuthAH     AuthType = 2 // IPsec AH (keepalived "auth_type AH"): the advert travels inside an AH header (ah.go)
)

// AuthLen is the size of the VRRPv2 Authentication Data field.
const AuthLen = 8

// HeaderLen is the size of the fixed VRRP header, before the addresses.
const HeaderLen = 8

// Largest values of the advertisement interval fields.
const (
	MaxAdverIntV2 = 0xff  // seconds, 8 bits
	MaxAdverIntV3 = 0xfff // centiseconds, 12 bits
)

// MaxLen is the largest valid VRRP message: VRRPv3 over IPv6 with 255
// addresses.
const MaxLen = HeaderLen + 255*16

// IPInfo carries the IP-layer facts of a received advertisement that the
// socket layer knows and the codec needs: the addresses for the VRRPv3
// pseudo-header checksum and the address family, and the TTL / hop limit for
// the receive check.
type IPInfo struct {
	Src netip.Addr // IP source: the sender's primary address
	Dst netip.Addr // IP destination: the multicast group or our unicast address
	// HopLimit is the IPv4 TTL or the IPv6 Hop Limit of the packet.
	HopLimit uint8
	// Unicast skips the HopLimit == 255 check. keepalived skips it when
	// unicast peers are configured, because unicast adverts may be routed.
	Unicast bool
}

// Packet is one VRRP advertisement, version 2 or 3. Decode fills it in place
// and reuses the capacity of Addrs, so a caller that keeps one Packet decodes
// without allocating.
type Packet struct {
	Version  Version
	VRID     uint8
	Priority uint8
	// AdverInt is the advertisement interval as on the wire: whole seconds
	// in VRRPv2 (Adver Int, 8 bits), centiseconds in VRRPv3 (Max Adver Int,
	// 12 bits). Interval converts it to a Duration.
	AdverInt uint16
	// AuthType and AuthData are VRRPv2 only. AuthData holds the password for
	// AuthSimple and is zero otherwise (RFC 3768: ignored on reception).
	AuthType AuthType
	AuthData [AuthLen]byte
	// AH says the advert came authenticated inside an IPsec AH header
	// (DecodeAH), and Seq is that header's sequence number. Decode clears
	// both: an advert whose Auth Type says AH but that came without the
	// header is refused by Machine.Step as an auth type mismatch.
	AH  bool
	Seq uint32
	// Addrs are the virtual addresses: IPv4 for VRRPv2, IPv4 or IPv6 (the
	// family of the IP header) for VRRPv3.
	Addrs []netip.Addr
}

// Interval returns the advertisement interval as a Duration.
func (p *Packet) Interval() time.Duration {
	if p.Version == V2 {
		return time.Duration(p.AdverInt) * time.Second
	}
	return time.Duration(p.AdverInt) * 10 * time.Millisecond
}

// Reason says why a packet was rejected, for per-reason drop counters.
type Reason uint8

// The rejection reasons. Decode returns the first group; Machine.Step the
// second.
const (
	ReasonNone       Reason = iota
	ReasonShort             // shorter than the fixed header
	ReasonVersion           // version is not 2 or 3, or not the configured one
	ReasonType              // type is not ADVERTISEMENT (1)
	ReasonTTL               // IPv4 TTL / IPv6 hop limit is not 255
	ReasonAddrFamily        // VRRPv2 over IPv6, or IP source/destination families differ
	ReasonLength            // length does not match Count IPvX Addr (+ auth data)
	ReasonChecksum          // checksum mismatch
	ReasonAuthType          // unknown VRRPv2 auth type
	ReasonNotVRRP           // an IPsec AH packet of another protocol than VRRP (ignored)
	ReasonInterval          // interval is 0, or (VRRPv2) differs from the configured one
	// Reasons found by Machine.Step, which knows the configuration.
	ReasonVRID         // not our virtual router: the caller may hand it to another Machine
	ReasonAuthMismatch // VRRPv2 auth type differs from the configured one
	ReasonAuthFailure  // VRRPv2 simple password differs, or the AH ICV or SPI is wrong
	ReasonReplay       // AH sequence number not above the highest seen (replay)
	ReasonAddrList     // address list differs and StrictAddrCheck is set
	ReasonOwnAdvert    // our own advertisement looped back
	NumReasons         // number of reasons, for counter arrays
)

var reasonNames = [NumReasons]string{
	ReasonNone:         "none",
	ReasonShort:        "too short",
	ReasonVersion:      "bad version",
	ReasonType:         "bad type",
	ReasonTTL:          "bad ttl",
	ReasonAddrFamily:   "bad address family",
	ReasonLength:       "length mismatch",
	ReasonChecksum:     "bad checksum",
	ReasonAuthType:     "unknown auth type",
	ReasonNotVRRP:      "AH for another protocol",
	ReasonInterval:     "advertisement interval mismatch",
	ReasonVRID:         "vrid mismatch",
	ReasonAuthMismatch: "auth type mismatch",
	ReasonAuthFailure:  "auth failure",
	ReasonReplay:       "AH sequence number replayed",
	ReasonAddrList:     "address list mismatch",
	ReasonOwnAdvert:    "own advertisement",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Error is a rejected packet. Decode and Step return only the Err*
// variables below, so errors.Is works and rejecting allocates nothing.
type Error struct{ Reason Reason }

func (e *Error) Error() string { return "vrrp: " + e.Reason.String() }

// The rejection errors, one per Reason.
var (
	ErrShort        = &Error{ReasonShort}
	ErrVersion      = &Error{ReasonVersion}
	ErrType         = &Error{ReasonType}
	ErrTTL          = &Error{ReasonTTL}
	ErrAddrFamily   = &Error{ReasonAddrFamily}
	ErrLength       = &Error{ReasonLength}
	ErrChecksum     = &Error{ReasonChecksum}
	ErrAuthType     = &Error{ReasonAuthType}
	ErrNotVRRP      = &Error{ReasonNotVRRP}
	ErrInterval     = &Error{ReasonInterval}
	ErrVRID         = &Error{ReasonVRID}
	ErrAuthMismatch = &Error{ReasonAuthMismatch}
	ErrAuthFailure  = &Error{ReasonAuthFailure}
	ErrReplay       = &Error{ReasonReplay}
	ErrAddrList     = &Error{ReasonAddrList}
	ErrOwnAdvert    = &Error{ReasonOwnAdvert}
)

// ReasonOf returns the Reason of a rejection error, ReasonNone for nil or a
// foreign error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonNone
}

// Decode parses and validates the VRRP message b (the IP payload) received
// with the IP-layer facts ip, into p. It applies the receive checks of
// RFC 3768 section 7.1 and RFC 5798 section 7.1 that need no configuration:
// TTL/hop limit 255, version, type, complete packet (the length must be
// exactly the header, Count addresses and, for VRRPv2, the 8 bytes of
// authentication data), checksum, known auth type, non-zero interval, and
// addresses of the packet's family (no v4-mapped address in an IPv6 one).
// Checks that need the configuration (VRID, auth, VRRPv2 interval, address
// list) are Machine.Step's.
//
// Decode never panics, allocates only when p.Addrs lacks capacity for the
// packet's addresses, and returns one of the Err* errors on rejection, when p
// is left partly filled.
func Decode(b []byte, ip IPInfo, p *Packet) error {
	if !ip.Unicast && ip.HopLimit != TTL {
		return ErrTTL
	}
	if len(b) < HeaderLen {
		return ErrShort
	}
	v := Version(b[0] >> 4)
	if v != V2 && v != V3 {
		return ErrVersion
	}
	if b[0]&0x0f != TypeAdvertisement {
		return ErrType
	}
	src, dst := ip.Src.Unmap(), ip.Dst.Unmap()
	v4 := src.Is4()
	if !src.IsValid() || !dst.IsValid() || dst.Is4() != v4 || (v == V2 && !v4) {
		return ErrAddrFamily
	}
	alen := 16
	if v4 {
		alen = 4
	}
	n := int(b[3])
	want := HeaderLen + n*alen
	if v == V2 {
		want += AuthLen
	}
	if len(b) != want {
		return ErrLength
	}
	if v == V2 {
		if checksum(0, b) != 0 {
			return ErrChecksum
		}
	} else if checksum(pseudoSum(src, dst, len(b)), b) != 0 {
		return ErrChecksum
	}

	p.Version = v
	p.VRID = b[1]
	p.Priority = b[2]
	p.AuthData = [AuthLen]byte{}
	p.AH, p.Seq = false, 0
	if v == V2 {
		p.AuthType = AuthType(b[4])
		p.AdverInt = uint16(b[5])
		switch p.AuthType {
		case AuthNone, AuthAH: // AH's data is in the AH header (DecodeAH)
		case AuthSimple:
			copy(p.AuthData[:], b[want-AuthLen:])
		default:
			return ErrAuthType
		}
	} else {
		p.AuthType = AuthNone
		p.AdverInt = binary.BigEndian.Uint16(b[4:6]) & MaxAdverIntV3 // 4 reserved bits ignored
	}
	if p.AdverInt == 0 {
		return ErrInterval
	}
	if cap(p.Addrs) < n {
		p.Addrs = make([]netip.Addr, n)
	}
	p.Addrs = p.Addrs[:n]
	a := b[HeaderLen:]
	for i := range n {
		if v4 {
			p.Addrs[i] = netip.AddrFrom4([4]byte(a[i*4 : i*4+4]))
		} else {
			p.Addrs[i] = netip.AddrFrom16([16]byte(a[i*16 : i*16+16]))
			// A v4-mapped address in an IPv6 advertisement is an IPv4
			// address in the wrong family: no configured IPv6 VIP equals
			// it, and Append could not send it back as it came.
			if p.Addrs[i].Is4In6() {
				return ErrAddrFamily
			}
		}
	}
	return nil
}

// Encoding errors.
var (
	errEncVersion  = errors.New("vrrp: encode: version must be 2 or 3")
	errEncCount    = errors.New("vrrp: encode: more than 255 addresses")
	errEncFamily   = errors.New("vrrp: encode: addresses must all be of the IP header's family (IPv4 for VRRPv2)")
	errEncInterval = errors.New("vrrp: encode: advertisement interval out of range")
	errEncAuth     = errors.New("vrrp: encode: unsupported auth type")
)

// Len returns the encoded length of p: the family of the addresses is that of
// the first one (IPv4 when there is none).
func (p *Packet) Len() int {
	alen := 4
	if len(p.Addrs) > 0 && p.Addrs[0].Unmap().Is6() {
		alen = 16
	}
	n := HeaderLen + len(p.Addrs)*alen
	if p.Version == V2 {
		n += AuthLen
	}
	return n
}

// Append encodes p, appends it to b and returns the extended slice. src and
// dst are the IP source and destination the packet will be sent with: VRRPv3
// covers them with the checksum; VRRPv2 ignores them. For VRRPv2 Append writes
// AuthData only for AuthSimple and zeroes otherwise. Append does not allocate
// when b has room.
func (p *Packet) Append(b []byte, src, dst netip.Addr) ([]byte, error) {
	if p.Version != V2 && p.Version != V3 {
		return b, errEncVersion
	}
	if len(p.Addrs) > 255 {
		return b, errEncCount
	}
	src, dst = src.Unmap(), dst.Unmap()
	v4 := true
	if p.Version == V3 {
		v4 = src.Is4()
		if !src.IsValid() || !dst.IsValid() || dst.Is4() != v4 {
			return b, errEncFamily
		}
	}
	for _, a := range p.Addrs {
		if a.Unmap().Is4() != v4 || !a.IsValid() {
			return b, errEncFamily
		}
	}
	if p.AdverInt == 0 || (p.Version == V2 && p.AdverInt > MaxAdverIntV2) || p.AdverInt > MaxAdverIntV3 {
		return b, errEncInterval
	}
	if p.Version == V2 && p.AuthType > AuthAH {
		return b, errEncAuth
	}

	start := len(b)
	b = append(b, byte(p.Version)<<4|TypeAdvertisement, p.VRID, p.Priority, byte(len(p.Addrs)))
	if p.Version == V2 {
		b = append(b, byte(p.AuthType), byte(p.AdverInt))
	} else {
		b = binary.BigEndian.AppendUint16(b, p.AdverInt)
	}
	b = append(b, 0, 0) // checksum
	for _, a := range p.Addrs {
		a = a.Unmap()
		if v4 {
			a4 := a.As4()
			b = append(b, a4[:]...)
		} else {
			a16 := a.As16()
			b = append(b, a16[:]...)
		}
	}
	var sum uint32
	if p.Version == V2 {
		if p.AuthType == AuthSimple {
			b = append(b, p.AuthData[:]...)
		} else {
			b = append(b, make([]byte, AuthLen)...)
		}
	} else {
		sum = pseudoSum(src, dst, len(b)-start)
	}
	binary.BigEndian.PutUint16(b[start+6:], checksum(sum, b[start:]))
	return b, nil
}

// pseudoSum is the one's complement sum of the VRRPv3 pseudo-header: for
// IPv4 source, destination, zero, protocol 112 and the VRRP length (as UDP
// does, RFC 768); for IPv6 the RFC 8200 section 8.1 pseudo-header (source,
// destination, 32-bit length, 24 zero bits, next header 112). Both sum to the
// same 16-bit words, only their order differs.
func pseudoSum(src, dst netip.Addr, n int) uint32 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = sum16(sum, s[:])
		sum = sum16(sum, d[:])
	} else {
		s, d := src.As16(), dst.As16()
		sum = sum16(sum, s[:])
		sum = sum16(sum, d[:])
	}
	return sum + Protocol + uint32(n>>16) + uint32(n&0xffff)
}

// sum16 adds b as big-endian 16-bit words (odd length padded with a zero
// byte, RFC 1071) to sum without folding.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// checksum returns the Internet checksum (RFC 1071) of b with the partial sum
// initial: the one's complement of the folded one's complement sum. Over data
// that includes a correct checksum it returns 0.
func checksum(initial uint32, b []byte) uint16 {
	// Each 16-bit word adds at most 0xffff; a VRRP message (at most MaxLen
	// bytes) plus the pseudo-header cannot overflow 32 bits.
	sum := sum16(initial, b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
