package vrrpd

import (
	"errors"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/config"
)

// The virtual routes of an instance (keepalived's virtual_routes) follow its
// VIPs: added after them when it becomes master (a route's src may be a
// VIP), removed before them when it leaves master or stops.

var routeTypes = map[string]int{"": unix.RTN_UNICAST, "blackhole": unix.RTN_BLACKHOLE,
	"unreachable": unix.RTN_UNREACHABLE, "prohibit": unix.RTN_PROHIBIT}

var routeScopes = map[string]netlink.Scope{"link": netlink.SCOPE_LINK, "host": netlink.SCOPE_HOST, "global": netlink.SCOPE_UNIVERSE, "site": netlink.SCOPE_SITE}

// netlinkRoute resolves r, looking its interface up (links caches them).
func netlinkRoute(r config.VirtualRoute, links map[string]netlink.Link) (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Priority: r.Metric,
		Table:    r.Table,
		Type:     routeTypes[r.Type],
		Protocol: unix.RTPROT_STATIC,
	}
	if r.Dst.Addr().Is4() {
		nr.Family = unix.AF_INET
	} else {
		nr.Family = unix.AF_INET6
	}
	if s, ok := routeScopes[r.Scope]; ok {
		nr.Scope = s
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Dev != "" {
		l := links[r.Dev]
		if l == nil {
			var err error
			if l, err = netlink.LinkByName(r.Dev); err != nil {
				return nil, err
			}
			links[r.Dev] = l
		}
		nr.LinkIndex = l.Attrs().Index
	}
	return nr, nil
}

func (in *instance) addRoutes() {
	for _, r := range in.routes {
		if err := netlink.RouteReplace(r); err != nil {
			in.addrErrors++
			in.log().Error("vrrp: cannot add virtual route", "instance", in.cfg.Name, "route", r.Dst.String(), "err", err)
		}
	}
	if len(in.routes) > 0 {
		in.log().Info("vrrp virtual routes added", "instance", in.cfg.Name, "routes", len(in.routes))
	}
}

func (in *instance) removeRoutes(stale bool) {
	removed := 0
	for _, r := range in.routes {
		err := netlink.RouteDel(r)
		switch {
		case err == nil:
			removed++
		case errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT):
		default:
			in.addrErrors++
			in.log().Error("vrrp: cannot remove virtual route", "instance", in.cfg.Name, "route", r.Dst.String(), "err", err)
		}
	}
	if removed > 0 || (!stale && len(in.routes) > 0) {
		in.log().Info("vrrp virtual routes removed", "instance", in.cfg.Name, "routes", removed)
	}
}

// applyStatic installs the static routes of the configuration in force and
// removes those a reload dropped (none: all of them, at stop). A route that
// cannot be installed is logged, as keepalived does, and govs runs on.
func (d *Daemon) applyStatic(routes []config.VirtualRoute) {
	next := map[string]*netlink.Route{}
	links := map[string]netlink.Link{}
	for _, r := range routes {
		nr, err := netlinkRoute(r, links)
		if err != nil {
			d.log.Error("vrrp: cannot install static route", "route", r.String(), "err", err)
			continue
		}
		next[r.String()] = nr
	}
	for key, nr := range d.static {
		if next[key] != nil {
			continue
		}
		if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
			d.log.Error("vrrp: cannot remove static route", "route", key, "err", err)
		}
	}
	for key, nr := range next {
		if err := netlink.RouteReplace(nr); err != nil {
			d.log.Error("vrrp: cannot install static route", "route", key, "err", err)
			delete(next, key)
		}
	}
	if len(next) > 0 || len(d.static) > 0 {
		d.log.Info("static routes applied", "routes", len(next))
	}
	d.static = next
}

// applyStaticAddrs adds the static addresses of the configuration in force
// and removes those a reload dropped (none: all of them, at stop).
func (d *Daemon) applyStaticAddrs(addrs []config.VirtualIP) {
	next := map[string]vip{}
	for _, a := range addrs {
		l, err := netlink.LinkByName(a.Dev)
		if err != nil {
			d.log.Error("vrrp: cannot add static address", "address", a.String(), "err", err)
			continue
		}
		next[a.String()] = vip{prefix: a.Prefix, link: l, label: a.Label}
	}
	for key, v := range d.staticIPs {
		if _, ok := next[key]; ok {
			continue
		}
		if err := netlink.AddrDel(v.link, v.nl()); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			d.log.Error("vrrp: cannot remove static address", "address", key, "err", err)
		}
	}
	for key, v := range next {
		if err := netlink.AddrReplace(v.link, v.nl()); err != nil {
			d.log.Error("vrrp: cannot add static address", "address", key, "err", err)
			delete(next, key)
		}
	}
	if len(next) > 0 || len(d.staticIPs) > 0 {
		d.log.Info("static addresses applied", "addresses", len(next))
	}
	d.staticIPs = next
}
