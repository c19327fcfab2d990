package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Firewall-mark virtual services (ipvsadm -f, keepalived's virtual_server
// fwmark): a service that takes the packets the operator's own rules marked
// with its packet mark, whatever their destination address and port, so
// that several ports (HTTP and HTTPS, a port range, FTP's two) are balanced
// as one service with one persistence. As in IPVS, a fwmark service matches
// marked TCP and UDP packets alike (protocol only sets what a udp or tcp
// service's defaults are), and a real server without a port takes each
// packet's own destination port. Only the kernel can match a mark: the
// service needs forwarding nat, fullnat or dr.

// Address families of a fwmark service (ipvsadm's -6).
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// FWMarkKey is the key of the fwmark service of mark in a family: "fwm/1",
// or "fwm6/1" for IPv6 (IPVS keeps the two apart).
func FWMarkKey(mark uint32, v6 bool) string {
	if v6 {
		return "fwm6/" + strconv.FormatUint(uint64(mark), 10)
	}
	return "fwm/" + strconv.FormatUint(uint64(mark), 10)
}

// ParseFWMarkKey reads a key FWMarkKey wrote.
func ParseFWMarkKey(key string) (mark uint32, v6, ok bool) {
	proto, n, found := strings.Cut(key, "/")
	if !found || (proto != "fwm" && proto != "fwm6") {
		return 0, false, false
	}
	m, err := ParseFWMark(n)
	if err != nil {
		return 0, false, false
	}
	return m, proto == "fwm6", true
}

// ParseFWMark reads a firewall mark: decimal (1 to 4294967295, no leading
// zero) or hexadecimal 0x...
func ParseFWMark(s string) (uint32, error) {
	var v uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok && h != "" {
		v, err = strconv.ParseUint(h, 16, 32)
	} else if s == "" || s[0] == '0' || s[0] == '+' {
		err = strconv.ErrSyntax
	} else {
		v, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil || v == 0 {
		return 0, fmt.Errorf("invalid firewall mark %q (1-4294967295, or hexadecimal 0x...)", s)
	}
	return uint32(v), nil
}

// isFWMark reports whether the virtual server was written as a fwmark
// service (a fwmark or family key), valid or not.
func (vs *VirtualServer) isFWMark() bool {
	return vs.FWMark != 0 || vs.Has("fwmark") || vs.Has("family")
}

// IsIPv6 reports whether the service is of the IPv6 family: its VIP's, or
// a fwmark service's family.
func (vs *VirtualServer) IsIPv6() bool {
	if vs.FWMark != 0 {
		return vs.Family == FamilyIPv6
	}
	return vs.Address.Addr.Is6()
}

// Display names the service for people: "FWM 1" ("FWM 1 IPv6") for a
// fwmark service, keepalived's name for it and the default name (ipvsadm
// lists it with two spaces, "FWM  1"); "TCP 10.0.0.1:80" otherwise.
func (vs *VirtualServer) Display() string {
	if vs.FWMark != 0 {
		s := "FWM " + strconv.FormatUint(uint64(vs.FWMark), 10)
		if vs.Family == FamilyIPv6 {
			s += " IPv6"
		}
		return s
	}
	return strings.ToUpper(string(vs.Protocol)) + " " + vs.Address.String()
}

// validateFWMark checks a fwmark service; validate has filled in the
// defaults (forwarding, protocol) and checked the real servers one by one.
func (vs *VirtualServer) validateFWMark(errs *ErrorList) {
	switch {
	case vs.FWMark == 0 && vs.Has("fwmark"):
		errs.add(vs.At("fwmark"), "fwmark must be 1 to 4294967295 (mark 0 is every unmarked packet)")
	case vs.FWMark == 0:
		errs.add(vs.At("family"), "family applies to fwmark services only (an address's family is its own)")
	}
	if !vs.Address.IsZero() {
		errs.add(vs.At("address"), "a virtual server has an address or a fwmark, not both")
	}
	switch vs.Family {
	case "", FamilyIPv4:
		vs.Family = ""
	case FamilyIPv6:
	default:
		errs.add(vs.At("family"), "invalid family %q (ipv4 or ipv6)", vs.Family)
	}
	if vs.Forwarding == Proxy {
		where := vs.At("forwarding")
		if !vs.Has("forwarding") {
			where = vs.At("fwmark")
		}
		errs.add(where, "a fwmark service needs forwarding nat, fullnat or dr: the proxy listens on an address and port, and a firewall mark names neither (forwarding proxy is the default)")
	}
	if vs.Has("announce") && vs.Announce != nil && *vs.Announce {
		errs.add(vs.At("announce"), "a fwmark service has no VIP of its own to announce: announce the VIPs with the services or routes that own them")
	}
	v6 := vs.Family == FamilyIPv6
	fam := map[bool]string{false: FamilyIPv4, true: FamilyIPv6}
	for _, s := range vs.LocalAddresses {
		if r, err := ParseAddrRange(s); err == nil && r.First.Is6() != v6 {
			errs.add(vs.At("local_addresses"), "local address %s is not of the service's family %s", s, fam[v6])
		}
	}
	// Real servers and the sorry server: the service's family, and, where
	// the kernel translates the port (nat, fullnat), all with a port or
	// all without: one kernel map translates every flow of the service.
	type dest struct {
		addr Endpoint
		at   Pos
	}
	var dests []dest
	for _, rs := range vs.RealServers {
		if rs != nil && !rs.Address.IsZero() {
			dests = append(dests, dest{rs.Address, rs.At("address")})
		}
	}
	if !vs.SorryServer.IsZero() {
		dests = append(dests, dest{vs.SorryServer, vs.At("sorry_server")})
	}
	var ported, portless *dest // the first of each kind
	for i := range dests {
		d := &dests[i]
		if d.addr.Addr.Is6() != v6 {
			hint := ""
			if !v6 {
				hint = "; write family: ipv6 for an IPv6 fwmark service"
			}
			errs.add(d.at, "%s is not of the service's family %s%s", d.addr.Addr, fam[v6], hint)
		}
		first := &ported
		if d.addr.Port == 0 {
			first = &portless
		}
		if *first != nil {
			continue
		}
		*first = d
		if vs.Forwarding == DR || vs.Forwarding == Proxy || ported == nil || portless == nil {
			continue
		}
		if d == ported {
			errs.add(d.at, "%s has a port but %s (at %s) has none: the real servers of a fwmark service with forwarding %s all keep the packet's port (no port) or all name one",
				d.addr, portless.addr, portless.at, vs.Forwarding)
		} else {
			errs.add(d.at, "%s has no port but %s (at %s) has one: the real servers of a fwmark service with forwarding %s all keep the packet's port (no port) or all name one",
				d.addr, ported.addr, ported.at, vs.Forwarding)
		}
	}
	// A real server without a port has none to check either.
	for _, rs := range vs.RealServers {
		if rs == nil || rs.Address.IsZero() || rs.Address.Port != 0 || rs.Check == nil {
			continue
		}
		hc := rs.Check
		if connectTypes[hc.Type] && hc.Type != "agent" && hc.Port == 0 && !(hc.Type == "smtp" && len(hc.Hosts) > 0) {
			errs.add(rs.At("address"), "real server %s has no port (it takes each packet's destination port): its %s check needs one: set health_check port", rs.Address, hc.Type)
		}
	}
}
