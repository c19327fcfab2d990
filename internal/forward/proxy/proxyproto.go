package proxy

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/govs-lb/govs/internal/desired"
)

// v2Signature starts every PROXY protocol v2 header.
var v2Signature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// appendProxyHeader appends the PROXY protocol header (HAProxy's
// proxy-protocol.txt) telling a real server the client's address (src) and
// the address it connected to (dst), for TCP.
func appendProxyHeader(b []byte, v desired.ProxyProtocol, src, dst netip.AddrPort) []byte {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	mixed := src.Addr().Is4() != dst.Addr().Is4()
	switch v {
	case desired.ProxyV1:
		if mixed {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		fam := "TCP4 "
		if src.Addr().Is6() {
			fam = "TCP6 "
		}
		b = append(b, "PROXY "...)
		b = append(b, fam...)
		b = src.Addr().AppendTo(b)
		b = append(b, ' ')
		b = dst.Addr().AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	case desired.ProxyV2:
		b = append(b, v2Signature[:]...)
		if mixed {
			// LOCAL command, unspecified family: the receiver uses the
			// connection's own addresses.
			return append(b, 0x20, 0x00, 0, 0)
		}
		b = append(b, 0x21) // version 2, PROXY command
		if src.Addr().Is4() {
			b = append(b, 0x11, 0, 12) // TCP over IPv4, 12 address bytes
			s, d := src.Addr().As4(), dst.Addr().As4()
			b = append(b, s[:]...)
			b = append(b, d[:]...)
		} else {
			b = append(b, 0x21, 0, 36) // TCP over IPv6, 36 address bytes
			s, d := src.Addr().As16(), dst.Addr().As16()
			b = append(b, s[:]...)
			b = append(b, d[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, src.Port())
		return binary.BigEndian.AppendUint16(b, dst.Port())
	}
	return b
}
