package importer

import (
	"net/netip"
	"strings"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// vrrpScriptOptions are the keywords of vrrp_script NAME { ... }.
var vrrpScriptOptions = block[*config.TrackScript]{
	"script": func(im *importer, ts *config.TrackScript, c *keepalived.Node) {
		if _, ok := im.value(c, 0); !ok {
			return
		}
		s := c.Args[0]
		if len(c.Args) > 1 {
			s = commandJoin(c.Args)
		}
		set(&ts.Meta, "script", &ts.Script, some(s, at(c, 0)))
	},
	"interval": func(im *importer, ts *config.TrackScript, c *keepalived.Node) {
		set(&ts.Meta, "interval", &ts.Interval, im.seconds(c, 0))
	},
	"timeout": func(im *importer, ts *config.TrackScript, c *keepalived.Node) {
		set(&ts.Meta, "timeout", &ts.Timeout, im.seconds(c, 0))
	},
	"weight": func(im *importer, ts *config.TrackScript, c *keepalived.Node) {
		if set(&ts.Meta, "weight", &ts.Weight, im.integer(c, 0)) {
			im.reverse(c, 1)
		}
	},
	"rise": func(im *importer, ts *config.TrackScript, c *keepalived.Node) {
		set(&ts.Meta, "rise", &ts.Rise, im.integer(c, 0))
	},
	"fall": func(im *importer, ts *config.TrackScript, c *keepalived.Node) {
		set(&ts.Meta, "fall", &ts.Fall, im.integer(c, 0))
	},
}

// vrrpScript reads vrrp_script NAME { ... } into the template of the track
// scripts of the instances that track it.
func (im *importer) vrrpScript(n *keepalived.Node) {
	ts := &config.TrackScript{Name: n.Arg(0)}
	ts.Pos = here(n)
	ts.SetKey("name", at(n, 0))
	vrrpScriptOptions.read(im, ts, n)
	if ts.Script == "" {
		// keepalived removes it, and its track_script lines are then
		// "not found, ignoring" (a conditional @ID script line can leave
		// it empty on this host).
		im.warnf(n.Pos, "vrrp_script %s has no script: removed, as keepalived does", n.Arg(0))
		return
	}
	define(im, n, "vrrp_script", im.scripts, ts)
}

// reverse warns about a weight's reverse (argument i), which govs lacks.
func (im *importer) reverse(c *keepalived.Node, i int) {
	switch c.Arg(i) {
	case "":
	case "noreverse":
	case "reverse":
		im.warnf(c.ArgPosition(i), "weight reverse has no govs equivalent (ignored)")
	default:
		im.warnf(c.ArgPosition(i), "%s has no govs equivalent (ignored)", c.Args[i])
	}
}

// The notify scripts of an instance and of a sync group.
func notifyOptions[T any](notify func(T) (m *config.Meta, master, backup, fault, stop, all *string)) block[T] {
	b := block[T]{}
	for i, kw := range []string{"notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"} {
		b[kw] = func(im *importer, t T, c *keepalived.Node) {
			m, master, backup, fault, stop, all := notify(t)
			set(m, kw, []*string{master, backup, fault, stop, all}[i], im.vrrpCommand(c))
		}
	}
	return b
}

var vrrpInstanceOptions = func() block[*config.VRRPInstance] {
	b := notifyOptions(func(vi *config.VRRPInstance) (*config.Meta, *string, *string, *string, *string, *string) {
		return &vi.Meta, &vi.NotifyMaster, &vi.NotifyBackup, &vi.NotifyFault, &vi.NotifyStop, &vi.Notify
	})
	for kw, f := range map[string]func(*config.VRRPInstance) *int{
		"virtual_router_id":          func(vi *config.VRRPInstance) *int { return &vi.VirtualRouterID },
		"priority":                   func(vi *config.VRRPInstance) *int { return &vi.Priority },
		"version":                    func(vi *config.VRRPInstance) *int { return &vi.Version },
		"garp_master_repeat":         func(vi *config.VRRPInstance) *int { return &vi.GARPMasterRepeat },
		"garp_master_refresh_repeat": func(vi *config.VRRPInstance) *int { return &vi.GARPMasterRefreshRepeat },
	} {
		b[kw] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
			set(&vi.Meta, kw, f(vi), im.integer(c, 0))
		}
	}
	for kw, f := range map[string]func(*config.VRRPInstance) *config.Duration{
		"advert_int":    func(vi *config.VRRPInstance) *config.Duration { return &vi.AdvertInt },
		"preempt_delay": func(vi *config.VRRPInstance) *config.Duration { return &vi.PreemptDelay },
	} {
		b[kw] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
			set(&vi.Meta, kw, f(vi), im.seconds(c, 0))
		}
	}
	for kw, f := range map[string]func(*config.VRRPInstance) **config.Duration{
		"garp_master_delay":   func(vi *config.VRRPInstance) **config.Duration { return &vi.GARPMasterDelay },
		"garp_master_refresh": func(vi *config.VRRPInstance) **config.Duration { return &vi.GARPMasterRefresh },
	} {
		b[kw] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
			setPtr(&vi.Meta, kw, f(vi), im.seconds(c, 0))
		}
	}
	for kw, f := range map[string]func(*config.VRRPInstance) *string{
		"state":     func(vi *config.VRRPInstance) *string { return &vi.State },
		"interface": func(vi *config.VRRPInstance) *string { return &vi.Interface },
	} {
		b[kw] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) { set(&vi.Meta, kw, f(vi), im.str(c)) }
	}
	b["nopreempt"] = func(_ *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "nopreempt", &vi.NoPreempt, some(c.Keyword == "nopreempt", here(c)))
	}
	b["preempt"] = b["nopreempt"]
	b["accept"] = func(_ *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "accept", &vi.Accept, present(c))
	}
	b["no_accept"] = func(im *importer, _ *config.VRRPInstance, c *keepalived.Node) {
		im.ignoredWhy(c, "govs always accepts the traffic for its VIPs")
	}
	b["use_vmac"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		// use_vmac [NAME] [MAC]: govs uses the RFC's virtual router MAC.
		set(&vi.Meta, "use_vmac", &vi.UseVMAC, present(c))
		if len(c.Args) > 0 {
			set(&vi.Meta, "vmac_interface", &vi.VMACInterface, some(c.Args[0], at(c, 0)))
		}
		if len(c.Args) > 1 {
			im.warnf(c.ArgPosition(1), "use_vmac MAC address %s has no govs equivalent (ignored): govs uses the virtual router MAC 00:00:5e:00:01:VRID", strings.Join(c.Args[1:], " "))
		}
	}
	b["vmac_xmit_base"] = func(_ *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "vmac_xmit_base", &vi.VMACXmitBase, present(c))
	}
	b["strict_mode"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "strict_mode", &vi.StrictMode, im.boolean(c))
	}
	b["lower_prio_no_advert"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "lower_prio_no_advert", &vi.LowerPrioNoAdvert, im.boolean(c))
	}
	b["virtual_ipaddress"] = (*importer).vips
	b["unicast_src_ip"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "unicast_src_ip", &vi.UnicastSrcIP, im.hostIP(c, c.Arg(0), c.ArgPosition(0)))
	}
	b["mcast_src_ip"] = b["unicast_src_ip"]
	b["unicast_peer"] = (*importer).unicastPeers
	b["authentication"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		set(&vi.Meta, "authentication", &vi.Authentication, some(im.authentication(c), here(c)))
	}
	b["smtp_alert"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		setPtr(&vi.Meta, "alert", &vi.Alert, im.boolean(c))
	}
	b["virtual_routes"] = (*importer).virtualRoutes
	b["virtual_rules"] = func(im *importer, vi *config.VRRPInstance, c *keepalived.Node) {
		vi.VirtualRules = im.rules(c)
		vi.SetKey("virtual_rules", here(c))
	}
	b["track_interface"] = (*importer).trackInterfaces
	b["track_script"] = (*importer).trackScripts
	return b
}()

