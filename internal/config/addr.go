package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// The one parser of ADDRESS:PORT for the configuration and the control API.
// netip.ParseAddrPort (strconv.ParseUint underneath) reads ":08080" as port
// 8080, so a typo or a deliberately odd spelling names a port other than
// the one written; here a port is written one way only.

// ParsePort parses a port number strictly: decimal digits only, no sign, no
// leading zero, 1 to 65535.
func ParsePort(s string) (uint16, error) {
	bad := func() (uint16, error) {
		return 0, fmt.Errorf("invalid port %q (1-65535, decimal digits, no leading zero)", s)
	}
	if s == "" || len(s) > 5 || s[0] == '0' {
		return bad()
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return bad()
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return bad()
	}
	return uint16(n), nil
}

// ParseAddrPort parses "IPv4:PORT" or "[IPv6]:PORT" with ParsePort's rules
// for the port. A v4-mapped IPv6 address is returned as IPv4, as the
// configuration keys services and real servers.
func ParseAddrPort(s string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("invalid address %q: want IP:PORT or [IPv6]:PORT", s)
	}
	if _, err := ParsePort(s[i+1:]); err != nil {
		if _, aerr := netip.ParseAddr(strings.Trim(s[:i], "[]")); aerr == nil || strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
			return netip.AddrPort{}, fmt.Errorf("%w in %q", err, s)
		}
		return netip.AddrPort{}, fmt.Errorf("invalid address %q: want IP:PORT or [IPv6]:PORT", s)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid address %q: want IP:PORT or [IPv6]:PORT", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
