package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The ping check is keepalived's PING_CHECK: an ICMP echo to the real
// server's address, passing on a matching echo reply. It uses an
// unprivileged ICMP socket ("ping socket", allowed by the
// net.ipv4.ping_group_range sysctl) when it can and a raw socket otherwise
// (root or CAP_NET_RAW).

func init() {
	Register("ping", func(s Spec) (Checker, error) { return &pingChecker{addr: s.Target.Addr()}, nil })
}

type pingChecker struct {
	addr netip.Addr
	seq  uint16
}

// pingNetworks are tried in order; the first that opens is used from then on.
var (
	pingMu   sync.Mutex
	pingMode = map[bool]string{} // by IPv6: the network that worked
)

func pingListen(v6 bool) (*icmp.PacketConn, string, error) {
	candidates := []string{"udp4", "ip4:icmp"}
	laddr := "0.0.0.0"
	if v6 {
		candidates, laddr = []string{"udp6", "ip6:ipv6-icmp"}, "::"
	}
	pingMu.Lock()
	if m := pingMode[v6]; m != "" {
		candidates = []string{m}
	}
	pingMu.Unlock()
	var firstErr error
	for _, network := range candidates {
		c, err := icmp.ListenPacket(network, laddr)
		if err == nil {
			pingMu.Lock()
			pingMode[v6] = network
			pingMu.Unlock()
			return c, network, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, "", fmt.Errorf("no ICMP socket (unprivileged ping sockets not allowed by net.ipv4.ping_group_range, and no raw socket): %w", firstErr)
}

func (c *pingChecker) Check(ctx context.Context) Result {
	v6 := c.addr.Is6() && !c.addr.Is4In6()
	conn, network, err := pingListen(v6)
	if err != nil {
		return fail("ping: %v", err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c.seq++
	token := make([]byte, 16)
	rand.Read(token)
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if v6 {
		typ, reply, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	id := int(uint16(time.Now().UnixNano()))
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: int(c.seq), Data: token}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return fail("ping: %v", err)
	}
	ip := net.IP(c.addr.Unmap().AsSlice())
	var dst net.Addr = &net.IPAddr{IP: ip}
	if network == "udp4" || network == "udp6" {
		dst = &net.UDPAddr{IP: ip}
	}
	if _, err := conn.WriteTo(b, dst); err != nil {
		return failErr(ctx, "ping", err)
	}
	buf := make([]byte, 1500)
	for i := 0; i < 64; i++ {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return failErr(ctx, "ping", err)
		}
		if !sameIP(from, c.addr) {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == int(c.seq) && bytes.Equal(e.Data, token) {
			return pass("ping: echo reply")
		}
	}
	return fail("ping: no matching echo reply")
}

func sameIP(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch x := a.(type) {
	case *net.UDPAddr:
		ip = x.IP
	case *net.IPAddr:
		ip = x.IP
	default:
		return false
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == want.Unmap()
}