func (im *importer) vrrpInstance(n *keepalived.Node) {
	vi := &config.VRRPInstance{Name: n.Arg(0)}
	named(&vi.Meta, n)
	im.glob.vrrpDefaults(vi)
	vrrpInstanceOptions.read(im, vi, n)
	if vi.UseVMAC && len(vi.UnicastPeers) > 0 && !vi.VMACXmitBase {
		im.warnAt(vi.At("use_vmac"), im.top, "use_vmac in %s: unicast with use_vmac requires vmac_xmit_base - setting, as keepalived does", vi.Name)
		set(&vi.Meta, "vmac_xmit_base", &vi.VMACXmitBase, some(true, vi.At("use_vmac")))
	}
	im.strictMode(vi)
	if a := vi.Authentication; a != nil && a.AuthPass == "" {
		im.warnAt(a.Pos, im.top, "authentication of %s: Authentication specified but no password given. Ignoring, as keepalived does: no authentication", vi.Name)
		vi.Authentication = nil
	}
	if a := vi.Authentication; a != nil && strings.EqualFold(a.AuthType, "AH") {
		im.authAH(vi)
	}
	im.cfg.VRRPInstances = append(im.cfg.VRRPInstances, vi)
}

// authAH maps auth_type AH, keepalived's IPsec AH authentication, which
// govs speaks too. keepalived starts an AH instance whose state is MASTER as
// BACKUP (it needs an advert's AH sequence number before taking over), with
// a warning; so does govs.
func (im *importer) authAH(vi *config.VRRPInstance) {
	if strings.EqualFold(vi.State, "MASTER") && vi.Priority != 255 {
		im.warnAt(vi.At("state"), im.top, "state MASTER of %s: Initial state master is incompatible with AH authentication - clearing: BACKUP, as keepalived does", vi.Name)
		set(&vi.Meta, "state", &vi.State, some("BACKUP", vi.At("state")))
	}
}

