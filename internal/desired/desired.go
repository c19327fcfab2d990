package desired

import (
	"net/netip"
	"time"
)

// Protocol is the transport protocol of a virtual service.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Number is the IP protocol number (6, 17).
func (p Protocol) Number() uint8 {
	if p == UDP {
		return 17
	}
	return 6
}

// Forwarding is how a virtual service reaches its real servers.
type Forwarding string

// Forwarding methods.
const (
	Proxy   Forwarding = "proxy"   // userspace L4 proxy
	NAT     Forwarding = "nat"     // kernel DNAT (LVS-NAT)
	FullNAT Forwarding = "fullnat" // kernel DNAT and SNAT
	DR      Forwarding = "dr"      // direct routing (LVS-DR)
)

// ProxyProtocol is the PROXY protocol version sent to a real server.
type ProxyProtocol string

// PROXY protocol versions.
const (
	ProxyNone ProxyProtocol = ""
	ProxyV1   ProxyProtocol = "v1"
	ProxyV2   ProxyProtocol = "v2"
)

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct{ First, Last netip.Addr }

// State is every virtual service the dataplanes must serve, in
// configuration order.
type State struct {
	Services []*Service
}

// Service is one virtual service as the dataplanes must serve it.
type Service struct {
	Key      string // "tcp/VIP:PORT" or "fwm/MARK", the service's identity
	Name     string
	Protocol Protocol
	VIP      netip.AddrPort // invalid for a fwmark service
	// FWMark is a firewall-mark service's packet mark (0: an address
	// service); IPv6 its family, which it has no address to tell.
	FWMark     uint32
	IPv6       bool
	Forwarding Forwarding
	Scheduler  Scheduler
	// Persistence is nil for a service without persistence_timeout.
	Persistence *Persistence
	// SNAT is fullnat's local_addresses, parsed; empty: masquerade.
	SNAT []AddrRange
	// ExpireNodestConn ends the flows of a real server removed from the
	// service (or of a sorry server that stops standing in).
	ExpireNodestConn bool

	// Reals are the real servers in configuration order, with their
	// effective state at the time of the snapshot.
	Reals []RealServer
	// Sorry is the sorry server, nil when none is configured;
	// SorryActive says it takes every new connection (quorum lost).
	Sorry       *RealServer
	SorryActive bool

	// The proxy's per-connection settings.
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	TCPFinTimeout  time.Duration // 0: none
	Retries        int
	MaxFlows       int  // UDP flows in the flow table; 0: no bound
	MaxPerClient   int  // max_connections_per_client (tcp), max_flows_per_client (udp)
	OnePacket      bool // every UDP datagram scheduled on its own
	AccessLog      bool
}

// Scheduler is a service's scheduler, by name, with its options.
type Scheduler struct {
	Name  string
	Flags []string // scheduler_flags as configured, for what only a name says
	// Options that a dataplane running the scheduler itself needs.
	MHPort     bool // mh-port: the client's port is hashed too
	MHFallback bool // mh-fallback: an unavailable server's clients go to the others
}

// Persistence is a service's persistence policy.
type Persistence struct {
	Timeout time.Duration
	// Netmask is persistence_netmask as configured ("" for none); the
	// director groups clients by it.
	Netmask string
}

// RealServer is one real server (or a sorry server) as the dataplanes see
// it at the time of the snapshot.
type RealServer struct {
	Addr netip.AddrPort
	// Weight is the effective weight now (health, slow start, an agent, a
	// drain); LastWeight the last one above 0, which a Maglev table keeps
	// an unavailable server's positions by.
	Weight, LastWeight int
	// InSet says the scheduler holds it (a server down with
	// inhibit_on_failure stays in the set at weight 0); Available that it
	// takes new connections (in the set, weight above 0).
	InSet, Available bool
	SendProxy        ProxyProtocol
	// Limited says a connection limit (max_connections, an upper
	// threshold) applies: only a scheduler that sees live connection
	// counts can honour it.
	Limited bool
}

// Real returns the real server (or the sorry server) at addr.
func (s *Service) Real(addr netip.AddrPort) (*RealServer, bool) {
	for i := range s.Reals {
		if s.Reals[i].Addr == addr {
			return &s.Reals[i], true
		}
	}
	if s.Sorry != nil && s.Sorry.Addr == addr {
		return s.Sorry, true
	}
	return nil, false
}

// Served lists the real servers and, if there is one, the sorry server.
func (s *Service) Served() []RealServer {
	if s.Sorry == nil {
		return s.Reals
	}
	return append(s.Reals[:len(s.Reals):len(s.Reals)], *s.Sorry)
}

// Destinations is the addresses that take new connections: the available
// real servers, or the sorry server alone while it stands in.
func (s *Service) Destinations() []netip.AddrPort {
	var out []netip.AddrPort
	if s.SorryActive && s.Sorry != nil {
		return append(out, s.Sorry.Addr)
	}
	for _, r := range s.Reals {
		if r.Available {
			out = append(out, r.Addr)
		}
	}
	return out
}

// Find returns the service with key, or nil.
func (st *State) Find(key string) *Service {
	if st == nil {
		return nil
	}
	for _, s := range st.Services {
		if s.Key == key {
			return s
		}
	}
	return nil
}
