package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// VRRPInstance is one VRRP virtual router (keepalived's vrrp_instance). The
// keys keep keepalived's names; docs/vrrp.md describes each.
type VRRPInstance struct {
	Meta `yaml:"-"`

	Name      string `yaml:"name"`
	Interface string `yaml:"interface"`
	// VirtualRouterID is the VRID, 1..255, unique per interface and family.
	VirtualRouterID int `yaml:"virtual_router_id"`
	// Priority is 1..255, default 100; 255 makes this node the address owner.
	Priority int `yaml:"priority,omitempty"`
	// AdvertInt is the advertisement interval: whole seconds for VRRPv2, a
	// multiple of 10ms for VRRPv3. Default 1s.
	AdvertInt Duration `yaml:"advert_int,omitempty"`
	// Version is 2 or 3; default 2 for IPv4 (keepalived's), 3 for IPv6.
	Version int `yaml:"version,omitempty"`
	// State is the initial state hint, MASTER or BACKUP (the default).
	State        string   `yaml:"state,omitempty"`
	NoPreempt    bool     `yaml:"nopreempt,omitempty"`
	PreemptDelay Duration `yaml:"preempt_delay,omitempty"`
	Accept       bool     `yaml:"accept,omitempty"`
	// VirtualIPAddresses are written as keepalived writes them:
	// "10.0.0.100/24", "10.0.1.100/24 dev eth1 label eth1:vip".
	VirtualIPAddresses []VirtualIP `yaml:"virtual_ipaddresses"`
	// UnicastSrcIP is the source address of the adverts (default: the
	// interface's first address, its link-local one for IPv6).
	UnicastSrcIP HostIP `yaml:"unicast_src_ip,omitempty"`
	// UnicastPeers, when set, replace multicast: adverts go to each peer.
	UnicastPeers   []HostIP  `yaml:"unicast_peers,omitempty"`
	Authentication *VRRPAuth `yaml:"authentication,omitempty"`
	// TrackInterfaces are written "eth1" or "eth1 weight -20".
	TrackInterfaces []TrackInterface `yaml:"track_interfaces,omitempty"`
	TrackScripts    []*TrackScript   `yaml:"track_scripts,omitempty"`
	// TrackServices ties the instance to virtual services' health.
	TrackServices []*TrackService `yaml:"track_services,omitempty"`

	// Notify scripts: notify_master, notify_backup, notify_fault and
	// notify_stop run as written; notify runs with keepalived's four
	// arguments appended: INSTANCE NAME STATE PRIORITY.
	NotifyMaster string `yaml:"notify_master,omitempty"`
	NotifyBackup string `yaml:"notify_backup,omitempty"`
	NotifyFault  string `yaml:"notify_fault,omitempty"`
	NotifyStop   string `yaml:"notify_stop,omitempty"`
	Notify       string `yaml:"notify,omitempty"`
	// VirtualRoutes are installed with the VIPs while the instance is
	// master, and removed with them (routes.go).
	VirtualRoutes []VirtualRoute `yaml:"virtual_routes,omitempty"`
	// VirtualRules follow the VIPs likewise (rules.go).
	VirtualRules []VirtualRule `yaml:"virtual_rules,omitempty"`
	// Alert sends alerts on the instance's state changes (default true;
	// keepalived's smtp_alert).
	Alert *bool `yaml:"alert,omitempty"`

	// Gratuitous ARP / unsolicited NA. Unset means the default; a delay or
	// refresh written as 0s turns that burst off, as in keepalived.
	GARPMasterDelay         *Duration `yaml:"garp_master_delay,omitempty"`
	GARPMasterRepeat        int       `yaml:"garp_master_repeat,omitempty"`
	GARPMasterRefresh       *Duration `yaml:"garp_master_refresh,omitempty"`
	GARPMasterRefreshRepeat int       `yaml:"garp_master_refresh_repeat,omitempty"`
	// GARPInterval and GNAInterval space the gratuitous ARPs (IPv4) and
	// unsolicited NAs (IPv6) of each burst (keepalived's
	// vrrp_garp_interval, vrrp_gna_interval); 0, the default, sends a
	// burst back to back.
	GARPInterval Duration `yaml:"garp_interval,omitempty"`
	GNAInterval  Duration `yaml:"gna_interval,omitempty"`
	// LowerPrioNoAdvert: a master hearing a lower priority master does not
	// answer at once (keepalived lower_prio_no_advert).
	LowerPrioNoAdvert bool `yaml:"lower_prio_no_advert,omitempty"`
	// StrictMode follows RFC 3768 / RFC 5798 to the letter, as keepalived's
	// vrrp_strict (strict_mode): no authentication, no unicast peers, state
	// MASTER for the address owner only, no preempt_delay; a master never
	// answers a lower priority master at once (lower_prio_no_advert); and a
	// master that is not the address owner drops traffic to its VIPs, in
	// govs's nftables table govs_vrrp, except for the virtual services this
	// configuration serves on them (docs/vrrp.md, "vrrp_strict").
	StrictMode bool `yaml:"strict_mode,omitempty"`
	// UseVMAC gives the instance keepalived's virtual MAC interface
	// (use_vmac): a macvlan of Interface, VMACInterface, with the VRRP
	// virtual router MAC 00:00:5e:00:01:VRID (00:00:5e:00:02:VRID for IPv6),
	// created at start and removed at stop. The VIPs go on it while master
	// (unless they name another dev), adverts and gratuitous ARPs leave
	// from it, so the network sees the MAC move, not the VIP's ARP entry.
	UseVMAC bool `yaml:"use_vmac,omitempty"`
	// VMACInterface names it; default keepalived's: vrrp.VRID (the next
	// free of vrrp6.VRID, vrrp1.VRID, ... when taken by another instance).
	VMACInterface string `yaml:"vmac_interface,omitempty"`
	// VMACXmitBase sends and receives the adverts on Interface rather than
	// on the VMAC interface (keepalived's vmac_xmit_base). Every router of
	// the VRID must agree: a macvlan takes the frames carrying its MAC (the
	// peer's adverts from its own VMAC) before the base interface sees them.
	VMACXmitBase bool `yaml:"vmac_xmit_base,omitempty"`
}

