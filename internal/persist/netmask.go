package persist

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Netmask groups clients that share a persistence template: IPVS's
// persistence_netmask (ipvsadm -M). An IPv4 client is masked bitwise with a
// dotted mask such as 255.255.255.0; an IPv6 client is cut to a prefix
// length, as IPVS reads the same option for an IPv6 service. The zero
// Netmask groups nothing: /32 for IPv4, /128 for IPv6.
type Netmask struct {
	clear4 uint32 // bits cleared from an IPv4 address
	cut6   uint8  // bits cut from the end of an IPv6 address (128 - prefix)
}

// NewNetmask returns the grouping by mask4 for IPv4 clients (any mask, as
// IPVS applies it bitwise; the zero Addr means 255.255.255.255) and by a
// prefix of bits6 for IPv6 clients (0 to 128).
func NewNetmask(mask4 netip.Addr, bits6 int) (Netmask, error) {
	var m Netmask
	if mask4.IsValid() {
		if !mask4.Is4() {
			return Netmask{}, fmt.Errorf("persistence netmask %v is not an IPv4 mask", mask4)
		}
		b := mask4.As4()
		m.clear4 = ^binary.BigEndian.Uint32(b[:])
	}
	if bits6 < 0 || bits6 > 128 {
		return Netmask{}, fmt.Errorf("IPv6 persistence prefix length %d is not within 0..128", bits6)
	}
	m.cut6 = uint8(128 - bits6)
	return m, nil
}

// ParseNetmask reads a persistence netmask as keepalived and ipvsadm write
// it: a dotted IPv4 mask ("255.255.255.0") groups IPv4 clients, and a prefix
// length ("64" or "/64") groups IPv6 clients; the other family is left
// ungrouped.
func ParseNetmask(s string) (Netmask, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ".") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Netmask{}, fmt.Errorf("persistence netmask %q: %v", s, err)
		}
		return NewNetmask(a, 128)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(s, "/"))
	if err != nil {
		return Netmask{}, fmt.Errorf("persistence netmask %q is neither a dotted IPv4 mask nor a prefix length", s)
	}
	return NewNetmask(netip.Addr{}, n)
}

// Apply returns the address that stands for a's group. An IPv4-mapped IPv6
// address is treated as the IPv4 address it carries; zones are dropped.
func (m Netmask) Apply(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		b := a.As4()
		binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])&^m.clear4)
		return netip.AddrFrom4(b)
	}
	if !a.Is6() || m.cut6 == 0 {
		return a
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	switch c := uint(m.cut6); {
	case c >= 128:
		hi, lo = 0, 0
	case c >= 64:
		hi, lo = hi&^(1<<(c-64)-1), 0
	default:
		lo &^= 1<<c - 1
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// String returns the IPv4 mask and the IPv6 prefix length, "255.255.255.0/128".
func (m Netmask) String() string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], ^m.clear4)
	return netip.AddrFrom4(b).String() + "/" + strconv.Itoa(128-int(m.cut6))
}
