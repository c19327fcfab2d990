package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/govs-lb/govs/internal/config"
)

// dnsSource resolves an SRV name (servers from its records: target,
// port, weight) or a host name's A and AAAA records with a fixed port, from
// a given server or the system's resolvers, again when the answer's
// smallest TTL runs out, bounded below by interval and above by
// dnsMaxFactor intervals (a TTL of 0 would otherwise ask in a loop, a TTL
// of a day would never notice a change).
type dnsSource struct {
	name     string // fully qualified
	srv      bool
	port     uint16
	servers  []string // HOST:PORT
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger
}

const dnsMaxFactor = 12

func newDNSSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	s := &dnsSource{name: dns.Fqdn(dc.Name), srv: strings.HasPrefix(dc.Name, "_"), port: uint16(dc.PortNumber()),
		interval: dc.Interval.D(), timeout: dc.Timeout.D(), log: log}
	if dc.Server != "" {
		s.servers = []string{dc.Server}
	} else {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("dns discovery: no server given and the system's resolvers are unknown: %w", err)
		}
		for _, h := range cc.Servers {
			s.servers = append(s.servers, net.JoinHostPort(h, cc.Port))
		}
	}
	if _, ok := dns.IsDomainName(s.name); !ok {
		return nil, fmt.Errorf("dns discovery: %q is not a domain name", dc.Name)
	}
	return s, nil
}

func (s *dnsSource) Run(ctx context.Context, report func(Update)) {
	for {
		servers, ttl, err := s.resolve(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := s.interval
		if err != nil {
			report(Update{Err: err})
		} else {
			report(Update{Servers: servers})
			wait = min(max(ttl, s.interval), dnsMaxFactor*s.interval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// resolve asks for the name's servers; ttl is the smallest TTL seen.
func (s *dnsSource) resolve(ctx context.Context) ([]Server, time.Duration, error) {
	var out []Server
	ttl := time.Duration(1<<63 - 1)
	seeTTL := func(rr dns.RR) {
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if !s.srv {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			addrs, err := s.addresses(ctx, s.name, qt, seeTTL)
			if err != nil {
				return nil, 0, err
			}
			for _, a := range addrs {
				out = append(out, Server{Addr: netip.AddrPortFrom(a, s.port), Weight: -1, Name: strings.TrimSuffix(s.name, ".")})
			}
		}
		return out, ttl, nil
	}
	msg, err := s.query(ctx, s.name, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	if msg.Rcode == dns.RcodeNameError {
		return nil, s.interval, nil // no such name: an empty set, held as any drop
	}
	// RFC 2782: the lowest priority is used; higher ones are backups,
	// which govs's own health checks and sorry server cover.
	best := -1
	var recs []*dns.SRV
	for _, rr := range msg.Answer {
		if r, ok := rr.(*dns.SRV); ok {
			seeTTL(r)
			switch p := int(r.Priority); {
			case best < 0 || p < best:
				best, recs = p, []*dns.SRV{r}
			case p == best:
				recs = append(recs, r)
			}
		}
	}
	// The server's additional section usually carries the targets'
	// addresses; others are asked for.
	extra := map[string][]netip.Addr{}
	for _, rr := range msg.Extra {
		switch r := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				extra[strings.ToLower(r.Hdr.Name)] = append(extra[strings.ToLower(r.Hdr.Name)], a)
				seeTTL(r)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA); ok {
				extra[strings.ToLower(r.Hdr.Name)] = append(extra[strings.ToLower(r.Hdr.Name)], a)
				seeTTL(r)
			}
		}
	}
	for _, r := range recs {
		target := strings.ToLower(r.Target)
		addrs, ok := extra[target]
		if !ok {
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				as, err := s.addresses(ctx, target, qt, seeTTL)
				if err != nil {
					return nil, 0, err
				}
				addrs = append(addrs, as...)
			}
		}
		// SRV weight 0 means "rarely", not "never" (RFC 2782): 1.
		w := max(int(r.Weight), 1)
		for _, a := range addrs {
			out = append(out, Server{Addr: netip.AddrPortFrom(a, r.Port), Weight: w,
				Name: strings.TrimSuffix(r.Target, ".") + ":" + strconv.Itoa(int(r.Port))})
		}
	}
	return out, ttl, nil
}

func (s *dnsSource) addresses(ctx context.Context, name string, qt uint16, seeTTL func(dns.RR)) ([]netip.Addr, error) {
	msg, err := s.query(ctx, name, qt)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range msg.Answer {
		switch r := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok && qt == dns.TypeA {
				out = append(out, a)
				seeTTL(r)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA); ok && qt == dns.TypeAAAA {
				out = append(out, a)
				seeTTL(r)
			}
		}
	}
	return out, nil
}

// query asks the servers in turn (UDP, then TCP when truncated). NOERROR
// and NXDOMAIN are answers; anything else is the source failing.
func (s *dnsSource) query(ctx context.Context, name string, qt uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qt)
	m.RecursionDesired = true
	var lastErr error
	for _, srv := range s.servers {
		for _, network := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: network, Timeout: s.timeout}
			qctx, cancel := context.WithTimeout(ctx, s.timeout)
			r, _, err := c.ExchangeContext(qctx, m, srv)
			cancel()
			if err != nil {
				lastErr = fmt.Errorf("dns %s %s at %s: %w", dns.TypeToString[qt], name, srv, err)
				break
			}
			if r.Truncated && network == "udp" {
				continue
			}
			if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
				lastErr = fmt.Errorf("dns %s %s at %s: %s", dns.TypeToString[qt], name, srv, dns.RcodeToString[r.Rcode])
				break
			}
			return r, nil
		}
	}
	return nil, lastErr
}