// VRRPAuth is VRRPv2 authentication: PASS (the password in clear in every
// advert) or AH (keepalived's IPsec Authentication Header: an HMAC-MD5-96 of
// the advert keyed with the password, and a sequence number against replay).
type VRRPAuth struct {
	Meta `yaml:"-"`

	AuthType string `yaml:"auth_type"`
	AuthPass string `yaml:"auth_pass"`
}

// TrackScript is a check whose result moves the instance (keepalived's
// vrrp_script, written inside the instance): after fall failures it is down,
// after rise successes up again. With weight 0 down means FAULT; a positive
// weight is added to the priority while it is up, a negative one while it is
// down.
type TrackScript struct {
	Meta `yaml:"-"`

	Name     string   `yaml:"name"`
	Script   string   `yaml:"script"`
	Interval Duration `yaml:"interval,omitempty"` // default 1s
	Timeout  Duration `yaml:"timeout,omitempty"`  // default the interval
	Weight   int      `yaml:"weight,omitempty"`
	Rise     int      `yaml:"rise,omitempty"` // default 1
	Fall     int      `yaml:"fall,omitempty"` // default 1
}

// TrackService ties a VRRP instance to a virtual service of this director:
// the service is up while its quorum holds (docs/health.md), so a director
// whose real servers are gone hands its VIPs to the peer. Weight works as
// for tracked interfaces and scripts: 0 puts the instance in FAULT while the
// service is down; a negative weight is added to the priority while it is
// down, a positive one while it is up.
type TrackService struct {
	Meta `yaml:"-"`

	Name   string `yaml:"name"`
	Weight int    `yaml:"weight,omitempty"`
}

// VRRPSyncGroup moves instances together (keepalived's vrrp_sync_group).
type VRRPSyncGroup struct {
	Meta `yaml:"-"`

	Name         string   `yaml:"name"`
	Instances    []string `yaml:"instances"`
	NotifyMaster string   `yaml:"notify_master,omitempty"`
	NotifyBackup string   `yaml:"notify_backup,omitempty"`
	NotifyFault  string   `yaml:"notify_fault,omitempty"`
	NotifyStop   string   `yaml:"notify_stop,omitempty"`
	Notify       string   `yaml:"notify,omitempty"`
	// Alert sends alerts on the group's state changes (default true;
	// keepalived's smtp_alert in vrrp_sync_group).
	Alert *bool `yaml:"alert,omitempty"`
}

// VRRP defaults (keepalived's).
const (
	DefaultVRRPPriority        = 100
	DefaultVRRPAdvertInt       = time.Second
	DefaultTrackScriptInterval = time.Second
)