// vips maps virtual_ipaddress { ... }. An address listed twice is added
// once by keepalived (the second ip address add fails, unreported), with the
// first line's options: govs keeps the first too.
func (im *importer) vips(vi *config.VRRPInstance, c *keepalived.Node) {
	vi.VirtualIPAddresses = nil
	first := map[netip.Addr]int{}
	for _, line := range c.Children {
		v, ok := im.vip(line)
		if !ok {
			continue
		}
		if l, dup := first[v.Addr()]; dup {
			im.warnf(line.Pos, "virtual_ipaddress %s is listed at line %d already: added once, as keepalived does (this line is ignored)", v.Addr(), l)
			continue
		}
		first[v.Addr()] = line.Pos.Line
		vi.VirtualIPAddresses = append(vi.VirtualIPAddresses, v)
	}
	vi.SetKey("virtual_ipaddresses", here(c))
}

// vip maps a virtual_ipaddress line: ADDR[/LEN] [dev IFACE] [label LABEL]
// and ip address options govs does not set (warned about).
func (im *importer) vip(line *keepalived.Node) (config.VirtualIP, bool) {
	w := line.Words()
	wordPos := func(i int) keepalived.Position {
		if i == 0 {
			return line.Pos
		}
		return line.ArgPosition(i - 1)
	}
	s := w[0]
	for i := 1; i < len(w); i++ {
		switch w[i] {
		case "dev", "label":
			if i+1 >= len(w) {
				im.errorf(wordPos(i), "virtual_ipaddress %s: %s needs a value", w[0], w[i])
				return config.VirtualIP{}, false
			}
			s += " " + w[i] + " " + w[i+1]
			i++
		case "brd", "broadcast", "scope", "peer", "preferred_lft", "track_group", "metric":
			val := ""
			if i+1 < len(w) {
				val = " " + w[i+1]
			}
			im.warnf(wordPos(i), "virtual_ipaddress %s%s has no govs equivalent (ignored)", w[i], val)
			i++
		default:
			im.warnf(wordPos(i), "virtual_ipaddress %s has no govs equivalent (ignored)", w[i])
		}
	}
	v, err := config.ParseVirtualIP(s)
	if err != nil {
		im.errorf(line.Pos, "virtual_ipaddress: %v", err)
		return config.VirtualIP{}, false
	}
	return v, true
}

// virtualRoutes maps virtual_routes { ROUTE ... }: each line that govs
// can install; a route with an option govs does not set (or, nexthop,
// proto, ...) is a warning and is left out whole, rather than installed
// with another meaning.
func (im *importer) virtualRoutes(vi *config.VRRPInstance, c *keepalived.Node) {
	vi.VirtualRoutes = nil
	for _, line := range c.Children {
		r, err := config.ParseVirtualRoute(strings.Join(line.Words(), " "))
		if err != nil {
			im.warnf(line.Pos, "virtual_routes: %v: not installed (ignored)", err)
			continue
		}
		vi.VirtualRoutes = append(vi.VirtualRoutes, r)
	}
	vi.SetKey("virtual_routes", here(c))
}

