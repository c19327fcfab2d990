package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// BGP configures the embedded BGP speaker that announces the VIPs of the
// virtual services to routers (docs/bgp.md). Every virtual service's VIP is
// announced while the service is healthy unless it says announce: false.
type BGP struct {
	Meta `yaml:"-"`

	// ASN is the director's own AS number (1..4294967295).
	ASN int64 `yaml:"asn"`
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID HostIP `yaml:"router_id"`
	// ListenPort is where the speaker accepts sessions; 0 means 179 when a
	// peer is passive, else no listener (the speaker connects out).
	ListenPort int        `yaml:"listen_port,omitempty"`
	Peers      []*BGPPeer `yaml:"peers"`
	// AnnounceDelay is how long a VIP must stay healthy before it is
	// announced, at start and after a withdraw. Default 2s.
	AnnounceDelay *Duration `yaml:"announce_delay,omitempty"`
	// Damping holds back the VIP of a service that keeps flapping.
	Damping *BGPDamping `yaml:"damping,omitempty"`
}

// BGPPeer is one router the speaker talks to.
type BGPPeer struct {
	Meta `yaml:"-"`

	Address HostIP `yaml:"address"`
	ASN     int64  `yaml:"asn"`
	// Port is the peer's TCP port, default 179.
	Port int `yaml:"port,omitempty"`
	// PasswordFile holds the TCP MD5 password (RFC 2385) on its first line.
	PasswordFile string `yaml:"password_file,omitempty"`
	// HoldTime and Keepalive are whole seconds; defaults 90s and a third
	// of the hold time. The session uses the smaller of both sides' hold
	// time.
	HoldTime  Duration `yaml:"hold_time,omitempty"`
	Keepalive Duration `yaml:"keepalive,omitempty"`
	// Passive waits for the peer to connect.
	Passive bool `yaml:"passive,omitempty"`
	// LocalAddress is the source address of the session.
	LocalAddress HostIP `yaml:"local_address,omitempty"`
	// BFD runs a BFD session (RFC 5880/5881, single hop) with the peer: a
	// dead link or director is noticed in BFDInterval × 3 instead of the
	// hold time. BFDInterval defaults to 300ms.
	BFD         bool     `yaml:"bfd,omitempty"`
	BFDInterval Duration `yaml:"bfd_interval,omitempty"`
}

// BGPDamping is the flap damping of a VIP's route (docs/bgp.md): each
// withdraw caused by health adds one to a penalty that halves every
// HalfLife; at Suppress or more the VIP is held back, even when healthy,
// until the penalty decays below Reuse.
type BGPDamping struct {
	Meta `yaml:"-"`

	HalfLife Duration `yaml:"half_life,omitempty"` // default 30s
	Suppress int      `yaml:"suppress,omitempty"`  // default 3
	Reuse    int      `yaml:"reuse,omitempty"`     // default 1
}

// ServiceBGP are the attributes a virtual service's VIP is announced with,
// so an operator can prefer one director (active-standby over BGP).
type ServiceBGP struct {
	Meta `yaml:"-"`

	// Communities are "ASN:VALUE" (each 0..65535) or no-export,
	// no-advertise, no-export-subconfed, blackhole.
	Communities []string `yaml:"communities,omitempty"`
	// MED is the multi-exit discriminator; lower is preferred.
	MED *int64 `yaml:"med,omitempty"`
	// ASPathPrepend repeats the director's ASN this many more times (0..8):
	// a longer path makes this director the backup.
	ASPathPrepend int `yaml:"as_path_prepend,omitempty"`
}

// BGP defaults.
const (
	DefaultBGPHoldTime      = 90 * time.Second
	DefaultBGPAnnounceDelay = 2 * time.Second
	DefaultBGPHalfLife      = 30 * time.Second
	DefaultBGPSuppress      = 3
	DefaultBGPReuse         = 1
	DefaultBFDInterval      = 300 * time.Millisecond
)