// HostIP is an IP address without a port.
type HostIP struct{ netip.Addr }

func (a *HostIP) decodeScalar(s string) error {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("invalid IP address %q", s)
	}
	a.Addr = ip.Unmap()
	return nil
}

// IsZero lets omitempty leave an unset address out.
func (a HostIP) IsZero() bool { return !a.IsValid() }

// MarshalYAML writes the address as text.
func (a HostIP) MarshalYAML() (any, error) { return a.String(), nil }

// VirtualIP is a virtual address with its prefix length (/32 or /128 when
// not written), the interface it goes on (default the instance's) and an
// optional IPv4 label.
type VirtualIP struct {
	Prefix netip.Prefix
	Dev    string
	Label  string
}

func (v *VirtualIP) decodeScalar(s string) error {
	f := strings.Fields(s)
	if len(f) == 0 {
		return fmt.Errorf("empty virtual address")
	}
	var out VirtualIP
	if strings.Contains(f[0], "/") {
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return fmt.Errorf("invalid virtual address %q: want ADDRESS[/PREFIX] [dev IFACE] [label LABEL]", f[0])
		}
		if p.Addr().Is4In6() {
			return fmt.Errorf("invalid virtual address %q: write IPv4 addresses as IPv4", f[0])
		}
		out.Prefix = p
	} else {
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			return fmt.Errorf("invalid virtual address %q: want ADDRESS[/PREFIX] [dev IFACE] [label LABEL]", f[0])
		}
		a = a.Unmap()
		out.Prefix = netip.PrefixFrom(a, a.BitLen())
	}
	for i := 1; i < len(f); i += 2 {
		if i+1 >= len(f) {
			return fmt.Errorf("virtual address %q: %q needs a value", s, f[i])
		}
		switch f[i] {
		case "dev":
			out.Dev = f[i+1]
		case "label":
			out.Label = f[i+1]
		default:
			return fmt.Errorf("virtual address %q: unknown option %q (dev, label)", s, f[i])
		}
	}
	*v = out
	return nil
}

// Addr is the virtual address.
func (v VirtualIP) Addr() netip.Addr { return v.Prefix.Addr() }

func (v VirtualIP) String() string {
	s := v.Prefix.String()
	if v.Dev != "" {
		s += " dev " + v.Dev
	}
	if v.Label != "" {
		s += " label " + v.Label
	}
	return s
}

// MarshalYAML writes the address back in keepalived's form.
func (v VirtualIP) MarshalYAML() (any, error) { return v.String(), nil }

// TrackInterface is an interface whose link state moves the instance: with
// weight 0, link down means FAULT; a positive weight is added to the
// priority while it is up, a negative one while it is down.
type TrackInterface struct {
	Name   string
	Weight int
}

func (ti *TrackInterface) decodeScalar(s string) error {
	f := strings.Fields(s)
	switch {
	case len(f) == 1:
		*ti = TrackInterface{Name: f[0]}
	case len(f) == 3 && f[1] == "weight":
		w, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("track interface %q: invalid weight %q", s, f[2])
		}
		*ti = TrackInterface{Name: f[0], Weight: w}
	default:
		return fmt.Errorf("invalid track interface %q: want IFACE or IFACE weight N", s)
	}
	return nil
}

// MarshalYAML writes the interface back in keepalived's form.
func (ti TrackInterface) MarshalYAML() (any, error) {
	if ti.Weight == 0 {
		return ti.Name, nil
	}
	return fmt.Sprintf("%s weight %d", ti.Name, ti.Weight), nil
}

// Is6 reports whether the instance is IPv6 (by its first virtual address).
func (vi *VRRPInstance) Is6() bool {
	return len(vi.VirtualIPAddresses) > 0 && vi.VirtualIPAddresses[0].Addr().Is6()
}

// StartAsMaster reports whether the initial state hint is MASTER. With AH
// authentication it is not, unless the instance is the address owner:
// keepalived clears it ("Initial state master is incompatible with AH
// authentication - clearing"), because a router must hear an advert's
// sequence number before it can number its own above it.
func (vi *VRRPInstance) StartAsMaster() bool {
	return vi.State == "MASTER" && !(vi.AuthAH() && vi.Priority != 255)
}

// AuthAH reports whether the instance authenticates with IPsec AH.
func (vi *VRRPInstance) AuthAH() bool {
	return vi.Authentication != nil && vi.Authentication.AuthType == "AH"
}

