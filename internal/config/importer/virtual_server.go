package importer

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// virtual_server and virtual_server_group

func (im *importer) virtualServer(n *keepalived.Node) {
	switch n.Arg(0) {
	case "fwmark":
		s, ok := im.value(n, 1)
		if !ok {
			return
		}
		m, err := config.ParseFWMark(s)
		if err != nil {
			im.errorf(n.ArgPosition(1), "virtual_server fwmark: %v", err)
			return
		}
		im.virtualServerBody(n, groupMember{fwmark: m, pos: at(n, 1)}, "")
		return
	case "group":
		name, ok := im.value(n, 1)
		if !ok {
			return
		}
		g := im.groups[name]
		if g == nil {
			im.errorf(n.ArgPosition(1), "virtual_server group %s: no virtual_server_group %q is defined", name, name)
			return
		}
		members := im.groupMembers(name, g)
		for i, m := range members {
			im.quiet = i > 0
			im.virtualServerBody(n, m, name)
		}
		im.quiet = false
		return
	}
	if ep := im.endpoint(n, 0, true); ep.set {
		im.virtualServerBody(n, groupMember{addr: ep.v, pos: ep.pos}, "")
	}
}

// groupMembers expands a virtual_server_group into its addresses, once.
func (im *importer) groupMembers(name string, g *keepalived.Node) []groupMember {
	if m, ok := im.members[name]; ok {
		return m
	}
	var out []groupMember
	for _, e := range g.Children {
		if e.Keyword == "fwmark" {
			m, err := config.ParseFWMark(e.Arg(0))
			if err != nil {
				im.errorf(e.ArgPosition(0), "virtual_server_group %s: fwmark: %v", name, err)
				continue
			}
			out = append(out, groupMember{fwmark: m, pos: at(e, 0)})
			continue
		}
		addrs, err := expandRange(e.Keyword)
		if err != nil {
			im.errorf(e.Pos, "virtual_server_group %s: %v", name, err)
			continue
		}
		var ep config.Endpoint
		if len(e.Args) > 0 {
			p, err := strconv.ParseUint(e.Args[0], 10, 16)
			if err != nil {
				im.errorf(e.ArgPosition(0), "virtual_server_group %s: invalid port %q (0-65535)", name, e.Args[0])
				continue
			}
			ep.Port, ep.HasPort = uint16(p), true
		}
		if len(out)+len(addrs) > maxGroupAddrs {
			im.errorf(e.Pos, "virtual_server_group %s expands to more than %d addresses (govs makes a virtual server of each)", name, maxGroupAddrs)
			break
		}
		for _, a := range addrs {
			ep.Addr = a
			out = append(out, groupMember{addr: ep, pos: here(e)})
		}
	}
	if len(out) == 0 {
		im.warnf(g.Pos, "virtual_server_group %s has no address and port govs can serve", name)
	}
	im.members[name] = out
	return out
}

// expandRange reads a virtual_server_group address: IP, IP-LAST (the last
// byte, or for IPv6 the last 16 bits in hex), IP-IP, or IP/LEN.
func expandRange(s string) ([]netip.Addr, error) {
	bad := fmt.Errorf("invalid address %q: want IP, IP-LAST, IP-IP or IP/LEN", s)
	var first, last netip.Addr
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		if p.Addr().BitLen()-p.Bits() > 12 {
			return nil, fmt.Errorf("%s holds more than %d addresses", s, maxGroupAddrs)
		}
		first = p.Addr()
		for last = first; p.Contains(last.Next()); last = last.Next() {
		}
	} else if a, b, isRange := strings.Cut(s, "-"); isRange {
		var err error
		if first, err = netip.ParseAddr(a); err != nil {
			return nil, bad
		}
		if last, err = netip.ParseAddr(b); err != nil {
			base, limit := 10, uint64(255)
			if first.Is6() {
				base, limit = 16, 0xffff
			}
			v, err := strconv.ParseUint(b, base, 32)
			if err != nil || v > limit {
				return nil, bad
			}
			if first.Is4() {
				a4 := first.As4()
				a4[3] = byte(v)
				last = netip.AddrFrom4(a4)
			} else {
				a16 := first.As16()
				a16[14], a16[15] = byte(v>>8), byte(v)
				last = netip.AddrFrom16(a16).WithZone(first.Zone())
			}
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, bad
		}
		first, last = a, a
	}
	first, last = first.Unmap(), last.Unmap()
	if first.Is4() != last.Is4() || last.Less(first) {
		return nil, fmt.Errorf("invalid range %q: want FIRST-LAST of one family, FIRST <= LAST", s)
	}
	var out []netip.Addr
	for a := first; ; a = a.Next() {
		if len(out) == maxGroupAddrs {
			return nil, fmt.Errorf("%s holds more than %d addresses", s, maxGroupAddrs)
		}
		out = append(out, a)
		if a == last {
			return out, nil
		}
	}
}