// wellKnownCommunities are RFC 1997's and RFC 7999's names.
var wellKnownCommunities = map[string]uint32{
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"blackhole":           0xFFFF029A,
}

// ParseCommunity reads "ASN:VALUE" or a well-known community name.
func ParseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid community %q (ASN:VALUE with each 0-65535, or no-export, no-advertise, no-export-subconfed, blackhole)", s)
	}
	return uint32(a)<<16 | uint32(b), nil
}

// Announced reports whether the service's VIP is announced over BGP: BGP is
// configured and the service did not opt out.
func (c *Config) Announced(vs *VirtualServer) bool {
	return c.BGP != nil && (vs.Announce == nil || *vs.Announce) && !vs.Address.IsZero()
}

func wholeSeconds(d Duration) bool { return d.D()%time.Second == 0 }

func (c *Config) validateBGP(errs *ErrorList) {
	b := c.BGP
	if b == nil {
		for _, vs := range c.VirtualServers {
			if vs != nil && vs.BGP != nil {
				errs.add(vs.At("bgp"), "bgp attributes on a virtual service need the top-level bgp section")
			}
		}
		return
	}
	if b.ASN < 1 || b.ASN > 1<<32-1 {
		errs.add(b.At("asn"), "asn must be 1-4294967295")
	}
	if !b.RouterID.IsValid() || !b.RouterID.Is4() {
		errs.add(b.At("router_id"), "router_id must be an IPv4 address")
	}
	if b.ListenPort < 0 || b.ListenPort > 65535 {
		errs.add(b.At("listen_port"), "listen_port must be 1-65535")
	}
	if b.AnnounceDelay == nil {
		d := Duration(DefaultBGPAnnounceDelay)
		b.AnnounceDelay = &d
	}
	if b.Damping == nil {
		b.Damping = &BGPDamping{}
	}
	dm := b.Damping
	if dm.HalfLife == 0 {
		dm.HalfLife = Duration(DefaultBGPHalfLife)
	}
	if dm.Suppress == 0 {
		dm.Suppress = DefaultBGPSuppress
	}
	if dm.Reuse == 0 {
		dm.Reuse = DefaultBGPReuse
	}
	if dm.Suppress < 1 || dm.Suppress > 100 {
		errs.add(dm.At("suppress"), "suppress must be 1-100 flaps")
	}
	if dm.Reuse < 1 || dm.Reuse >= dm.Suppress && dm.Suppress >= 1 {
		errs.add(dm.At("reuse"), "reuse must be at least 1 and below suppress (%d)", dm.Suppress)
	}
	if len(b.Peers) == 0 {
		errs.add(b.At("peers"), "bgp needs at least one peer")
	}
	seen := map[netip.Addr]*BGPPeer{}
	for _, p := range b.Peers {
		if p == nil {
			errs.add(b.At("peers"), "empty peer entry")
			continue
		}
		p.validate(errs)
		if first, dup := seen[p.Address.Addr]; dup && p.Address.IsValid() {
			errs.add(p.At("address"), "duplicate peer %s (first at %s)", p.Address, first.At("address"))
		}
		seen[p.Address.Addr] = p
	}
	// Services sharing a VIP share its route: their attributes must agree.
	byVIP := map[netip.Addr]*VirtualServer{}
	for _, vs := range c.VirtualServers {
		if vs == nil || !c.Announced(vs) {
			continue
		}
		if a := vs.BGP; a != nil {
			for _, s := range a.Communities {
				if _, err := ParseCommunity(s); err != nil {
					errs.add(a.At("communities"), "%v", err)
				}
			}
			if a.MED != nil && (*a.MED < 0 || *a.MED > 1<<32-1) {
				errs.add(a.At("med"), "med must be 0-4294967295")
			}
			if a.ASPathPrepend < 0 || a.ASPathPrepend > 8 {
				errs.add(a.At("as_path_prepend"), "as_path_prepend must be 0-8")
			}
		}
		vip := vs.Address.Addr
		if first, ok := byVIP[vip]; ok {
			if !sameServiceBGP(first.BGP, vs.BGP) {
				errs.add(vs.At("bgp"), "virtual servers on VIP %s announce one route: their bgp attributes must match (see %s)", vip, first.At("address"))
			}
			continue
		}
		byVIP[vip] = vs
	}
}