// VRRPWarnings are what keepalived reports and runs anyway: an instance
// with AH authentication and state MASTER starts as BACKUP; a strict IPv6
// instance's first VIP should be link-local (RFC 5798 section 5.2.9).
func (c *Config) VRRPWarnings() []Warning {
	var out []Warning
	for _, vi := range c.VRRPInstances {
		if vi == nil {
			continue
		}
		if vi.State == "MASTER" && !vi.StartAsMaster() {
			out = append(out, Warning{vi.At("state"), fmt.Sprintf("vrrp instance %s: initial state MASTER is incompatible with AH "+
				"authentication: it starts as BACKUP, as keepalived does (it must hear the master's sequence number first)", vi.Name)})
		}
		if vi.StrictMode && vi.Is6() && len(vi.UnicastPeers) == 0 && !vi.VirtualIPAddresses[0].Addr().IsLinkLocalUnicast() {
			out = append(out, Warning{vi.At("virtual_ipaddresses"), fmt.Sprintf("vrrp instance %s: strict_mode: the first IPv6 VIP address "+
				"must be link local (RFC 5798; keepalived says so too, and runs)", vi.Name)})
		}
	}
	return out
}

func validIfName(s string) bool {
	return s != "" && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n")
}

// validateVRRP checks vrrp_instances and vrrp_sync_groups and fills in
// their defaults.
func (c *Config) validateVRRP(errs *ErrorList) {
	c.validateTrackServices(errs)
	byName := map[string]*VRRPInstance{}
	type routerKey struct {
		iface string
		v6    bool
		vrid  int
	}
	routers := map[routerKey]*VRRPInstance{}
	vips := map[netip.Addr]*VRRPInstance{}
	for _, vi := range c.VRRPInstances {
		if vi == nil {
			errs.add(c.At("vrrp_instances"), "empty vrrp instance entry")
			continue
		}
		vi.validate(errs)
		if vi.Name != "" {
			if first, dup := byName[vi.Name]; dup {
				errs.add(vi.At("name"), "duplicate vrrp instance name %q (first used at %s)", vi.Name, first.At("name"))
			} else {
				byName[vi.Name] = vi
			}
		}
		if vi.Interface != "" && vi.VirtualRouterID >= 1 && vi.VirtualRouterID <= 255 {
			k := routerKey{vi.Interface, vi.Is6(), vi.VirtualRouterID}
			if first, dup := routers[k]; dup {
				errs.add(vi.At("virtual_router_id"), "virtual_router_id %d is already used on %s by vrrp instance %q (at %s)",
					vi.VirtualRouterID, vi.Interface, first.Name, first.At("virtual_router_id"))
			} else {
				routers[k] = vi
			}
		}
		for _, v := range vi.VirtualIPAddresses {
			if first, dup := vips[v.Addr()]; dup && first != vi {
				errs.add(vi.At("virtual_ipaddresses"), "virtual address %s is also in vrrp instance %q (at %s)",
					v.Addr(), first.Name, first.At("virtual_ipaddresses"))
			} else {
				vips[v.Addr()] = vi
			}
		}
	}
	c.nameVMACs(errs)
	inGroup := map[string]*VRRPSyncGroup{}
	groups := map[string]*VRRPSyncGroup{}
	for _, g := range c.VRRPSyncGroups {
		if g == nil {
			errs.add(c.At("vrrp_sync_groups"), "empty vrrp sync group entry")
			continue
		}
		if g.Name == "" {
			errs.add(g.Pos, "vrrp sync group needs a name")
		} else if first, dup := groups[g.Name]; dup {
			errs.add(g.At("name"), "duplicate vrrp sync group name %q (first used at %s)", g.Name, first.At("name"))
		} else {
			groups[g.Name] = g
		}
		if len(g.Instances) == 0 {
			errs.add(g.At("instances"), "vrrp sync group %q needs instances", g.Name)
		}
		for _, name := range g.Instances {
			switch {
			case byName[name] == nil:
				errs.add(g.At("instances"), "vrrp sync group %q: no vrrp instance named %q", g.Name, name)
			case inGroup[name] == g:
				errs.add(g.At("instances"), "vrrp sync group %q lists instance %q twice", g.Name, name)
			case inGroup[name] != nil:
				errs.add(g.At("instances"), "vrrp instance %q is already in sync group %q (at %s)", name, inGroup[name].Name, inGroup[name].At("instances"))
			default:
				inGroup[name] = g
			}
		}
	}
}

