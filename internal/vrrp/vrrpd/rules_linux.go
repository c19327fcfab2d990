package vrrpd

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/config"
)

// Policy routing rules (keepalived's virtual_rules and static_rules) go
// with the routes: an instance's after its routes, a static one at start.

var ruleTypes = map[string]uint8{"blackhole": unix.RTN_BLACKHOLE, "unreachable": unix.RTN_UNREACHABLE, "prohibit": unix.RTN_PROHIBIT}

func ipNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func netlinkRule(r config.VirtualRule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = unix.AF_INET
	if r.Is6() {
		nr.Family = unix.AF_INET6
	}
	nr.Src, nr.Dst = ipNet(r.From), ipNet(r.To)
	nr.Mark = r.FWMark
	if r.HasMask {
		m := r.Mask
		nr.Mask = &m
	}
	nr.IifName, nr.OifName = r.IIf, r.OIf
	if r.HasPriority {
		nr.Priority = r.Priority
	}
	if r.Table != 0 {
		nr.Table = r.Table
	} else {
		nr.Type = ruleTypes[r.Action]
	}
	nr.Protocol = unix.RTPROT_STATIC
	return nr
}

func (in *instance) addRules() {
	for _, r := range in.rules {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			in.addrErrors++
			in.log().Error("vrrp: cannot add virtual rule", "instance", in.cfg.Name, "rule", r.String(), "err", err)
		}
	}
}

func (in *instance) removeRules() {
	for _, r := range in.rules {
		if err := netlink.RuleDel(r); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
			in.addrErrors++
			in.log().Error("vrrp: cannot remove virtual rule", "instance", in.cfg.Name, "rule", r.String(), "err", err)
		}
	}
}

// applyStaticRules installs the static rules of the configuration in force
// and removes those a reload dropped (none: all of them, at stop).
func (d *Daemon) applyStaticRules(rules []config.VirtualRule) {
	next := map[string]*netlink.Rule{}
	for _, r := range rules {
		next[r.String()] = netlinkRule(r)
	}
	for key, nr := range d.staticRules {
		if next[key] == nil {
			if err := netlink.RuleDel(nr); err != nil && !errors.Is(err, unix.ENOENT) {
				d.log.Error("vrrp: cannot remove static rule", "rule", key, "err", err)
			}
		}
	}
	for key, nr := range next {
		if d.staticRules[key] != nil {
			continue // installed already: RuleAdd would add a second copy
		}
		if err := netlink.RuleAdd(nr); err != nil && !errors.Is(err, unix.EEXIST) {
			d.log.Error("vrrp: cannot install static rule", "rule", key, "err", err)
			delete(next, key)
		}
	}
	if len(next) > 0 || len(d.staticRules) > 0 {
		d.log.Info("static rules applied", "rules", len(next))
	}
	d.staticRules = next
}