func (p *BGPPeer) validate(errs *ErrorList) {
	if !p.Address.IsValid() {
		errs.add(p.At("address"), "peer needs an address")
	}
	if p.ASN < 1 || p.ASN > 1<<32-1 {
		errs.add(p.At("asn"), "peer asn must be 1-4294967295")
	}
	if p.Port < 0 || p.Port > 65535 {
		errs.add(p.At("port"), "port must be 1-65535")
	}
	if p.HoldTime == 0 {
		p.HoldTime = Duration(DefaultBGPHoldTime)
	}
	if !wholeSeconds(p.HoldTime) || p.HoldTime.D() < 3*time.Second || p.HoldTime.D() > 65535*time.Second {
		errs.add(p.At("hold_time"), "hold_time must be whole seconds, 3s-65535s")
	}
	if p.Keepalive == 0 {
		p.Keepalive = Duration(max(p.HoldTime.D()/3/time.Second, 1) * time.Second)
	}
	if !wholeSeconds(p.Keepalive) || p.Keepalive >= p.HoldTime {
		errs.add(p.At("keepalive"), "keepalive must be whole seconds, below hold_time (%s)", p.HoldTime.D())
	}
	if p.LocalAddress.IsValid() && p.Address.IsValid() && p.LocalAddress.Is4() != p.Address.Is4() {
		errs.add(p.At("local_address"), "local_address %s and address %s are of different families", p.LocalAddress, p.Address)
	}
	if p.BFDInterval == 0 {
		p.BFDInterval = Duration(DefaultBFDInterval)
	}
	if p.BFDInterval.D() < 10*time.Millisecond || p.BFDInterval.D() > 60*time.Second {
		errs.add(p.At("bfd_interval"), "bfd_interval must be 10ms-60s")
	}
	// The password file is read when the speaker starts (it holds a
	// secret, so the configuration keeps only its path).
	if p.PasswordFile != "" && !strings.HasPrefix(p.PasswordFile, "/") {
		errs.add(p.At("password_file"), "password_file must be an absolute path")
	}
}

func sameServiceBGP(a, b *ServiceBGP) bool {
	if a == nil {
		a = &ServiceBGP{}
	}
	if b == nil {
		b = &ServiceBGP{}
	}
	if a.ASPathPrepend != b.ASPathPrepend || (a.MED == nil) != (b.MED == nil) || a.MED != nil && *a.MED != *b.MED {
		return false
	}
	if len(a.Communities) != len(b.Communities) {
		return false
	}
	for i := range a.Communities {
		if a.Communities[i] != b.Communities[i] {
			return false
		}
	}
	return true
}

// BGPWarnings names the announced services whose established flows do not
// survive the router moving them to another director (docs/bgp.md, "Several
// directors: which combinations keep flows"). They are warnings, not
// errors: one director alone, or an active-standby pair over BGP (the others
// prepend or have a higher MED), is fine with any of them, and one file
// cannot tell which the others do.
//
// What keeps flows: dr with mh (every director picks the same real server
// from the same Maglev table, and the replies bypass the directors), and
// fullnat with connection sync (the flow's NAT state is on every director).
// The rest breaks the moved flows, and nat breaks flows even without a move.
func (c *Config) BGPWarnings() []Warning {
	if c.BGP == nil {
		return nil
	}
	var out []Warning
	for _, vs := range c.VirtualServers {
		if vs == nil || !c.Announced(vs) {
			continue
		}
		if w, ok := c.bgpFlowWarning(vs); ok {
			out = append(out, w)
		}
	}
	return out
}