func (vi *VRRPInstance) validate(errs *ErrorList) {
	if vi.Name == "" {
		errs.add(vi.Pos, "vrrp instance needs a name")
	}
	if vi.Interface == "" {
		errs.add(vi.Pos, "vrrp instance %q needs an interface", vi.Name)
	} else if !validIfName(vi.Interface) {
		errs.add(vi.At("interface"), "invalid interface name %q", vi.Interface)
	}
	if vi.VirtualRouterID == 0 && !vi.Has("virtual_router_id") {
		errs.add(vi.Pos, "vrrp instance %q needs a virtual_router_id (1..255)", vi.Name)
	} else if vi.VirtualRouterID < 1 || vi.VirtualRouterID > 255 {
		errs.add(vi.At("virtual_router_id"), "virtual_router_id %d out of range (1..255)", vi.VirtualRouterID)
	}
	if vi.Priority == 0 && !vi.Has("priority") {
		vi.Priority = DefaultVRRPPriority
	} else if vi.Priority < 1 || vi.Priority > 255 {
		errs.add(vi.At("priority"), "priority %d out of range (1..255; 255 is the address owner)", vi.Priority)
	}
	vi.validateAddrs(errs)
	v6 := vi.Is6()
	switch vi.Version {
	case 0:
		vi.Version = 2
		if v6 {
			vi.Version = 3
		}
	case 2:
		if v6 {
			errs.add(vi.At("version"), "VRRP version 2 is IPv4 only: use version 3 for IPv6 virtual addresses")
		}
	case 3:
	default:
		errs.add(vi.At("version"), "invalid VRRP version %d (2 or 3)", vi.Version)
	}
	if vi.AdvertInt == 0 {
		if vi.Has("advert_int") {
			errs.add(vi.At("advert_int"), "advert_int must be positive")
		}
		vi.AdvertInt = Duration(DefaultVRRPAdvertInt)
	}
	iv := vi.AdvertInt.D()
	switch vi.Version {
	case 2:
		if iv%time.Second != 0 || iv > 255*time.Second {
			errs.add(vi.At("advert_int"), "advert_int %v: VRRP version 2 counts whole seconds, 1s..255s (use version 3 for sub-second intervals)", iv)
		}
	case 3:
		if iv%(10*time.Millisecond) != 0 || iv > 4095*10*time.Millisecond {
			errs.add(vi.At("advert_int"), "advert_int %v: VRRP version 3 counts centiseconds, 10ms..40.95s in steps of 10ms", iv)
		}
	}
	switch s := strings.ToUpper(vi.State); s {
	case "", "BACKUP":
		vi.State = "BACKUP"
	case "MASTER":
		vi.State = s
	default:
		errs.add(vi.At("state"), "invalid state %q (MASTER or BACKUP)", vi.State)
	}
	if vi.PreemptDelay.D() > 1000*time.Second {
		errs.add(vi.At("preempt_delay"), "preempt_delay %v out of range (0..1000s)", vi.PreemptDelay.D())
	}
	if vi.NoPreempt && vi.PreemptDelay != 0 {
		errs.add(vi.At("preempt_delay"), "preempt_delay has no effect with nopreempt")
	}
	if a := vi.Authentication; a != nil {
		switch {
		case vi.Version == 3:
			errs.add(vi.At("authentication"), "authentication is VRRP version 2 only (RFC 5798 removed it)")
		case strings.ToUpper(a.AuthType) != "PASS" && strings.ToUpper(a.AuthType) != "AH":
			errs.add(a.At("auth_type"), "invalid auth_type %q (PASS or AH)", a.AuthType)
		case a.AuthPass == "":
			errs.add(a.Pos, "authentication needs auth_pass")
		case len(a.AuthPass) > 8:
			errs.add(a.At("auth_pass"), "auth_pass is longer than 8 bytes (VRRP carries 8)")
		default:
			a.AuthType = strings.ToUpper(a.AuthType)
		}
	}
	if vi.Has("accept") && !vi.Accept {
		// A director serves its virtual services on the VIPs: a master that
		// dropped their traffic (RFC 5798 Accept_Mode false, keepalived's
		// no_accept) would serve nothing.
		errs.add(vi.At("accept"), "accept: false is not supported: govs serves its virtual services on the VIPs, so a master always accepts their traffic")
	}
	seenIf := map[string]bool{}
	for _, ti := range vi.TrackInterfaces {
		if !validIfName(ti.Name) {
			errs.add(vi.At("track_interfaces"), "invalid interface name %q", ti.Name)
		}
		if ti.Weight < -254 || ti.Weight > 254 {
			errs.add(vi.At("track_interfaces"), "track interface %s: weight %d out of range (-254..254)", ti.Name, ti.Weight)
		}
		if seenIf[ti.Name] {
			errs.add(vi.At("track_interfaces"), "interface %s tracked twice", ti.Name)
		}
		seenIf[ti.Name] = true
	}
	seenScript := map[string]*TrackScript{}
	for _, ts := range vi.TrackScripts {
		if ts == nil {
			errs.add(vi.At("track_scripts"), "empty track script entry")
			continue
		}
		ts.validate(errs)
		if first, dup := seenScript[ts.Name]; dup && ts.Name != "" {
			errs.add(ts.At("name"), "duplicate track script name %q (first used at %s)", ts.Name, first.At("name"))
		}
		seenScript[ts.Name] = ts
	}
	for key, s := range map[string]string{"notify_master": vi.NotifyMaster, "notify_backup": vi.NotifyBackup,
		"notify_fault": vi.NotifyFault, "notify_stop": vi.NotifyStop, "notify": vi.Notify} {
		if vi.Has(key) && strings.TrimSpace(s) == "" {
			errs.add(vi.At(key), "%s needs a command", key)
		}
	}
	if vi.StrictMode {
		vi.validateStrict(errs)
	}
	vi.validateVMAC(errs)
	if vi.GARPMasterRepeat < 0 || vi.GARPMasterRepeat > 100 {
		errs.add(vi.At("garp_master_repeat"), "garp_master_repeat %d out of range (1..100)", vi.GARPMasterRepeat)
	}
	if vi.GARPMasterRefreshRepeat < 0 || vi.GARPMasterRefreshRepeat > 100 {
		errs.add(vi.At("garp_master_refresh_repeat"), "garp_master_refresh_repeat %d out of range (1..100)", vi.GARPMasterRefreshRepeat)
	}
	if d := vi.GARPMasterRefresh; d != nil && *d != 0 && d.D() < time.Second {
		errs.add(vi.At("garp_master_refresh"), "garp_master_refresh %v: at least 1s (or 0s for off)", d.D())
	}
}

