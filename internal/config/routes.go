package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// VirtualRoute is a route a VRRP instance installs with its VIPs while it
// is master and removes with them (keepalived's virtual_routes), written as
// ip route does: [blackhole|unreachable|prohibit] DST [via GW] [dev IFACE]
// [src ADDR] [metric N] [table N] [scope link|host|site|global].
type VirtualRoute struct {
	Type   string // "" (unicast), blackhole, unreachable, prohibit
	Dst    netip.Prefix
	Via    netip.Addr
	Dev    string
	Src    netip.Addr
	Metric int
	Table  int
	Scope  string // "" (the kernel's choice), link, host, global
}

// routeTypes are the types a route may have besides unicast.
var routeTypes = map[string]bool{"blackhole": true, "unreachable": true, "prohibit": true}

var routeOptions = map[string]bool{"via": true, "gw": true, "dev": true, "src": true, "metric": true, "table": true, "scope": true}

// ParseVirtualRoute reads a route in the form VirtualRoute documents;
// keepalived's spellings "to DST" and "gw GW" are accepted too.
func ParseVirtualRoute(s string) (VirtualRoute, error) {
	var r VirtualRoute
	err := r.decodeScalar(s)
	return r, err
}

func (r *VirtualRoute) decodeScalar(s string) error {
	f := strings.Fields(s)
	var out VirtualRoute
	addr := func(w string) (netip.Addr, error) {
		a, err := netip.ParseAddr(w)
		if err != nil {
			return a, fmt.Errorf("route %q: invalid address %q", s, w)
		}
		return a.Unmap(), nil
	}
	for i := 0; i < len(f); i++ {
		w := f[i]
		if routeTypes[w] && i == 0 {
			out.Type = w
			continue
		}
		if w == "to" || (!routeOptions[w] && !out.Dst.IsValid()) {
			if w == "to" {
				if i++; i >= len(f) {
					return fmt.Errorf("route %q: to needs a destination", s)
				}
				w = f[i]
			}
			p, err := netip.ParsePrefix(w)
			if err != nil {
				a, aerr := netip.ParseAddr(w)
				if aerr != nil {
					return fmt.Errorf("route %q: invalid destination %q (want ADDRESS/PREFIX)", s, w)
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			if p.Masked() != p {
				return fmt.Errorf("route %q: destination %s has host bits set (%s)", s, p, p.Masked())
			}
			out.Dst = p
			continue
		}
		if i+1 >= len(f) {
			return fmt.Errorf("route %q: %q needs a value", s, w)
		}
		v := f[i+1]
		i++
		var err error
		switch w {
		case "via", "gw":
			out.Via, err = addr(v)
		case "dev":
			out.Dev = v
		case "src":
			out.Src, err = addr(v)
		case "metric", "table":
			n, nerr := strconv.ParseUint(v, 10, 32)
			if nerr != nil || n == 0 || (w == "table" && n >= 0xffffffff) {
				return fmt.Errorf("route %q: invalid %s %q", s, w, v)
			}
			if w == "metric" {
				out.Metric = int(n)
			} else {
				out.Table = int(n)
			}
		case "scope":
			if v != "link" && v != "host" && v != "global" && v != "site" {
				return fmt.Errorf("route %q: scope %q (link, host, site or global)", s, v)
			}
			out.Scope = v
		default:
			return fmt.Errorf("route %q: unknown option %q (via, dev, src, metric, table, scope)", s, w)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case !out.Dst.IsValid():
		return fmt.Errorf("route %q: no destination", s)
	case out.Type != "" && (out.Via.IsValid() || out.Dev != ""):
		return fmt.Errorf("route %q: a %s route has no via or dev", s, out.Type)
	case out.Via.IsValid() && out.Via.Is4() != out.Dst.Addr().Is4():
		return fmt.Errorf("route %q: via %s and destination %s are of different families", s, out.Via, out.Dst)
	case out.Src.IsValid() && out.Src.Is4() != out.Dst.Addr().Is4():
		return fmt.Errorf("route %q: src %s and destination %s are of different families", s, out.Src, out.Dst)
	case out.Dev != "" && !validIfName(out.Dev):
		return fmt.Errorf("route %q: invalid interface name %q", s, out.Dev)
	}
	*r = out
	return nil
}

func (r VirtualRoute) String() string {
	var b strings.Builder
	if r.Type != "" {
		b.WriteString(r.Type + " ")
	}
	b.WriteString(r.Dst.String())
	if r.Via.IsValid() {
		b.WriteString(" via " + r.Via.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	if r.Src.IsValid() {
		b.WriteString(" src " + r.Src.String())
	}
	if r.Metric != 0 {
		b.WriteString(" metric " + strconv.Itoa(r.Metric))
	}
	if r.Table != 0 {
		b.WriteString(" table " + strconv.Itoa(r.Table))
	}
	if r.Scope != "" {
		b.WriteString(" scope " + r.Scope)
	}
	return b.String()
}

// MarshalYAML writes the route in ip route's form.
func (r VirtualRoute) MarshalYAML() (any, error) { return r.String(), nil }

// validateStatic checks the static addresses: each names its interface,
// once.
func (c *Config) validateStatic(errs *ErrorList) {
	seen := map[netip.Addr]bool{}
	for _, v := range c.StaticIPAddresses {
		a := v.Addr()
		switch {
		case v.Dev == "":
			errs.add(c.At("static_ipaddresses"), "static address %s needs dev IFACE", a)
		case !validIfName(v.Dev):
			errs.add(c.At("static_ipaddresses"), "static address %s: invalid interface name %q", a, v.Dev)
		case a.IsUnspecified() || a.IsMulticast():
			errs.add(c.At("static_ipaddresses"), "static address %s is not a host address", a)
		case seen[a]:
			errs.add(c.At("static_ipaddresses"), "static address %s listed twice", a)
		}
		seen[a] = true
	}
}