// vsBlock is a virtual_server block being read.
type vsBlock struct {
	vs                 *config.VirtualServer
	sc                 checkScope
	realServers, flags []*keepalived.Node
	granularity        opt[string]
	persistence        bool
	family             bool // ip_family was written
}

// scheduler flags keepalived writes as keywords.
var schedFlagKeywords = []string{"flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback"}

// checkerDefaults are the checker settings a virtual or real server passes
// down to its checkers.
var checkerDefaults = []string{"delay_loop", "connect_timeout", "retry", "delay_before_retry", "virtualhost"}

var virtualServerOptions = func() block[*vsBlock] {
	b := block[*vsBlock]{
		"smtp_alert": func(im *importer, b *vsBlock, c *keepalived.Node) {
			setPtr(&b.vs.Meta, "alert", &b.vs.Alert, im.boolean(c))
		},
		"lb_algo": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "scheduler", &b.vs.Scheduler, im.str(c))
		},
		"lb_kind": func(im *importer, b *vsBlock, c *keepalived.Node) {
			if f, ok := im.forwarding(c); ok {
				b.vs.Forwarding = f
				b.vs.SetKey("forwarding", at(c, 0))
			}
		},
		"protocol": func(im *importer, b *vsBlock, c *keepalived.Node) {
			if b.vs.FWMark != 0 {
				// As keepalived: "protocol specified for fwmark - protocol
				// will be ignored".
				im.warnf(c.Pos, "protocol specified for fwmark is ignored, as keepalived ignores it: a fwmark service takes the marked TCP and UDP packets alike")
				return
			}
			set(&b.vs.Meta, "protocol", &b.vs.Protocol, im.protocol(c))
		},
		"ip_family":           (*importer).ipFamily,
		"persistence_timeout": (*importer).persistenceTimeout,
		"persistence_granularity": func(im *importer, b *vsBlock, c *keepalived.Node) {
			b.granularity = im.str(c)
			set(&b.vs.Meta, "persistence_netmask", &b.vs.PersistenceNetmask, b.granularity)
		},
		"ops": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "ops", &b.vs.OnePacket, present(c))
		},
		"quorum": func(im *importer, b *vsBlock, c *keepalived.Node) {
			setPtr(&b.vs.Meta, "quorum", &b.vs.Quorum, im.integer(c, 0))
		},
		"hysteresis": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "quorum_hysteresis", &b.vs.QuorumHysteresis, im.integer(c, 0))
		},
		"quorum_up": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "quorum_up", &b.vs.QuorumUp, im.shellScript(c))
		},
		"quorum_down": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "quorum_down", &b.vs.QuorumDown, im.shellScript(c))
		},
		"sorry_server": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "sorry_server", &b.vs.SorryServer, im.endpoint(c, 0, false))
		},
		"sorry_server_lvs_method": func(im *importer, _ *vsBlock, c *keepalived.Node) {
			if m := strings.ToUpper(c.Arg(0)); m != "NAT" {
				im.ignoredWhy(c, "govs reaches the sorry server as it reaches the real servers")
			}
		},
		"inhibit_on_failure": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "inhibit_on_failure", &b.vs.InhibitOnFailure, im.boolean(c))
		},
		"alpha": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "alpha", &b.vs.Alpha, im.boolean(c))
		},
		"omega": func(im *importer, b *vsBlock, c *keepalived.Node) {
			set(&b.vs.Meta, "omega", &b.vs.Omega, im.boolean(c))
		},
		"real_server": func(_ *importer, b *vsBlock, c *keepalived.Node) {
			b.realServers = append(b.realServers, c)
		},
	}
	b["lvs_sched"], b["lvs_method"] = b["lb_algo"], b["lb_kind"]
	for _, kw := range checkerDefaults {
		b[kw] = func(im *importer, b *vsBlock, c *keepalived.Node) { im.scopeOption(&b.sc, c) }
	}
	for _, kw := range schedFlagKeywords {
		b[kw] = func(_ *importer, b *vsBlock, c *keepalived.Node) { b.flags = append(b.flags, c) }
	}
	return b
}()

// persistenceTimeout reads persistence_timeout [SECONDS]: whole seconds,
// 360 when none is written, as keepalived.
func (im *importer) persistenceTimeout(b *vsBlock, c *keepalived.Node) {
	t := some(config.Duration(360*time.Second), here(c)) // keepalived's default
	if len(c.Args) > 0 {
		secs := im.integer(c, 0)
		if !secs.set {
			return
		}
		if secs.v < 1 {
			im.errorf(c.ArgPosition(0), "persistence_timeout must be at least 1 second")
			return
		}
		t = some(config.Duration(time.Duration(secs.v)*time.Second), secs.pos)
	}
	b.persistence = set(&b.vs.Meta, "persistence_timeout", &b.vs.PersistenceTimeout, t)
}