// validateStrict refuses what keepalived's strict mode does not allow. Where
// keepalived changes the setting and warns, a govs configuration is refused
// instead, so that what runs is what is written (the keepalived importer
// makes keepalived's changes, with its warnings).
func (vi *VRRPInstance) validateStrict(errs *ErrorList) {
	const why = "strict_mode (vrrp_strict)"
	if vi.Authentication != nil {
		errs.add(vi.At("authentication"), "%s does not allow authentication (RFC 3768 removed it; keepalived: \"Strict mode does not support authentication\")", why)
	}
	if len(vi.UnicastPeers) > 0 {
		errs.add(vi.At("unicast_peers"), "%s does not allow unicast_peers (VRRP is multicast; keepalived: \"Unicast peers are not supported in strict mode\")", why)
	}
	if (vi.State == "MASTER") != (vi.Priority == 255) {
		errs.add(vi.At("state"), "%s: state MASTER is for the address owner (priority 255) only, and the owner starts as MASTER: write state: %s (keepalived: \"State MASTER must match being address owner\")",
			why, map[bool]string{true: "MASTER", false: "BACKUP"}[vi.Priority == 255])
	}
	if vi.PreemptDelay != 0 {
		errs.add(vi.At("preempt_delay"), "%s does not allow preempt_delay (keepalived: \"preempt_delay is incompatible with strict mode\")", why)
	}
	if vi.Has("lower_prio_no_advert") && !vi.LowerPrioNoAdvert {
		errs.add(vi.At("lower_prio_no_advert"), "%s requires lower_prio_no_advert (keepalived: \"Strict mode requires no lower priority advert\")", why)
	}
}