// staticRoutes maps the top-level static_routes { ROUTE ... } as
// virtual_routes lines.
func (im *importer) staticRoutes(n *keepalived.Node) {
	for _, line := range n.Children {
		r, err := config.ParseVirtualRoute(strings.Join(line.Words(), " "))
		if err != nil {
			im.warnf(line.Pos, "static_routes: %v: not installed (ignored)", err)
			continue
		}
		im.cfg.StaticRoutes = append(im.cfg.StaticRoutes, r)
	}
	im.cfg.SetKey("static_routes", here(n))
}

// rules maps the lines of virtual_rules or static_rules. A rule without a
// preference gets keepalived's: 16384 for the first in the file, one less
// for each next, with keepalived's warning; a rule keepalived refuses (an
// invalid address) or with an option govs does not set is a warning and
// left out.
func (im *importer) rules(n *keepalived.Node) []config.VirtualRule {
	var out []config.VirtualRule
	for _, line := range n.Children {
		r, err := config.ParseVirtualRule(strings.Join(line.Words(), " "))
		if err != nil {
			im.warnf(line.Pos, "%s: %v: not installed (ignored)", n.Keyword, err)
			continue
		}
		if !r.HasPriority {
			if im.rulePref == 0 {
				im.rulePref = 16384
			}
			r.Priority, r.HasPriority = im.rulePref, true
			im.rulePref--
			im.warnf(line.Pos, "%s: rule has no preference: %d, as keepalived sets it (\"This is probably not what you want\")", n.Keyword, r.Priority)
		}
		out = append(out, r)
	}
	return out
}

// staticAddrs maps the top-level static_ipaddress { ADDR dev IF ... } as
// virtual_ipaddress lines.
func (im *importer) staticAddrs(n *keepalived.Node) {
	for _, line := range n.Children {
		if v, ok := im.vip(line); ok {
			im.cfg.StaticIPAddresses = append(im.cfg.StaticIPAddresses, v)
		}
	}
	im.cfg.SetKey("static_ipaddresses", here(n))
}

// unicastPeers maps unicast_peer { IP ... }.
func (im *importer) unicastPeers(vi *config.VRRPInstance, c *keepalived.Node) {
	vi.UnicastPeers = nil
	for _, line := range c.Children {
		if ip := im.hostIP(line, line.Keyword, line.Pos); ip.set {
			vi.UnicastPeers = append(vi.UnicastPeers, ip.v)
		}
		if len(line.Args) > 0 {
			im.warnf(line.ArgPosition(0), "unicast_peer %s has no govs equivalent (ignored)", strings.Join(line.Args, " "))
		}
	}
	vi.SetKey("unicast_peers", here(c))
}

func (im *importer) hostIP(n *keepalived.Node, s string, p keepalived.Position) opt[config.HostIP] {
	if s == "" {
		im.value(n, 0)
		return opt[config.HostIP]{}
	}
	ip, err := config.ParseHostIP(s)
	if err != nil {
		im.errorf(p, "%s: %v", n.Keyword, err)
		return opt[config.HostIP]{}
	}
	return some(ip, config.Pos(p))
}

func (im *importer) authentication(n *keepalived.Node) *config.VRRPAuth {
	a := &config.VRRPAuth{}
	a.Pos = here(n)
	for _, c := range n.Children {
		switch c.Keyword {
		case "auth_type":
			set(&a.Meta, "auth_type", &a.AuthType, im.str(c))
		case "auth_pass":
			s := im.str(c)
			if s.set && len(s.v) > 8 {
				// keepalived uses the first 8 characters (VRRP carries 8).
				im.warnf(c.ArgPosition(0), "auth_pass is longer than 8 characters: keepalived sends the first 8, so does govs (converted to %q)", s.v[:8])
				s.v = s.v[:8]
			}
			set(&a.Meta, "auth_pass", &a.AuthPass, s)
		default:
			im.ignored(c)
		}
	}
	return a
}

