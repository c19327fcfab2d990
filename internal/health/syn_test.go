package health

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/netns"
)

// requireRaw skips t unless the process may open raw sockets (root); in
// CI it must.
func requireRaw(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 && os.Getenv("CI") == "" {
		t.Skip("SYN probes need root (a raw socket); run the test as root")
	}
}

// firstReport starts a check of target on r and waits for its first report.
func firstReport(t *testing.T, r *Runner, c Checker, timeout time.Duration) Result {
	t.Helper()
	got := make(chan Result, 1)
	j := r.Start(c, "tcp", Timing{Interval: time.Hour, Timeout: timeout, Warmup: -1}, func(res Result) {
		select {
		case got <- res:
		default:
		}
	})
	defer j.Stop()
	select {
	case res := <-got:
		return res
	case <-time.After(timeout + 10*time.Second):
		t.Fatal("no report")
	}
	return Result{}
}

// noHandshake fails t if ln accepts a connection: a SYN probe must leave
// no established connection behind.
func noHandshake(t *testing.T, ln net.Listener) {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	c, err := ln.Accept()
	if err == nil {
		c.Close()
		t.Fatal("the listener accepted a connection: a handshake completed")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

// closedPort is a loopback port that nothing listens on.
func closedPort(t *testing.T, network, host string) uint16 {
	t.Helper()
	ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).AddrPort().Port()
	ln.Close()
	return p
}

// TestSYNProbeLoopback checks, with the process's own probers, that a
// listening loopback port is up (SYN-ACK) without a handshake, and a
// closed one down by the kernel's RST, long before the timeout; IPv4 and
// IPv6.
func TestSYNProbeLoopback(t *testing.T) {
	requireRaw(t)
	r := NewRunner(0)
	defer r.Close()
	for _, fam := range []struct{ network, host string }{{"tcp4", "127.0.0.1"}, {"tcp6", "::1"}} {
		t.Run(fam.network, func(t *testing.T) {
			ln, err := net.Listen(fam.network, net.JoinHostPort(fam.host, "0"))
			if err != nil {
				if fam.network == "tcp6" {
					t.Skip("no IPv6 loopback:", err)
				}
				t.Fatal(err)
			}
			defer ln.Close()
			if proberFor(fam.network == "tcp4") == nil {
				t.Fatal("no prober opened as root")
			}
			up := ln.Addr().(*net.TCPAddr).AddrPort()
			up = netip.AddrPortFrom(up.Addr().Unmap(), up.Port())
			c, err := New(Spec{Type: "tcp", Target: up})
			if err != nil {
				t.Fatal(err)
			}
			begun := time.Now()
			res := firstReport(t, r, c, 2*time.Second)
			if !res.OK || res.Msg != "syn-ack" {
				t.Fatalf("listening %s: %+v, want up by SYN-ACK", up, res)
			}
			// The latency is from the send to the answer's arrival stamp:
			// more than nothing, less than the wait for the report.
			if res.Latency <= 0 || res.Latency > time.Since(begun) {
				t.Fatalf("listening %s: latency %s, want in (0, %s]", up, res.Latency, time.Since(begun))
			}
			noHandshake(t, ln)

			down := netip.AddrPortFrom(up.Addr(), closedPort(t, fam.network, fam.host))
			c, _ = New(Spec{Type: "tcp", Target: down})
			// A long timeout: a down report before it is the RST's.
			res = firstReport(t, r, c, time.Minute)
			if res.OK || !strings.Contains(res.Msg, "refused") || res.Latency >= time.Minute {
				t.Fatalf("closed %s: %+v, want down by RST", down, res)
			}
		})
	}
}

// TestSYNProbeNamespace probes from a prober opened in a namespace of the
// test's: a listening address of the namespace is up, a closed port down
// (RST), and an address whose packets go nowhere (a static neighbour entry
// toward a peer that has no such address, so the SYN leaves and nobody
// answers) down at the timeout.
func TestSYNProbeNamespace(t *testing.T) {
	netns.Require(t)
	a, b := netns.New(t, "syna"), netns.New(t, "synb")
	netns.Link(a, "v0", "10.231.0.1/24", b, "v1", "")
	a.IP("neigh", "add", "10.231.0.2", "lladdr", "02:00:00:00:00:02", "dev", "v0")

	var ln net.Listener
	var p *synProber
	if err := a.Do(func() (err error) {
		if ln, err = net.Listen("tcp4", "10.231.0.1:0"); err != nil {
			return err
		}
		p, err = openProber(true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	defer p.close()
	p.route = func(dst netip.AddrPort) (src netip.Addr, err error) {
		err = a.Do(func() (err error) { src, err = routeSource(dst); return })
		return
	}
	inNS := func(addr netip.AddrPort) Checker {
		c := newTCP(addr)
		c.prober, c.probed = p, true
		return c
	}
	r := NewRunner(0)
	defer r.Close()

	up := ln.Addr().(*net.TCPAddr).AddrPort()
	if res := firstReport(t, r, inNS(up), 2*time.Second); !res.OK || res.Msg != "syn-ack" {
		t.Fatalf("listening %s: %+v, want up", up, res)
	}
	noHandshake(t, ln)
	closed := netip.AddrPortFrom(up.Addr(), up.Port()+1)
	if closed.Port() == 0 {
		closed = netip.AddrPortFrom(up.Addr(), 1)
	}
	if res := firstReport(t, r, inNS(closed), time.Minute); res.OK || !strings.Contains(res.Msg, "refused") {
		t.Fatalf("closed %s: %+v, want down by RST", closed, res)
	}
	hole := netip.MustParseAddrPort("10.231.0.2:80")
	start := time.Now()
	res := firstReport(t, r, inNS(hole), 300*time.Millisecond)
	if res.OK || !strings.Contains(res.Msg, "timed out") {
		t.Fatalf("blackholed %s: %+v, want down at the timeout", hole, res)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("blackholed %s reported down after %s, before its timeout", hole, el)
	}
	p.mu.Lock()
	left := len(p.m.out)
	p.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d probes left outstanding", left)
	}
}

// TestSYNProbeUnreachable probes through a router namespace that has no
// way to some real servers: its ICMP "host unreachable" (an unreachable
// route) and "administratively prohibited" (a prohibit route) quote the
// probe, and the real server is down at once with the router's reason,
// not at the check's timeout (a minute here); an address on the
// director's own link that does not answer ARP is down when the
// director's kernel gives up resolving it, also before the timeout.
func TestSYNProbeUnreachable(t *testing.T) {
	netns.Require(t)
	a, b := netns.New(t, "icmpa"), netns.New(t, "icmpb")
	netns.Link(a, "v0", "10.232.0.1/24", b, "v1", "10.232.0.2/24")
	a.IP("route", "add", "10.232.8.0/22", "via", "10.232.0.2")
	b.Sysctl("net.ipv4.ip_forward", "1")
	b.IP("route", "add", "unreachable", "10.232.9.0/24")
	b.IP("route", "add", "prohibit", "10.232.10.0/24")

	var p *synProber
	if err := a.Do(func() (err error) { p, err = openProber(true); return }); err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if p.icmp < 0 {
		t.Fatal("no ICMP socket opened as root")
	}
	p.route = func(dst netip.AddrPort) (src netip.Addr, err error) {
		err = a.Do(func() (err error) { src, err = routeSource(dst); return })
		return
	}
	r := NewRunner(0)
	defer r.Close()
	for _, c := range []struct{ target, want string }{
		{"10.232.9.9:80", "no route to host"},
		{"10.232.10.9:80", "no route to host"},
		{"10.232.0.77:80", "no route to host"}, // on the link, no ARP answer
	} {
		tc := newTCP(netip.MustParseAddrPort(c.target))
		tc.prober, tc.probed = p, true
		res := firstReport(t, r, tc, time.Minute)
		if res.OK || !strings.Contains(res.Msg, c.want) || res.Latency >= time.Minute {
			t.Errorf("%s: %+v, want down by ICMP (%q) before the timeout", c.target, res, c.want)
		}
	}
	p.mu.Lock()
	left := len(p.m.out)
	p.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d probes left outstanding", left)
	}
}