// validateVMAC checks use_vmac and its options.
func (vi *VRRPInstance) validateVMAC(errs *ErrorList) {
	if !vi.UseVMAC {
		for _, key := range []string{"vmac_interface", "vmac_xmit_base"} {
			if vi.Has(key) {
				errs.add(vi.At(key), "%s needs use_vmac: true", key)
			}
		}
		return
	}
	if vi.VMACInterface != "" && !validIfName(vi.VMACInterface) {
		errs.add(vi.At("vmac_interface"), "invalid interface name %q", vi.VMACInterface)
	}
	if vi.VMACInterface != "" && vi.VMACInterface == vi.Interface {
		errs.add(vi.At("vmac_interface"), "vmac_interface %s is the instance's interface: name the macvlan govs creates", vi.VMACInterface)
	}
	if len(vi.UnicastPeers) > 0 && !vi.VMACXmitBase {
		errs.add(vi.At("use_vmac"), "use_vmac with unicast_peers needs vmac_xmit_base: true (the adverts go from %s; keepalived sets it)", vi.Interface)
	}
	if vi.StrictMode && vi.VMACXmitBase {
		errs.add(vi.At("vmac_xmit_base"), "strict_mode (vrrp_strict) does not allow vmac_xmit_base (keepalived: \"xmit_base is incompatible with strict mode\")")
	}
}

// nameVMACs gives each use_vmac instance without a vmac_interface
// keepalived's default name, and refuses two instances naming the same one.
func (c *Config) nameVMACs(errs *ErrorList) {
	taken := map[string]*VRRPInstance{}
	for _, vi := range c.VRRPInstances {
		if vi == nil || !vi.UseVMAC || vi.VMACInterface == "" {
			continue
		}
		if first := taken[vi.VMACInterface]; first != nil {
			errs.add(vi.At("vmac_interface"), "vmac_interface %s is also vrrp instance %q's (at %s)", vi.VMACInterface, first.Name, first.At("vmac_interface"))
		}
		taken[vi.VMACInterface] = vi
	}
	for _, vi := range c.VRRPInstances {
		if vi == nil || !vi.UseVMAC || vi.VMACInterface != "" || vi.VirtualRouterID < 1 || vi.VirtualRouterID > 255 {
			continue
		}
		// keepalived's create_vmac_name: vrrp.VRID, then vrrpN.VRID with
		// N = 1, 2, ... (IPv6 tries 6 first).
		seq := []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
		if vi.Is6() {
			seq = []int{6, 1, 2, 3, 4, 5, 7, 8, 9}
		}
		name := fmt.Sprintf("vrrp.%d", vi.VirtualRouterID)
		for i := 0; taken[name] != nil && i < len(seq); i++ {
			name = fmt.Sprintf("vrrp%d.%d", seq[i], vi.VirtualRouterID)
		}
		vi.VMACInterface = name
		taken[name] = vi
	}
}

// VMACAddr is the VRRP virtual router MAC of the instance (RFC 5798
// section 7.3): 00:00:5e:00:01:VRID, or 00:00:5e:00:02:VRID for IPv6.
func (vi *VRRPInstance) VMACAddr() [6]byte {
	fam := byte(1)
	if vi.Is6() {
		fam = 2
	}
	return [6]byte{0, 0, 0x5e, 0, fam, byte(vi.VirtualRouterID)}
}

