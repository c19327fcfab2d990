package importer

import (
	"strings"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// globals are the global_defs that become defaults of other sections.
type globals struct {
	tcpTimeout, udpTimeout        opt[config.Duration]
	tcpfinTimeout                 opt[config.Duration]
	vrrpVersion                   opt[int]
	garpDelay, garpRefresh        opt[config.Duration]
	garpRepeat, garpRefreshRepeat opt[int]
	garpInterval, gnaInterval     opt[config.Duration]
	lowerPrioNoAdvert             opt[bool]
	defaultInterface              opt[string]
	mail                          mailGlobals // alerts.go
	strict                        opt[bool]
}

var globalOptions = block[*globals]{
	"vrrp_version": func(im *importer, g *globals, c *keepalived.Node) { g.vrrpVersion = im.integer(c, 0) },
	"vrrp_garp_master_delay": func(im *importer, g *globals, c *keepalived.Node) {
		g.garpDelay = im.seconds(c, 0)
	},
	"vrrp_garp_master_repeat": func(im *importer, g *globals, c *keepalived.Node) { g.garpRepeat = im.integer(c, 0) },
	"vrrp_garp_master_refresh": func(im *importer, g *globals, c *keepalived.Node) {
		g.garpRefresh = im.seconds(c, 0)
	},
	"vrrp_garp_master_refresh_repeat": func(im *importer, g *globals, c *keepalived.Node) {
		g.garpRefreshRepeat = im.integer(c, 0)
	},
	"vrrp_garp_interval": func(im *importer, g *globals, c *keepalived.Node) { g.garpInterval = im.seconds(c, 0) },
	"vrrp_gna_interval":  func(im *importer, g *globals, c *keepalived.Node) { g.gnaInterval = im.seconds(c, 0) },
	"vrrp_lower_prio_no_advert": func(im *importer, g *globals, c *keepalived.Node) {
		g.lowerPrioNoAdvert = im.boolean(c)
	},
	"vrrp_min_garp": func(im *importer, g *globals, c *keepalived.Node) {
		// One gratuitous ARP, no second burst 5 s later.
		if b := im.boolean(c); b.set && b.v {
			g.garpRepeat, g.garpDelay = some(1, b.pos), some(config.Duration(0), b.pos)
		}
	},
	"notification_email":      mailOption,
	"notification_email_from": mailOption,
	"smtp_server":             mailOption,
	"smtp_connect_timeout":    mailOption,
	"router_id":               mailOption,
	"smtp_alert":              mailOption,
	"smtp_alert_vrrp":         mailOption,
	"smtp_alert_checker":      mailOption,
	// keepalived only logs adverts whose addresses differ from its own,
	// as govs does; skipping the check changes nothing else.
	"vrrp_skip_check_adv_addr": func(im *importer, _ *globals, c *keepalived.Node) { im.boolean(c) },
	"vrrp_strict":              func(_ *importer, g *globals, c *keepalived.Node) { g.strict = present(c) },
	"default_interface":        func(im *importer, g *globals, c *keepalived.Node) { g.defaultInterface = im.str(c) },
	"lvs_timeouts":             func(im *importer, _ *globals, c *keepalived.Node) { im.lvsTimeoutsLine(c) },
	"script_user": func(im *importer, _ *globals, c *keepalived.Node) {
		u := im.str(c)
		if u.set && len(c.Args) > 1 {
			u.v += ":" + c.Args[1]
		}
		if len(c.Args) > 2 {
			im.warnf(c.ArgPosition(2), "script_user %s: keepalived reads a user and a group only (ignored)", strings.Join(c.Args[2:], " "))
		}
		set(&im.cfg.Meta, "script_user", &im.cfg.ScriptUser, u)
	},
	"enable_script_security": func(im *importer, _ *globals, c *keepalived.Node) {
		if len(c.Args) > 0 {
			// keepalived's handler sets the flag and reads no value.
			im.warnf(c.ArgPosition(0), "enable_script_security takes no value: keepalived enables script security whatever follows (%s ignored)",
				strings.Join(c.Args, " "))
		}
		setPtr(&im.cfg.Meta, "script_security", &im.cfg.ScriptSecurity, present(c))
	},
}

// globalDefs reads global_defs.
func (im *importer) globalDefs(n *keepalived.Node) {
	globalOptions.read(im, &im.glob, n)
}

// lvsTimeoutsLine reads lvs_timeouts [tcp N] [tcpfin N] [udp N].
func (im *importer) lvsTimeoutsLine(n *keepalived.Node) {
	im.lvsTop = im.top
	for i := 0; i < len(n.Args); i += 2 {
		if i+1 >= len(n.Args) {
			im.errorf(n.ArgPosition(i+1), "lvs_timeouts %s needs a value", n.Args[i])
			return
		}
		switch n.Args[i] {
		case "tcp":
			im.glob.tcpTimeout = im.seconds(n, i+1)
		case "udp":
			im.glob.udpTimeout = im.seconds(n, i+1)
		case "tcpfin":
			im.glob.tcpfinTimeout = im.seconds(n, i+1)
		default:
			im.errorf(n.ArgPosition(i), "lvs_timeouts: unknown timeout %q (tcp, tcpfin or udp)", n.Args[i])
		}
	}
}

// lvsTimeouts applies lvs_timeouts tcp and udp as the idle_timeout of every
// virtual server of that protocol, and tcpfin as the tcpfin_timeout of the
// TCP ones.
// Forwarding nat leaves idle flows to conntrack's timeouts, so the value
// only matters once a service is switched to proxy: a warning says so.
func (im *importer) lvsTimeouts() {
	warned := map[config.Pos]bool{}
	for _, vs := range im.cfg.VirtualServers {
		t, proto := im.glob.tcpTimeout, "tcp"
		if vs.Protocol == config.UDP {
			t, proto = im.glob.udpTimeout, "udp"
		}
		if vs.Protocol == config.TCP {
			set(&vs.Meta, "tcpfin_timeout", &vs.TCPFinTimeout, im.glob.tcpfinTimeout)
		}
		if !set(&vs.Meta, "idle_timeout", &vs.IdleTimeout, t) {
			continue
		}
		if vs.Forwarding == config.NAT && !warned[t.pos] {
			warned[t.pos] = true
			im.warnAt(t.pos, im.lvsTop, "lvs_timeouts %s has no effect with forwarding nat, where the kernel's conntrack timeouts apply "+
				"(kept as idle_timeout, used by forwarding proxy)", proto)
		}
	}
}

// strictMode applies vrrp_strict (or an instance's strict_mode): the
// instance gets strict_mode, and what keepalived changes at each instance to
// make it strict is changed here too, with keepalived's warning: the initial
// state is MASTER exactly for the address owner (priority 255), no
// authentication, no preempt_delay, lower_prio_no_advert. Unicast peers make
// keepalived refuse the configuration: an error.
func (im *importer) strictMode(vi *config.VRRPInstance) {
	if !vi.Has("strict_mode") { // an instance's own strict_mode wins, as in keepalived
		set(&vi.Meta, "strict_mode", &vi.StrictMode, im.glob.strict)
	}
	if !vi.StrictMode {
		return
	}
	if vi.State != "" && strings.EqualFold(vi.State, "MASTER") != (vi.Priority == 255) {
		want := "BACKUP"
		if vi.Priority == 255 {
			want = "MASTER"
		}
		im.warnAt(vi.At("state"), im.top, "state %s of %s: vrrp_strict wants state MASTER for the address owner only: %s, as keepalived does", vi.State, vi.Name, want)
		set(&vi.Meta, "state", &vi.State, some(want, vi.At("state")))
	}
	if vi.Authentication != nil {
		im.warnAt(vi.At("authentication"), im.top, "authentication of %s: vrrp_strict does not support authentication, ignored as keepalived does", vi.Name)
		vi.Authentication = nil
	}
	if vi.Version == 2 && vi.Is6() {
		im.warnAt(vi.At("version"), im.top, "version 2 of %s: cannot use IPv6 with VRRP version 2; setting version 3, as keepalived does in strict mode", vi.Name)
		vi.Version = 3
	}
	if vi.VMACXmitBase {
		im.warnAt(vi.At("vmac_xmit_base"), im.top, "vmac_xmit_base of %s is incompatible with strict mode: reset, as keepalived does", vi.Name)
		vi.VMACXmitBase = false
	}
	if vi.PreemptDelay != 0 {
		im.warnAt(vi.At("preempt_delay"), im.top, "preempt_delay of %s is incompatible with strict mode: reset to 0, as keepalived does", vi.Name)
		vi.PreemptDelay = 0
	}
	if vi.Has("lower_prio_no_advert") && !vi.LowerPrioNoAdvert {
		im.warnAt(vi.At("lower_prio_no_advert"), im.top, "lower_prio_no_advert off in %s: strict mode requires no lower priority advert, reset as keepalived does", vi.Name)
	}
	set(&vi.Meta, "lower_prio_no_advert", &vi.LowerPrioNoAdvert, some(true, vi.At("strict_mode")))
	if len(vi.UnicastPeers) > 0 {
		im.errorf(keepalived.Position(vi.At("unicast_peers")), "unicast_peer in %s: Unicast peers are not supported in strict mode (keepalived refuses it too)", vi.Name)
	}
}

// vrrpDefaults gives an instance the global_defs that are its defaults.
func (g *globals) vrrpDefaults(vi *config.VRRPInstance) {
	set(&vi.Meta, "interface", &vi.Interface, g.defaultInterface)
	set(&vi.Meta, "version", &vi.Version, g.vrrpVersion)
	setPtr(&vi.Meta, "garp_master_delay", &vi.GARPMasterDelay, g.garpDelay)
	setPtr(&vi.Meta, "garp_master_refresh", &vi.GARPMasterRefresh, g.garpRefresh)
	set(&vi.Meta, "garp_master_repeat", &vi.GARPMasterRepeat, g.garpRepeat)
	set(&vi.Meta, "garp_master_refresh_repeat", &vi.GARPMasterRefreshRepeat, g.garpRefreshRepeat)
	set(&vi.Meta, "lower_prio_no_advert", &vi.LowerPrioNoAdvert, g.lowerPrioNoAdvert)
	set(&vi.Meta, "garp_interval", &vi.GARPInterval, g.garpInterval)
	set(&vi.Meta, "gna_interval", &vi.GNAInterval, g.gnaInterval)
}