// trackInterfaces maps track_interface { IFACE [weight N [reverse]] }.
func (im *importer) trackInterfaces(vi *config.VRRPInstance, c *keepalived.Node) {
	vi.TrackInterfaces = nil
	for _, line := range c.Children {
		ti := config.TrackInterface{Name: line.Keyword}
		if w, ok := im.weightArg(line, "track_interface %s: want IFACE [weight N]"); !ok {
			continue
		} else if w.set {
			ti.Weight = w.v
		}
		vi.TrackInterfaces = append(vi.TrackInterfaces, ti)
	}
	vi.SetKey("track_interfaces", here(c))
}

// weightArg reads the optional "weight N [reverse]" after a tracked name;
// ok is false when the line is wrong (usage is the error, given the name).
func (im *importer) weightArg(line *keepalived.Node, usage string) (w opt[int], ok bool) {
	if len(line.Args) == 0 {
		return opt[int]{}, true
	}
	if line.Args[0] != "weight" {
		im.errorf(line.ArgPosition(0), usage, line.Keyword)
		return opt[int]{}, false
	}
	if w = im.integer(line, 1); !w.set {
		return w, false
	}
	im.reverse(line, 2)
	return w, true
}

// trackScripts maps track_script { NAME [weight N [reverse]] } onto copies
// of the vrrp_script NAME.
func (im *importer) trackScripts(vi *config.VRRPInstance, c *keepalived.Node) {
	for _, line := range c.Children {
		tmpl := im.scripts[line.Keyword]
		if tmpl == nil {
			// keepalived: "track script NAME not found, ignoring...".
			im.warnf(line.Pos, "track_script %s: no vrrp_script %q is defined, ignoring it, as keepalived does", line.Keyword, line.Keyword)
			continue
		}
		ts := *tmpl
		ts.Meta = tmpl.Meta.Clone()
		ts.SetKey("name", here(line))
		w, ok := im.weightArg(line, "track_script %s: want NAME [weight N]")
		if !ok {
			continue
		}
		set(&ts.Meta, "weight", &ts.Weight, w)
		vi.TrackScripts = append(vi.TrackScripts, &ts)
	}
	vi.SetKey("track_scripts", here(c))
}

var syncGroupOptions = func() block[*config.VRRPSyncGroup] {
	b := notifyOptions(func(g *config.VRRPSyncGroup) (*config.Meta, *string, *string, *string, *string, *string) {
		return &g.Meta, &g.NotifyMaster, &g.NotifyBackup, &g.NotifyFault, &g.NotifyStop, &g.Notify
	})
	b["group"] = func(_ *importer, g *config.VRRPSyncGroup, c *keepalived.Node) {
		set(&g.Meta, "instances", &g.Instances, some(c.BlockWords(), here(c)))
	}
	b["smtp_alert"] = func(im *importer, g *config.VRRPSyncGroup, c *keepalived.Node) {
		setPtr(&g.Meta, "alert", &g.Alert, im.boolean(c))
	}
	return b
}()

// syncGroupKeywords are keepalived's other vrrp_sync_group keywords, which
// govs does not map.
var syncGroupKeywords = map[string]bool{
	"global_tracking": true, "sync_group_tracking_weight": true, "track_interface": true, "track_script": true,
	"track_file": true, "track_bfd": true, "track_process": true, "notify_priority_changes": true,
}

func (im *importer) syncGroup(n *keepalived.Node) {
	g := &config.VRRPSyncGroup{Name: n.Arg(0)}
	named(&g.Meta, n)
	for _, c := range n.Children {
		if !syncGroupOptions.apply(im, g, c) {
			if !syncGroupKeywords[c.Keyword] {
				// The old syntax, members listed directly: keepalived
				// 2.2.7 reads each as an unknown keyword.
				im.warnf(c.Pos, "%s: unknown keyword in vrrp_sync_group (ignored, as keepalived: members go inside group { })", c.Keyword)
				continue
			}
			im.ignored(c)
		}
	}
	if len(g.Instances) == 0 {
		im.warnf(n.Pos, "vrrp_sync_group %s has no instances: removed, as keepalived does", g.Name)
		return
	}
	im.cfg.VRRPSyncGroups = append(im.cfg.VRRPSyncGroups, g)
}
