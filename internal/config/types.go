package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in Go syntax: 300ms, 2s, 15m.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) decodeScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.Atoi(s); nerr == nil {
			return fmt.Errorf("duration %q needs a unit, for example %ss", s, s)
		}
		return fmt.Errorf("invalid duration %q (use Go syntax: 300ms, 2s, 5m)", s)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back in Go syntax (govs convert).
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Endpoint is an IP address with a port: "127.0.0.1:80" or "[::1]:80". A
// real server may leave the port out ("10.0.0.2"): it then uses the virtual
// server's port, as ipvsadm does.
type Endpoint struct {
	Addr    netip.Addr
	Port    uint16
	HasPort bool
}

// AddrPort returns the endpoint as a netip.AddrPort.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.Addr, e.Port) }

// IsZero reports whether the endpoint was not set.
func (e Endpoint) IsZero() bool { return !e.Addr.IsValid() }

func (e Endpoint) String() string {
	if !e.HasPort {
		return e.Addr.String()
	}
	return e.AddrPort().String()
}

// MarshalYAML writes the endpoint back as text.
func (e Endpoint) MarshalYAML() (any, error) { return e.String(), nil }

var errHostName = errors.New("host names are not resolved")

func (e *Endpoint) decodeScalar(s string) error {
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		*e = Endpoint{Addr: a.Unmap()}
		return nil
	}
	ap, err := ParseAddrPort(s) // strict port: ":08080" is not port 8080
	if err == nil {
		*e = Endpoint{Addr: ap.Addr(), Port: ap.Port(), HasPort: true}
		return nil
	}
	host, port, found := strings.Cut(s, ":")
	if found && strings.Count(s, ":") == 1 {
		if _, err := netip.ParseAddr(host); err == nil {
			return fmt.Errorf("invalid port %q in %q (1-65535, decimal digits, no leading zero)", port, s)
		}
		return fmt.Errorf("invalid address %q: %w; write an IP address", s, errHostName)
	}
	if strings.HasPrefix(s, "[") {
		return err
	}
	if strings.Count(s, ":") > 1 {
		return fmt.Errorf("invalid address %q: write an IPv6 address with a port as [ADDR]:PORT", s)
	}
	return fmt.Errorf("invalid address %q: want IP:PORT or [IPv6]:PORT", s)
}

// Protocol is the transport protocol of a virtual service.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

func (p *Protocol) decodeScalar(s string) error {
	switch v := Protocol(strings.ToLower(s)); v {
	case TCP, UDP:
		*p = v
		return nil
	}
	return fmt.Errorf("invalid protocol %q (tcp or udp)", s)
}

// Forwarding is how a virtual service reaches its real servers.
type Forwarding string

// Forwarding methods.
const (
	Proxy   Forwarding = "proxy"   // userspace L4 proxy
	NAT     Forwarding = "nat"     // kernel DNAT, replies through the director (LVS-NAT)
	FullNAT Forwarding = "fullnat" // kernel DNAT and SNAT
	DR      Forwarding = "dr"      // direct routing: the packet unchanged to the real server's MAC (LVS-DR)
)

func (f *Forwarding) decodeScalar(s string) error {
	switch v := Forwarding(strings.ToLower(s)); v {
	case Proxy, NAT, FullNAT, DR:
		*f = v
		return nil
	}
	return fmt.Errorf("invalid forwarding %q (proxy, nat, fullnat or dr)", s)
}

// ProxyProtocol is the PROXY protocol version sent to real servers.
type ProxyProtocol string

// PROXY protocol versions.
const (
	ProxyNone ProxyProtocol = ""
	ProxyV1   ProxyProtocol = "v1"
	ProxyV2   ProxyProtocol = "v2"
)

func (p *ProxyProtocol) decodeScalar(s string) error {
	switch v := ProxyProtocol(strings.ToLower(s)); v {
	case ProxyV1, ProxyV2:
		*p = v
		return nil
	case "none", "off":
		*p = ProxyNone
		return nil
	}
	return fmt.Errorf("invalid send_proxy %q (v1, v2 or none)", s)
}
