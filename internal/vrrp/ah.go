package vrrp

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net/netip"
)

// VRRPv2 "auth_type AH" (RFC 2338 section 5.3.6.3) as keepalived implements
// it, which is the interop target: every advert is a whole IPv4 packet of
// protocol 51 whose IPsec Authentication Header (RFC 2402) carries
//
//	next header 112, payload length 4 (a 96-bit ICV), reserved 0,
//	SPI = the IPv4 source address, a sequence number, and
//	ICV = HMAC-MD5-96 keyed with the 8-byte auth_pass (zero padded)
//
// over the IPv4 header with its mutable fields zeroed (TOS, flags and
// fragment offset, checksum; the TTL too for unicast peers, whose adverts may
// be routed), the AH header with a zero ICV, and the VRRP message (whose own
// Auth Type is 2 and authentication data zero). The sequence number is
// anti-replay: a receiver drops any advert whose number is not above the
// highest it has seen (Machine keeps that counter, and numbers its own adverts
// from it). The whole IP header is ours to write (IP_HDRINCL), because the ICV
// covers the identification field the kernel would otherwise choose.

// ProtocolAH is the IP protocol number of the IPsec Authentication Header.
const ProtocolAH = 51

// AHLen is the size of keepalived's AH header: 12 fixed bytes and a 96-bit ICV.
const AHLen = 24

// ipv4HeaderLen is the IPv4 header AppendAH writes: no options.
const ipv4HeaderLen = 20

const (
	ahPayloadLen = 4  // AH length in 32-bit words minus 2: (12+12)/4 - 2
	icvLen       = 12 // HMAC-MD5 truncated to 96 bits (RFC 2403)
)

// AHParams are the per-packet values of an AH advert that are not in Packet.
type AHParams struct {
	Src, Dst netip.Addr // IPv4 source (also the SPI) and destination
	// ID is the IPv4 identification; keepalived counts it up per advert,
	// skipping 0 (which the kernel would replace, breaking the ICV).
	ID uint16
	// Seq is the AH sequence number (Action.Seq of the ActSendAdvert).
	Seq uint32
	// Unicast zeroes the TTL in the ICV, as keepalived does for unicast
	// peers; both ends must agree.
	Unicast bool
}

var (
	errEncAH = errors.New("vrrp: encode: AH needs a VRRPv2 advert with auth type AH between IPv4 addresses")
	errEncID = errors.New("vrrp: encode: AH needs a non-zero IPv4 identification")
)

// AppendAH encodes p, a VRRPv2 advert with AuthType AuthAH, as the whole
// IPv4 packet keepalived sends for auth_type AH (header, AH, VRRP message),
// authenticated with key, and appends it to b. Send it with IP_HDRINCL; the
// kernel fills in the header checksum only.
func (p *Packet) AppendAH(b []byte, h AHParams, key [AuthLen]byte) ([]byte, error) {
	src, dst := h.Src.Unmap(), h.Dst.Unmap()
	if p.Version != V2 || p.AuthType != AuthAH || !src.Is4() || !dst.Is4() {
		return b, errEncAH
	}
	if h.ID == 0 {
		return b, errEncID
	}
	start := len(b)
	total := ipv4HeaderLen + AHLen + p.Len()
	s, d := src.As4(), dst.As4()
	b = append(b, 0x45, tosInternetControl)
	b = binary.BigEndian.AppendUint16(b, uint16(total))
	b = binary.BigEndian.AppendUint16(b, h.ID)
	b = append(b, 0, 0, TTL, ProtocolAH, 0, 0) // no fragments, TTL, protocol, checksum (the kernel's)
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = append(b, Protocol, ahPayloadLen, 0, 0)
	b = append(b, s[:]...) // SPI: the source address, as keepalived chooses it
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	b = append(b, make([]byte, icvLen)...)
	b, err := p.Append(b, src, dst)
	if err != nil {
		return b[:start], err
	}
	pkt := b[start:]
	icv := ahICV(pkt, ipv4HeaderLen, h.Unicast, key)
	copy(pkt[ipv4HeaderLen+12:], icv[:icvLen])
	return b, nil
}

// tosInternetControl is the TOS keepalived sends adverts with.
const tosInternetControl = 0xc0

// ahICV computes the HMAC-MD5 of pkt (IPv4 header of ihl bytes, AH, VRRP)
// with the mutable fields and the ICV zeroed, on a copy of the headers.
func ahICV(pkt []byte, ihl int, unicast bool, key [AuthLen]byte) [md5.Size]byte {
	var hdr [60 + AHLen]byte
	n := copy(hdr[:], pkt[:ihl+AHLen])
	hdr[1] = 0              // TOS
	hdr[6], hdr[7] = 0, 0   // flags, fragment offset
	hdr[10], hdr[11] = 0, 0 // header checksum
	if unicast {
		hdr[8] = 0 // TTL
	}
	clear(hdr[ihl+12 : ihl+AHLen])
	mac := hmac.New(md5.New, key[:])
	mac.Write(hdr[:n])
	mac.Write(pkt[ihl+AHLen:])
	var sum [md5.Size]byte
	mac.Sum(sum[:0])
	return sum
}

// DecodeAH parses and authenticates pkt, a whole IPv4 packet of protocol 51
// as a raw socket returns it, into p, and returns the IP-layer facts of the
// VRRP message inside. It checks the AH header (next header VRRP, keepalived's
// length, SPI equal to the source address) and the ICV with key, then the
// VRRP message as Decode does; p.AH is set and p.Seq holds the sequence
// number, which Machine.Step checks against replay. unicast says the TTL is
// left out of the ICV and not checked (keepalived's unicast peers).
//
// DecodeAH never panics and returns one of the Err* errors on rejection;
// ErrNotVRRP is an AH packet of another protocol, to be ignored.
func DecodeAH(pkt []byte, key [AuthLen]byte, unicast bool, p *Packet) (IPInfo, error) {
	var ip IPInfo
	if len(pkt) < ipv4HeaderLen {
		return ip, ErrShort
	}
	if pkt[0]>>4 != 4 {
		return ip, ErrAddrFamily
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || len(pkt) < ihl+AHLen+HeaderLen {
		return ip, ErrShort
	}
	// Linux hands raw sockets the total length as sent; a packet that does
	// not end where its header says is damaged.
	if int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) {
		return ip, ErrLength
	}
	if pkt[9] != ProtocolAH {
		return ip, ErrAuthMismatch
	}
	ip.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
	ip.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	ip.HopLimit = pkt[8]
	ip.Unicast = unicast
	ah := pkt[ihl : ihl+AHLen]
	if ah[0] != Protocol {
		return ip, ErrNotVRRP
	}
	if ah[1] != ahPayloadLen {
		return ip, ErrLength
	}
	icv := ahICV(pkt, ihl, unicast, key)
	if subtle.ConstantTimeCompare(icv[:icvLen], ah[12:AHLen]) != 1 {
		return ip, ErrAuthFailure
	}
	if [4]byte(ah[4:8]) != [4]byte(pkt[12:16]) {
		return ip, ErrAuthFailure // keepalived: "invalid IPSEC SPI value"
	}
	if err := Decode(pkt[ihl+AHLen:], ip, p); err != nil {
		return ip, err
	}
	if p.Version != V2 || p.AuthType != AuthAH {
		return ip, ErrAuthMismatch
	}
	p.AH = true
	p.Seq = binary.BigEndian.Uint32(ah[8:12])
	return ip, nil
}