// ipFamily reads ip_family inet|inet6: a fwmark service's family; an
// address service's must be its address's.
func (im *importer) ipFamily(b *vsBlock, c *keepalived.Node) {
	s, ok := im.value(c, 0)
	if !ok {
		return
	}
	var v6 bool
	switch strings.ToLower(s) {
	case "inet":
	case "inet6":
		v6 = true
	default:
		im.errorf(c.ArgPosition(0), "ip_family: unknown family %q (inet or inet6)", s)
		return
	}
	if b.vs.FWMark == 0 {
		if b.vs.Address.Addr.Is6() != v6 {
			im.errorf(c.ArgPosition(0), "ip_family %s: the virtual server's address %s is of the other family", s, b.vs.Address.Addr)
		}
		return
	}
	if v6 {
		set(&b.vs.Meta, "family", &b.vs.Family, some(config.FamilyIPv6, at(c, 0)))
	}
	b.family = true
}

func (im *importer) virtualServerBody(n *keepalived.Node, m groupMember, group string) {
	addr := m.addr
	vs := &config.VirtualServer{Address: addr, Forwarding: config.NAT}
	vs.Pos = here(n)
	if m.fwmark != 0 {
		vs.Address, vs.FWMark = config.Endpoint{}, m.fwmark
		vs.SetKey("fwmark", m.pos)
	} else {
		vs.SetKey("address", m.pos)
	}
	// keepalived's default lb_kind is NAT.
	vs.SetKey("forwarding", here(n))
	b := &vsBlock{vs: vs}
	virtualServerOptions.read(im, b, n)
	if b.granularity.set && !b.persistence {
		// As keepalived: a granularity makes the service persistent.
		set(&vs.Meta, "persistence_timeout", &vs.PersistenceTimeout, some(config.Duration(360*time.Second), b.granularity.pos))
	}
	im.schedulerFlags(vs, b.flags)
	for _, c := range b.realServers {
		if rs := im.realServer(c, b.sc); rs != nil {
			vs.RealServers = append(vs.RealServers, rs)
		}
	}
	if vs.FWMark != 0 && !b.family && len(vs.RealServers) > 0 {
		// As keepalived: without ip_family, a fwmark service is of its
		// real servers' family.
		v6 := true
		for _, rs := range vs.RealServers {
			v6 = v6 && rs.Address.Addr.Is6()
		}
		if v6 {
			vs.Family = config.FamilyIPv6
			vs.SetKey("family", vs.At("fwmark"))
		}
	}
	if group != "" {
		proto := vs.Protocol
		if proto == "" {
			proto = config.TCP
		}
		vs.Name = group + "/" + string(proto) + "/" + addr.String()
		if vs.FWMark != 0 {
			vs.Name = group + "/" + vs.Display()
		}
		vs.SetKey("name", at(n, 1))
	}
	im.cfg.VirtualServers = append(im.cfg.VirtualServers, vs)
}

// schedulerFlags maps keepalived's flag-1, flag-2 (the scheduler's fallback
// and port flags) and sh-port, sh-fallback, mh-port, mh-fallback.
func (im *importer) schedulerFlags(vs *config.VirtualServer, flags []*keepalived.Node) {
	sched := strings.ToLower(vs.Scheduler)
	for _, c := range flags {
		f := c.Keyword
		switch {
		case f == "flag-1" && (sched == "sh" || sched == "mh"):
			f = sched + "-fallback"
		case f == "flag-2" && (sched == "sh" || sched == "mh"):
			f = sched + "-port"
		case strings.HasPrefix(f, "flag-"):
			im.ignoredWhy(c, "govs knows the scheduler flags of sh and mh only")
			continue
		}
		if !slices.Contains(vs.SchedulerFlags, f) {
			vs.SchedulerFlags = append(vs.SchedulerFlags, f)
		}
		if !vs.Has("scheduler_flags") {
			vs.SetKey("scheduler_flags", here(c))
		}
	}
}

const noTUN = " (it needs IPIP tunnels, CONFIG_NET_IPIP; `govs check --kernel` reports ipip): write DR if the real servers hold the VIP on lo and share a segment with the director " +
	"(forwarding: dr, docs/dr.md), else NAT, or convert and set forwarding: fullnat or proxy (see docs/keepalived.md)"

// forwarding reads lb_kind / lvs_method: NAT maps to nat, DR to dr; govs
// has no tunnelling, and proxying instead would change the network path,
// so TUN is an error.
func (im *importer) forwarding(c *keepalived.Node) (config.Forwarding, bool) {
	s, ok := im.value(c, 0)
	if !ok {
		return "", false
	}
	switch strings.ToUpper(s) {
	case "NAT":
		return config.NAT, true
	case "DR":
		return config.DR, true
	case "TUN":
		im.errorf(c.ArgPosition(0), "%s TUN: govs has no IP tunnelling%s", c.Keyword, noTUN)
	default:
		im.errorf(c.ArgPosition(0), "%s: unknown forwarding method %q (NAT, DR or TUN)", c.Keyword, s)
	}
	return "", false
}