// validateAddrs checks the virtual and unicast addresses.
func (vi *VRRPInstance) validateAddrs(errs *ErrorList) {
	if len(vi.VirtualIPAddresses) == 0 {
		errs.add(vi.At("virtual_ipaddresses"), "vrrp instance %q needs virtual_ipaddresses", vi.Name)
		return
	}
	if len(vi.VirtualIPAddresses) > 255 {
		errs.add(vi.At("virtual_ipaddresses"), "%d virtual addresses: at most 255 fit in an advertisement", len(vi.VirtualIPAddresses))
	}
	v6 := vi.Is6()
	seen := map[netip.Addr]bool{}
	for _, v := range vi.VirtualIPAddresses {
		a := v.Addr()
		switch {
		case a.Is6() != v6:
			errs.add(vi.At("virtual_ipaddresses"), "virtual address %s: an instance's addresses are all IPv4 or all IPv6 (make one instance per family)", a)
		case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
			errs.add(vi.At("virtual_ipaddresses"), "virtual address %s is not a host address", a)
		case seen[a]:
			errs.add(vi.At("virtual_ipaddresses"), "virtual address %s listed twice", a)
		}
		seen[a] = true
		if v.Dev != "" && !validIfName(v.Dev) {
			errs.add(vi.At("virtual_ipaddresses"), "virtual address %s: invalid interface name %q", a, v.Dev)
		}
		if v.Label != "" {
			dev := v.Dev
			if dev == "" {
				dev = vi.Interface
			}
			switch {
			case a.Is6():
				errs.add(vi.At("virtual_ipaddresses"), "virtual address %s: labels are IPv4 only", a)
			case len(v.Label) > 15 || (v.Label != dev && !strings.HasPrefix(v.Label, dev+":")):
				errs.add(vi.At("virtual_ipaddresses"), "virtual address %s: label %q must be %s or start with %s: (at most 15 characters)", a, v.Label, dev, dev)
			}
		}
	}
	if src := vi.UnicastSrcIP; src.IsValid() {
		if src.Is6() != v6 {
			errs.add(vi.At("unicast_src_ip"), "unicast_src_ip %s is not of the virtual addresses' family", src)
		} else if seen[src.Addr] {
			errs.add(vi.At("unicast_src_ip"), "unicast_src_ip %s is a virtual address", src)
		}
	}
	peers := map[netip.Addr]bool{}
	for _, p := range vi.UnicastPeers {
		switch {
		case p.Is6() != v6:
			errs.add(vi.At("unicast_peers"), "unicast peer %s is not of the virtual addresses' family", p)
		case p.IsUnspecified() || p.IsMulticast():
			errs.add(vi.At("unicast_peers"), "unicast peer %s is not a host address", p)
		case peers[p.Addr]:
			errs.add(vi.At("unicast_peers"), "unicast peer %s listed twice", p)
		case p.Addr == vi.UnicastSrcIP.Addr:
			errs.add(vi.At("unicast_peers"), "unicast peer %s is our own unicast_src_ip", p)
		}
		peers[p.Addr] = true
	}
}

func (ts *TrackScript) validate(errs *ErrorList) {
	if ts.Name == "" {
		errs.add(ts.Pos, "track script needs a name")
	}
	if strings.TrimSpace(ts.Script) == "" {
		errs.add(ts.Pos, "track script %q needs a script (the command to run)", ts.Name)
	}
	if ts.Interval == 0 {
		ts.Interval = Duration(DefaultTrackScriptInterval)
	} else if ts.Interval.D() < 10*time.Millisecond {
		errs.add(ts.At("interval"), "interval %v is too short (at least 10ms)", ts.Interval.D())
	}
	if ts.Timeout == 0 {
		ts.Timeout = ts.Interval
	}
	if ts.Weight < -254 || ts.Weight > 254 {
		errs.add(ts.At("weight"), "weight %d out of range (-254..254)", ts.Weight)
	}
	for key, p := range map[string]*int{"rise": &ts.Rise, "fall": &ts.Fall} {
		if *p == 0 && !ts.Has(key) {
			*p = 1
		} else if *p < 1 || *p > 1000 {
			errs.add(ts.At(key), "%s %d out of range (1..1000)", key, *p)
		}
	}
}

// validateTrackServices checks that tracked services exist. Virtual servers
// are validated after VRRP, so their default names are computed here.
func (c *Config) validateTrackServices(errs *ErrorList) {
	services := map[string]bool{}
	for _, vs := range c.VirtualServers {
		if vs == nil {
			continue
		}
		name := vs.Name
		if name == "" && vs.FWMark != 0 {
			name = vs.Display()
		} else if name == "" {
			proto := vs.Protocol
			if proto == "" {
				proto = TCP
			}
			name = string(proto) + "/" + vs.Address.String()
		}
		services[name] = true
	}
	for _, vi := range c.VRRPInstances {
		if vi == nil {
			continue
		}
		seen := map[string]bool{}
		for _, ts := range vi.TrackServices {
			switch {
			case ts == nil:
				errs.add(vi.At("track_services"), "empty track service entry")
				continue
			case ts.Name == "":
				errs.add(ts.Pos, "track service needs the name of a virtual server")
			case !services[ts.Name]:
				errs.add(ts.At("name"), "track service %q is not a virtual server of this configuration", ts.Name)
			case seen[ts.Name]:
				errs.add(ts.At("name"), "virtual server %q tracked twice", ts.Name)
			}
			seen[ts.Name] = true
			if ts.Weight < -254 || ts.Weight > 254 {
				errs.add(ts.At("weight"), "track service %s: weight %d out of range (-254..254)", ts.Name, ts.Weight)
			}
		}
	}
}
