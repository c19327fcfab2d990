package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/govs-lb/govs/internal/persist"
	"github.com/govs-lb/govs/internal/sched"
)

// Load reads, decodes and validates a govs YAML file. On any problem it
// returns an ErrorList with every error found, each naming FILE:LINE:COL.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, src)
}

// Parse decodes and validates src as the YAML file named file.
func Parse(file string, src []byte) (*Config, error) {
	c := &Config{File: file}
	// A YAML syntax error leaves c empty, and an empty model validates.
	errs := parseYAML(file, src, c)
	if err := c.Validate(); err != nil {
		var verrs ErrorList
		if !errors.As(err, &verrs) {
			return nil, err
		}
		errs = mergeErrors(errs, verrs)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return c, nil
}

// mergeErrors adds validation errors to decoding errors, so that `govs
// check` reports unknown keys and bad values of a file at once. A value
// that could not be decoded is left empty, and validating it would only
// repeat the problem ("address required" after "invalid address"): the
// validation errors of a line that already has a decoding error are left
// out.
func mergeErrors(decode, validate ErrorList) ErrorList {
	bad := map[Pos]bool{}
	for _, e := range decode {
		bad[Pos{File: e.Pos.File, Line: e.Pos.Line}] = true
	}
	for _, e := range validate {
		if !bad[Pos{File: e.Pos.File, Line: e.Pos.Line}] {
			decode = append(decode, e)
		}
	}
	return decode
}

// Validate fills in defaults and checks the whole model, returning an
// ErrorList. It is also run on models built by the keepalived importer.
func (c *Config) Validate() error {
	var errs ErrorList
	if c.GracePeriod == 0 {
		c.GracePeriod = Duration(DefaultGracePeriod)
	}
	c.validateVRRP(&errs) // vrrp.go
	if c.API != nil {
		c.API.validate(&errs)
	}
	if c.Sync != nil {
		c.Sync.validate(&errs)
	}
	if c.Alerts != nil {
		c.Alerts.validate(&errs) // alerts.go
	}
	c.validateStatic(&errs) // routes.go
	if l := c.Logging; l != nil {
		switch l.Level {
		case "", "debug", "info", "warn", "error":
		default:
			errs.add(l.At("level"), "invalid logging level %q (debug, info, warn or error)", l.Level)
		}
		switch l.Format {
		case "", "text", "json":
		default:
			errs.add(l.At("format"), "invalid logging format %q (text or json)", l.Format)
		}
	}
	byAddr := map[string]*VirtualServer{}
	byName := map[string]*VirtualServer{}
	for _, vs := range c.VirtualServers {
		if vs == nil {
			errs.add(c.At("virtual_servers"), "empty virtual server entry")
			continue
		}
		vs.validate(&errs)
		vs.validateDiscovery(c.GracePeriod, &errs) // discovery.go
		if vs.Address.IsZero() && vs.FWMark == 0 {
			continue
		}
		key, where := vs.Key(), "address"
		if vs.FWMark != 0 {
			where = "fwmark"
		}
		if first, dup := byAddr[key]; dup {
			errs.add(vs.At(where), "duplicate virtual server %s (first defined at %s)", key, first.At(where))
			continue
		}
		byAddr[key] = vs
		if first, dup := byName[vs.Name]; dup {
			errs.add(vs.At("name"), "duplicate virtual server name %q (first used at %s)", vs.Name, first.At("name"))
		} else {
			byName[vs.Name] = vs
		}
	}
	c.validateAddresses(&errs) // addrs.go
	c.validateScripts(&errs)   // script.go
	c.validateBGP(&errs)       // bgp.go
	return errs.err()
}

func (a *API) validate(errs *ErrorList) {
	if a.HTTP != "" {
		host, port, err := net.SplitHostPort(a.HTTP)
		if err != nil {
			errs.add(a.At("http"), "invalid api http address %q: want HOST:PORT, for example 127.0.0.1:9180", a.HTTP)
		} else if _, perr := ParsePort(port); perr != nil {
			errs.add(a.At("http"), "invalid port %q in api http address %q (1-65535, decimal digits, no leading zero)", port, a.HTTP)
		} else if _, aerr := netip.ParseAddr(host); host != "" && aerr != nil {
			errs.add(a.At("http"), "invalid api http address %q: %v; write an IP address", a.HTTP, errHostName)
		}
		if a.TokenFile == "" && a.ReadTokenFile == "" {
			errs.add(a.At("http"), "api http listener needs token_file (or read_token_file alone for a read-only listener): TCP clients must present a bearer token")
		}
	}
	if a.ReadTokenFile != "" && a.ReadTokenFile == a.TokenFile {
		errs.add(a.At("read_token_file"), "read_token_file is token_file: the read-only token must differ from the admin one")
	} else if a.ReadTokenFile != "" && a.HTTP == "" {
		errs.add(a.At("read_token_file"), "read_token_file applies to the api http listener, which is not configured")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		errs.add(a.Pos, "api needs both tls_cert and tls_key, or neither")
	} else if a.TLSCert != "" && a.HTTP == "" {
		errs.add(a.At("tls_cert"), "tls_cert applies to the api http listener, which is not configured")
	}
}

// Key identifies a virtual service: protocol and VIP:port, e.g.
// "tcp/10.0.0.1:80", or a firewall mark, "fwm/1" ("fwm6/1" for IPv6).
func (vs *VirtualServer) Key() string {
	if vs.FWMark != 0 {
		return FWMarkKey(vs.FWMark, vs.IsIPv6())
	}
	return string(vs.Protocol) + "/" + vs.Address.String()
}

func (vs *VirtualServer) validate(errs *ErrorList) {
	if vs.Protocol == "" {
		vs.Protocol = TCP
	}
	if vs.isFWMark() {
		// Checked at the end (fwmark.go), once the defaults are in.
	} else if vs.Address.IsZero() {
		errs.add(vs.Pos, "virtual server needs an address (VIP:PORT), or a fwmark")
	} else if !vs.Address.HasPort || vs.Address.Port == 0 {
		errs.add(vs.At("address"), "virtual server address %s needs a port", vs.Address)
	} else if vs.Protocol == UDP && vs.Address.Addr.IsUnspecified() {
		// Replies must leave from the VIP the client sent to; a wildcard
		// socket cannot promise that.
		errs.add(vs.At("address"), "a udp virtual server needs a specific address, not %s", vs.Address.Addr)
	}
	if vs.Name == "" && !vs.Address.IsZero() {
		vs.Name = vs.Key()
	} else if vs.Name == "" && vs.FWMark != 0 {
		vs.Name = vs.Display()
	}
	if vs.Scheduler == "" {
		vs.Scheduler = DefaultScheduler
	}
	vs.Scheduler = strings.ToLower(vs.Scheduler)
	if !sched.Known(vs.Scheduler) {
		errs.add(vs.At("scheduler"), "unknown scheduler %q (known: %s)", vs.Scheduler, strings.Join(sched.Names(), " "))
	} else if _, err := sched.New(vs.Scheduler, vs.SchedOptions()); err != nil {
		errs.add(vs.At("scheduler"), "%v", err)
	}
	for _, f := range vs.SchedulerFlags {
		prefix, opt, _ := strings.Cut(f, "-")
		if prefix != vs.Scheduler || (opt != "fallback" && opt != "port") {
			errs.add(vs.At("scheduler_flags"), "scheduler flag %q does not apply to scheduler %s (sh takes sh-fallback, sh-port; mh takes mh-fallback, mh-port)", f, vs.Scheduler)
		}
	}
	if vs.Forwarding == "" {
		vs.Forwarding = Proxy
	}
	vs.validateKernel(errs)
	if vs.OnePacket && vs.Protocol != UDP {
		errs.add(vs.At("ops"), "ops (one-packet scheduling) applies to udp virtual servers only")
	}
	if vs.PersistenceNetmask != "" {
		if _, err := persist.ParseNetmask(vs.PersistenceNetmask); err != nil {
			errs.add(vs.At("persistence_netmask"), "%v", err)
		} else if vs.PersistenceTimeout == 0 {
			errs.add(vs.At("persistence_netmask"), "persistence_netmask needs persistence_timeout")
		}
	}
	if vs.ExpireQuiescentTemplate && vs.PersistenceTimeout == 0 {
		errs.add(vs.At("expire_quiescent_template"), "expire_quiescent_template needs persistence_timeout")
	}
	vs.validateLifecycle(errs) // health.go
	vs.validateForecast(errs)  // forecast.go
	if vs.ConnectTimeout == 0 {
		vs.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
	if vs.IdleTimeout == 0 {
		vs.IdleTimeout = Duration(DefaultTCPIdleTimeout)
		if vs.Protocol == UDP {
			vs.IdleTimeout = Duration(DefaultUDPIdleTimeout)
		}
	}
	if vs.Retries == nil {
		r := DefaultRetries
		vs.Retries = &r
	} else if *vs.Retries < 0 || *vs.Retries > 32 {
		errs.add(vs.At("retries"), "retries %d out of range (0..32)", *vs.Retries)
	}
	if vs.SendProxy != ProxyNone && vs.Protocol != TCP {
		errs.add(vs.At("send_proxy"), "send_proxy applies to tcp virtual servers only")
	}
	if vs.MaxFlows < 0 {
		errs.add(vs.At("max_flows"), "max_flows must not be negative")
	} else if vs.MaxFlows != 0 && vs.Protocol != UDP {
		errs.add(vs.At("max_flows"), "max_flows applies to udp virtual servers only (tcp uses max_connections per real server)")
	} else if vs.MaxFlows == 0 && vs.Protocol == UDP {
		// Only udp gets the default, so that validating again (runtime
		// changes validate a copy of the running model) finds no tcp max_flows.
		vs.MaxFlows = DefaultMaxFlows
	}
	vs.validateClientLimits(errs)

	seen := map[string]*RealServer{}
	names := map[string]*RealServer{}
	for _, rs := range vs.RealServers {
		if rs == nil {
			errs.add(vs.At("real_servers"), "empty real server entry")
			continue
		}
		rs.validate(vs, errs)
		if rs.Name != "" {
			if first, dup := names[rs.Name]; dup {
				errs.add(rs.At("name"), "duplicate real server name %q (first used at %s)", rs.Name, first.At("name"))
			} else {
				names[rs.Name] = rs
			}
		}
		if rs.Address.IsZero() {
			continue
		}
		key := rs.Address.String()
		if first, dup := seen[key]; dup {
			errs.add(rs.At("address"), "duplicate real server %s (first defined at %s)", key, first.At("address"))
		} else {
			seen[key] = rs
		}
	}
	if vs.isFWMark() {
		vs.validateFWMark(errs) // fwmark.go
	}
}

func (rs *RealServer) validate(vs *VirtualServer, errs *ErrorList) {
	for _, k := range []string{"origin", "source_name", "node"} {
		if rs.Has(k) {
			errs.add(rs.At(k), "%s is set by discovery for the real servers it finds; a written real server has none", k)
		}
	}
	if rs.Address.IsZero() {
		errs.add(rs.Pos, "real server needs an address (IP:PORT)")
	} else if !rs.Address.HasPort && vs.FWMark == 0 {
		// As ipvsadm: no port means the virtual service's port; a
		// firewall-mark service's real server without one takes each
		// packet's own destination port (port 0 in IPVS).
		rs.Address.Port, rs.Address.HasPort = vs.Address.Port, true
	}
	if rs.Address.HasPort && rs.Address.Port == 0 && vs.FWMark == 0 {
		errs.add(rs.At("address"), "real server %s needs a port", rs.Address)
	}
	if !rs.Address.IsZero() && rs.Address.Addr.IsUnspecified() {
		errs.add(rs.At("address"), "real server address %s is not a host address", rs.Address.Addr)
	}
	if rs.Weight == nil {
		w := 1
		rs.Weight = &w
	} else if *rs.Weight < 0 || *rs.Weight > 65535 {
		errs.add(rs.At("weight"), "weight %d out of range (0..65535)", *rs.Weight)
	}
	for key, v := range map[string]int{"max_connections": rs.MaxConnections, "upper_threshold": rs.UpperThreshold, "lower_threshold": rs.LowerThreshold} {
		if v < 0 {
			errs.add(rs.At(key), "%s must not be negative", key)
		}
	}
	if rs.LowerThreshold > 0 && rs.UpperThreshold > 0 && rs.LowerThreshold >= rs.UpperThreshold {
		errs.add(rs.At("lower_threshold"), "lower_threshold %d must be below upper_threshold %d", rs.LowerThreshold, rs.UpperThreshold)
	}
	if rs.SendProxy == ProxyNone {
		rs.SendProxy = vs.SendProxy
	} else if vs.Protocol != TCP {
		errs.add(rs.At("send_proxy"), "send_proxy applies to tcp virtual servers only")
	}
	rs.validateHealth(vs, errs) // health.go
}

// SchedOptions returns the scheduler options set by scheduler_flags.
func (vs *VirtualServer) SchedOptions() sched.Options {
	var o sched.Options
	for _, f := range vs.SchedulerFlags {
		switch {
		case strings.HasSuffix(f, "-fallback"):
			o.Fallback = true
		case strings.HasSuffix(f, "-port"):
			o.Port = true
		}
	}
	return o
}

// validateKernel checks the settings of kernel forwarding (nat, fullnat).
func (vs *VirtualServer) validateKernel(errs *ErrorList) {
	if vs.Forwarding == Proxy {
		if len(vs.LocalAddresses) > 0 {
			errs.add(vs.At("local_addresses"), "local_addresses applies to fullnat forwarding only")
		}
		if vs.ExpireNodestConn {
			errs.add(vs.At("expire_nodest_conn"), "expire_nodest_conn applies to nat and fullnat forwarding only")
		}
		return
	}
	if !vs.Address.IsZero() && vs.Address.Addr.IsUnspecified() {
		errs.add(vs.At("address"), "forwarding %s needs a specific VIP, not %s", vs.Forwarding, vs.Address.Addr)
	}
	if !vs.Address.IsZero() && vs.Address.Addr.IsLoopback() {
		// No other host can send to it, and kernel forwarding does not
		// serve clients on the director: it would serve no one.
		errs.add(vs.At("forwarding"), "forwarding %s cannot serve the loopback VIP %s: other hosts cannot reach it and kernel forwarding does not serve clients on the director itself; use forwarding proxy", vs.Forwarding, vs.Address.Addr)
	}
	if vs.SendProxy != ProxyNone {
		errs.add(vs.At("send_proxy"), "send_proxy applies to proxy forwarding only")
	}
	if vs.OnePacket {
		errs.add(vs.At("ops"), "ops (one-packet scheduling) is not available with forwarding %s", vs.Forwarding)
	}
	if len(vs.LocalAddresses) > 0 && vs.Forwarding != FullNAT {
		errs.add(vs.At("local_addresses"), "local_addresses applies to fullnat forwarding only")
	}
	for _, s := range vs.LocalAddresses {
		r, err := ParseAddrRange(s)
		if err != nil {
			errs.add(vs.At("local_addresses"), "local_addresses: %v", err)
		} else if !vs.Address.IsZero() && r.First.Is4() != vs.Address.Addr.Is4() {
			errs.add(vs.At("local_addresses"), "local address %s is not of the VIP's address family", s)
		}
	}
	for _, rs := range vs.RealServers {
		if rs == nil || rs.Address.IsZero() || (vs.Address.IsZero() && vs.FWMark == 0) {
			continue
		}
		if rs.SendProxy != ProxyNone {
			errs.add(rs.At("send_proxy"), "send_proxy applies to proxy forwarding only")
		}
		if vs.Address.IsZero() {
			continue // a fwmark service (fwmark.go)
		}
		if vs.Forwarding == DR && rs.Address.Port != vs.Address.Port {
			// The packet reaches the real server unchanged, its
			// destination port the VIP's, as in IPVS.
			errs.add(rs.At("address"), "real server %s: forwarding dr cannot change the port: it must be the VIP's, %d", rs.Address, vs.Address.Port)
		}
		if rs.Address.Addr.Is4() != vs.Address.Addr.Is4() {
			errs.add(rs.At("address"), "real server %s is not of the VIP's address family (forwarding %s translates addresses, not families)", rs.Address, vs.Forwarding)
		}
	}
}

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct{ First, Last netip.Addr }

// ParseAddrRange parses "10.0.0.10" or "10.0.0.10-10.0.0.20".
func ParseAddrRange(s string) (AddrRange, error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	first, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil {
		return AddrRange{}, fmt.Errorf("invalid address %q", a)
	}
	first = first.Unmap()
	r := AddrRange{first, first}
	if isRange {
		last, err := netip.ParseAddr(strings.TrimSpace(b))
		if err != nil {
			return AddrRange{}, fmt.Errorf("invalid address %q in range %q", b, s)
		}
		r.Last = last.Unmap()
		if r.First.Is4() != r.Last.Is4() || r.Last.Less(r.First) {
			return AddrRange{}, fmt.Errorf("invalid range %q: want FIRST-LAST of one family, FIRST <= LAST", s)
		}
	}
	if r.First.IsUnspecified() || r.First.IsMulticast() {
		return AddrRange{}, fmt.Errorf("%s is not a host address", r.First)
	}
	return r, nil
}

// validateClientLimits checks the proxy's half-close timeout and per-client
// limits, and sets the tcp default of tcpfin_timeout.
func (vs *VirtualServer) validateClientLimits(errs *ErrorList) {
	if vs.TCPFinTimeout < 0 {
		errs.add(vs.At("tcpfin_timeout"), "tcpfin_timeout must not be negative")
	} else if vs.TCPFinTimeout != 0 && vs.Protocol != TCP {
		errs.add(vs.At("tcpfin_timeout"), "tcpfin_timeout applies to tcp virtual servers only")
	} else if vs.TCPFinTimeout == 0 && vs.Protocol == TCP {
		vs.TCPFinTimeout = Duration(DefaultTCPFinTimeout)
	}
	if vs.MaxConnectionsPerClient < 0 {
		errs.add(vs.At("max_connections_per_client"), "max_connections_per_client must not be negative")
	} else if vs.MaxConnectionsPerClient != 0 && vs.Protocol != TCP {
		errs.add(vs.At("max_connections_per_client"), "max_connections_per_client applies to tcp virtual servers only (udp uses max_flows_per_client)")
	}
	if vs.MaxFlowsPerClient < 0 {
		errs.add(vs.At("max_flows_per_client"), "max_flows_per_client must not be negative")
	} else if vs.MaxFlowsPerClient != 0 && vs.Protocol != UDP {
		errs.add(vs.At("max_flows_per_client"), "max_flows_per_client applies to udp virtual servers only (tcp uses max_connections_per_client)")
	}
	if vs.Forwarding != Proxy && (vs.MaxConnectionsPerClient != 0 || vs.MaxFlowsPerClient != 0) {
		errs.add(vs.At("forwarding"), "per-client limits apply to proxy forwarding only")
	}
}