// bgpFlowWarning is vs's warning, if its flows break when the router moves
// them between directors.
func (c *Config) bgpFlowWarning(vs *VirtualServer) (Warning, bool) {
	moved := "a connection the router moves to another director (one joins, leaves or fails)"
	switch vs.Forwarding {
	case NAT:
		return Warning{vs.At("forwarding"), fmt.Sprintf("virtual server %s: nat forwarding with bgp: the real servers' replies "+
			"return through their gateway, so with several directors announcing %s (ECMP) the flows the router sends to "+
			"another director break even when no director changes; use dr with scheduler mh, or fullnat with sync, or announce it "+
			"from one director at a time (as_path_prepend or med on the others)", vs.Name, vs.Address.Addr)}, true
	case Proxy:
		return Warning{vs.At("address"), fmt.Sprintf("virtual server %s: proxy forwarding keeps its connections in this "+
			"director's process: %s is reset; use dr with scheduler mh, or fullnat with sync, for several active directors", vs.Name, moved)}, true
	case FullNAT:
		if c.Sync == nil || !c.Sync.Syncs(FullNAT) {
			return Warning{vs.At("forwarding"), fmt.Sprintf("virtual server %s: fullnat forwarding without connection sync keeps "+
				"its connections' state on this director: %s is reset; add a sync section (docs/sync.md)", vs.Name, moved)}, true
		}
		// With sync, a moved flow keeps its NAT mapping, so the real server
		// still answers the first director's local address: the flow lives
		// while that address does, and past that director's death only if
		// the address moves to a survivor (a VRRP virtual address).
		if !c.localAddressesMove(vs) {
			return Warning{vs.At("forwarding"), fmt.Sprintf("virtual server %s: fullnat with sync and bgp: a flow keeps the "+
				"local address of the director that first translated it, and the real server answers that address; when that "+
				"director fails its flows break unless its local_addresses are VRRP virtual addresses that move to another director", vs.Name)}, true
		}
	case DR:
		if vs.Scheduler != "mh" {
			return Warning{vs.At("scheduler"), fmt.Sprintf("virtual server %s: dr with scheduler %s: %s is scheduled afresh "+
				"there, by that director's own state, and most such flows reach another real server and are reset; scheduler mh "+
				"gives every director the same choice", vs.Name, vs.Scheduler, moved)}, true
		}
		for _, rs := range vs.RealServers {
			if rs != nil && (rs.MaxConnections > 0 || rs.UpperThreshold > 0) {
				return Warning{rs.At("address"), fmt.Sprintf("virtual server %s: real server %s: connection limits depend on "+
					"this director's own counts, so directors may pick different real servers for one flow and %s may be reset",
					vs.Name, rs.Address, moved)}, true
			}
		}
	}
	return Warning{}, false
}

// localAddressesMove reports whether every fullnat local address of vs is a
// virtual address of one of this file's VRRP instances (so it moves to a
// surviving director); false without local_addresses (masquerade: the
// director's own address).
func (c *Config) localAddressesMove(vs *VirtualServer) bool {
	if len(vs.LocalAddresses) == 0 {
		return false
	}
	vips := map[netip.Addr]bool{}
	for _, vi := range c.VRRPInstances {
		if vi == nil {
			continue
		}
		for _, v := range vi.VirtualIPAddresses {
			vips[v.Addr().Unmap()] = true
		}
	}
	for _, s := range vs.LocalAddresses {
		r, err := ParseAddrRange(s)
		if err != nil {
			return false
		}
		n := 0
		for a := r.First; a.IsValid() && !r.Last.Less(a); a = a.Next() {
			if !vips[a] {
				return false
			}
			if n++; n > 256 {
				return false // a range too large to be VRRP addresses
			}
		}
	}
	return true
}
