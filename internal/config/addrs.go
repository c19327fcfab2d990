package config

import (
	"net"
	"net/netip"
	"strconv"
)

// validateAddresses checks what the addresses of several virtual services
// do to each other: a real server that is a VIP:port of the configuration
// sends connections back through govs (its own VIP loops one connection
// until descriptors run out), and proxy listeners that overlap cannot all be
// bound by govs run.
func (c *Config) validateAddresses(errs *ErrorList) {
	var vss []*VirtualServer
	for _, vs := range c.VirtualServers {
		if vs != nil && !vs.Address.IsZero() && vs.Address.HasPort && vs.Address.Port != 0 {
			vss = append(vss, vs)
		}
	}
	for _, vs := range vss {
		for _, rs := range vs.RealServers {
			if rs == nil || rs.Address.IsZero() || !rs.Address.HasPort {
				continue
			}
			for _, other := range vss {
				if other.Protocol != vs.Protocol || !reaches(other, rs.Address.AddrPort()) {
					continue
				}
				if other == vs {
					errs.add(rs.At("address"), "real server %s is this virtual server's own address: every connection would come back to govs, looping until descriptors run out", rs.Address)
				} else {
					errs.add(rs.At("address"), "real server %s is virtual server %s (at %s), of the same protocol: connections would go through govs again; use that service's real servers", rs.Address, other.Name, other.At("address"))
				}
				break
			}
		}
	}
	// Proxy TCP listeners: a listener on 0.0.0.0 or [::] (both dual-stack
	// in Go) takes its port on every address of both families, so no other
	// listener can bind that port.
	for i, vs := range vss {
		if vs.Forwarding != Proxy || vs.Protocol != TCP {
			continue
		}
		for _, first := range vss[:i] {
			if first.Forwarding != Proxy || first.Protocol != TCP || first.Address.Port != vs.Address.Port || first.Address.Addr == vs.Address.Addr {
				continue
			}
			if vs.Address.Addr.IsUnspecified() || first.Address.Addr.IsUnspecified() {
				errs.add(vs.At("address"), "virtual server %s cannot listen beside %s (at %s): a listener on %s takes port %d on every local address, so govs run could not bind both",
					vs.Address, first.Address, first.At("address"), wildcardOf(vs, first), vs.Address.Port)
				break
			}
		}
	}
	if a := c.API; a != nil && a.HTTP != "" {
		host, port, err := net.SplitHostPort(a.HTTP)
		n, perr := strconv.Atoi(port)
		addr, aerr := netip.ParseAddr(host)
		if host == "" {
			addr, aerr = netip.IPv6Unspecified(), nil
		}
		if err != nil || perr != nil || aerr != nil {
			return // reported by API.validate
		}
		addr = addr.Unmap()
		for _, vs := range vss {
			if vs.Forwarding != Proxy || vs.Protocol != TCP || int(vs.Address.Port) != n {
				continue
			}
			if addr == vs.Address.Addr || addr.IsUnspecified() || vs.Address.Addr.IsUnspecified() {
				errs.add(a.At("http"), "api http address %s takes the port of virtual server %s (at %s): govs run could not bind both", a.HTTP, vs.Address, vs.At("address"))
			}
		}
	}
}

// reaches reports whether a connection to dst is one vs takes: dst is its
// VIP:port, or a loopback address on its port when it listens on every
// address (proxy forwarding on 0.0.0.0 or [::]).
func reaches(vs *VirtualServer, dst netip.AddrPort) bool {
	if dst.Port() != vs.Address.Port {
		return false
	}
	a := dst.Addr().Unmap()
	if a == vs.Address.Addr {
		return true
	}
	return vs.Address.Addr.IsUnspecified() && vs.Forwarding == Proxy && a.IsLoopback()
}

func wildcardOf(a, b *VirtualServer) netip.Addr {
	if a.Address.Addr.IsUnspecified() {
		return a.Address.Addr
	}
	return b.Address.Addr
}