func (im *importer) protocol(c *keepalived.Node) opt[config.Protocol] {
	s, ok := im.value(c, 0)
	if !ok {
		return opt[config.Protocol]{}
	}
	switch strings.ToUpper(s) {
	case "TCP":
		return some(config.TCP, at(c, 0))
	case "UDP":
		return some(config.UDP, at(c, 0))
	case "SCTP":
		im.errorf(c.ArgPosition(0), "protocol SCTP: govs serves TCP and UDP only")
	default:
		im.errorf(c.ArgPosition(0), "unknown protocol %q (TCP or UDP)", s)
	}
	return opt[config.Protocol]{}
}

// real_server

// rsBlock is a real_server block being read.
type rsBlock struct {
	rs       *config.RealServer
	sc       checkScope
	checkers []*keepalived.Node
}

var realServerOptions = func() block[*rsBlock] {
	b := block[*rsBlock]{
		"smtp_alert": func(im *importer, b *rsBlock, c *keepalived.Node) {
			setPtr(&b.rs.Meta, "alert", &b.rs.Alert, im.boolean(c))
		},
		"weight": func(im *importer, b *rsBlock, c *keepalived.Node) {
			setPtr(&b.rs.Meta, "weight", &b.rs.Weight, im.integer(c, 0))
		},
		"lvs_method": func(im *importer, _ *rsBlock, c *keepalived.Node) {
			// govs forwards per virtual service: TUN is an error, NAT and
			// DR are the virtual server's lb_kind's business.
			if f, ok := im.forwarding(c); ok && f != config.NAT {
				im.warnf(c.ArgPosition(0), "%s %s: govs forwards per virtual service: the virtual server's lb_kind applies to this real server", c.Keyword, strings.ToUpper(string(f)))
			}
		},
		"uthreshold": func(im *importer, b *rsBlock, c *keepalived.Node) {
			set(&b.rs.Meta, "upper_threshold", &b.rs.UpperThreshold, im.integer(c, 0))
		},
		"lthreshold": func(im *importer, b *rsBlock, c *keepalived.Node) {
			set(&b.rs.Meta, "lower_threshold", &b.rs.LowerThreshold, im.integer(c, 0))
		},
		"inhibit_on_failure": func(im *importer, b *rsBlock, c *keepalived.Node) {
			setPtr(&b.rs.Meta, "inhibit_on_failure", &b.rs.InhibitOnFailure, im.boolean(c))
		},
		"alpha": func(im *importer, b *rsBlock, c *keepalived.Node) {
			setPtr(&b.rs.Meta, "alpha", &b.rs.Alpha, im.boolean(c))
		},
		"notify_up": func(im *importer, b *rsBlock, c *keepalived.Node) {
			set(&b.rs.Meta, "notify_up", &b.rs.NotifyUp, im.shellScript(c))
		},
		"notify_down": func(im *importer, b *rsBlock, c *keepalived.Node) {
			set(&b.rs.Meta, "notify_down", &b.rs.NotifyDown, im.shellScript(c))
		},
		"BFD_CHECK": func(im *importer, _ *rsBlock, c *keepalived.Node) { im.ignoredWhy(c, "govs has no BFD") },
	}
	b["lb_kind"] = b["lvs_method"]
	for _, kw := range checkerDefaults {
		b[kw] = func(im *importer, b *rsBlock, c *keepalived.Node) { im.scopeOption(&b.sc, c) }
	}
	for kw := range checkerTypes {
		b[kw] = func(_ *importer, b *rsBlock, c *keepalived.Node) { b.checkers = append(b.checkers, c) }
	}
	return b
}()

func (im *importer) realServer(n *keepalived.Node, sc checkScope) *config.RealServer {
	ep := im.endpoint(n, 0, false)
	if !ep.set {
		return nil
	}
	rs := &config.RealServer{Address: ep.v}
	rs.Pos = here(n)
	rs.SetKey("address", ep.pos)
	b := &rsBlock{rs: rs, sc: sc}
	realServerOptions.read(im, b, n)
	for i, c := range b.checkers {
		if i == 0 {
			rs.HealthCheck = im.checker(c, b.sc)
			rs.SetKey("health_check", here(c))
			continue
		}
		im.warnf(c.Pos, "%s has no govs equivalent (ignored): govs runs one checker per real server, here the %s at line %d",
			c.Keyword, b.checkers[0].Keyword, b.checkers[0].Pos.Line)
	}
	return rs
}
