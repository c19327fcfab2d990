package test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"github.com/google/nftables"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/internal/forward/proxy"
	"github.com/govs-lb/govs/test/netns"
)

// The kernel dataplane's tests run the director in this test process: the
// dataplane is given the director namespace's file descriptor, and every
// netlink socket it opens (nftables, conntrack, nfqueue) lives there, so
// the test process itself never leaves the host namespace and needs no
// thread pinning. Clients and real servers are sockets opened inside their
// namespaces (netns.NS.Do). This keeps the director's state (real server
// counts, stats) inspectable, which the govs binary would hide behind its
// API; the binary's own wiring is the same director + forward.Multi.

// natLab is an LVS topology with a director running the kernel dataplane.
type natLab struct {
	*netns.LVS
	t  *testing.T
	d  *director.Director
	dp *nft.Dataplane
	mp *forward.Multi
}

func newNATLab(t *testing.T, reals int) *natLab {
	t.Helper()
	return startNATLab(t, netns.NewLVS(t, reals))
}

// startNATLab runs a director with the kernel dataplane in lvs's director
// namespace (either family's topology).
func startNATLab(t *testing.T, lvs *netns.LVS) *natLab {
	t.Helper()
	l := &natLab{LVS: lvs, t: t}
	if rep := nft.ProbeKernel(l.Director.FD()); rep.Err() != nil {
		t.Skipf("kernel dataplane not available here: %v", rep.Err())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l.dp = nft.New(log, nft.Options{NetNS: l.Director.FD(), Queues: 2, StatsInterval: 200 * time.Millisecond})
	l.mp = forward.NewMulti(map[desired.Forwarding]director.Dataplane{
		desired.Proxy: proxy.New(log), desired.NAT: l.dp, desired.FullNAT: l.dp,
	})
	l.d = director.New(log, l.mp)
	t.Cleanup(func() {
		if err := l.d.Shutdown(200 * time.Millisecond); err != nil {
			t.Logf("director shutdown: %v", err)
		}
		if t.Failed() {
			out, _ := l.Director.Exec("nft", "list", "table", "inet", "govs")
			t.Logf("ruleset at failure:\n%s", out)
			family := "ipv4"
			if l.VIP.Is6() {
				family = "ipv6"
			}
			out, _ = l.Director.Exec("conntrack", "-L", "-f", family)
			t.Logf("conntrack at failure:\n%s", out)
		}
	})
	return l
}

// apply loads a YAML configuration into the director.
func (l *natLab) apply(yaml string) {
	l.t.Helper()
	cfg, err := config.Parse("lab.yaml", []byte(yaml))
	if err != nil {
		l.t.Fatalf("config: %v", err)
	}
	if err := l.d.Apply(cfg); err != nil {
		l.t.Fatalf("apply: %v", err)
	}

}

// serveTCP runs a line server on each real server: each line is answered
// with "NAME PEER" where PEER is the address the real server sees. The
// servers stop at the test's end, or when killed.
func (l *natLab) serveTCP(port int) []*killableServer {
	l.t.Helper()
	var out []*killableServer
	for i, rs := range l.Reals {
		out = append(out, serveKillable(l.t, rs, fmt.Sprintf("rs%d", i+1), netip.AddrPortFrom(l.RealAddrs[i], uint16(port))))
	}
	return out
}

// serveUDP answers each datagram with "NAME PEER" on each real server.
func (l *natLab) serveUDP(port int) {
	l.t.Helper()
	for i, rs := range l.Reals {
		name := fmt.Sprintf("rs%d", i+1)
		var pc net.PacketConn
		if err := rs.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(l.RealAddrs[i], uint16(port)).String())
			return err
		}); err != nil {
			l.t.Fatal(err)
		}
		l.t.Cleanup(func() { pc.Close() })
		go func() {
			b := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				pc.WriteTo(fmt.Appendf(nil, "%s %s", name, from), from)
			}
		}()
	}
}

// vip is the lab's VIP with a port.
func (l *natLab) vip(port int) netip.AddrPort { return netip.AddrPortFrom(l.VIP, uint16(port)) }

// clientConn is a TCP connection from the client namespace.
type clientConn struct {
	c net.Conn
	r *bufio.Reader
}

func (l *natLab) dial(port int) (*clientConn, error) {
	var c net.Conn
	err := l.Client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.VIP, uint16(port)).String(), clientDialWait)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &clientConn{c: c, r: bufio.NewReader(c)}, nil
}

// ask sends a line and returns the answering real server and the peer
// address it saw.
func (cc *clientConn) ask() (name, peer string, err error) {
	return cc.askWithin(clientAskWait)
}

// askWithin is ask waiting at most d for the answer: a short d for a test
// that expects none (a generous one would only make it slower).
func (cc *clientConn) askWithin(d time.Duration) (name, peer string, err error) {
	cc.c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(cc.c, "hi\n"); err != nil {
		return "", "", err
	}
	line, err := cc.r.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	name, peer, _ = strings.Cut(strings.TrimSpace(line), " ")
	return name, peer, nil
}

// askOnce opens a connection, asks once and closes it; it also checks the
// reply came from the VIP.
func (l *natLab) askOnce(port int) (name, peer string, err error) {
	cc, err := l.dial(port)
	if err != nil {
		return "", "", err
	}
	defer cc.c.Close()
	if ra := cc.c.RemoteAddr().(*net.TCPAddr).AddrPort(); ra.Addr() != l.VIP {
		return "", "", fmt.Errorf("connected to %v, not the VIP", ra)
	}
	return cc.ask()
}

func peerHost(t *testing.T, peer string) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(peer)
	if err != nil {
		t.Fatalf("bad peer %q: %v", peer, err)
	}
	return ap.Addr()
}

func natConfig(fwd, sched string, vip netip.AddrPort, proto string, reals []netip.Addr, weights []int, extra string) string {
	s := fmt.Sprintf("grace_period: 5s\nvirtual_servers:\n  - name: web\n    address: \"%s\"\n    protocol: %s\n    scheduler: %s\n    forwarding: %s\n%s    real_servers:\n",
		vip, proto, sched, fwd, extra)
	for i, a := range reals {
		w := 1
		if weights != nil {
			w = weights[i]
		}
		s += fmt.Sprintf("      - address: \"%s\"\n        weight: %d\n", netip.AddrPortFrom(a, vip.Port()), w)
	}
	return s
}

// rr in the kernel spreads new connections evenly; the client talks to
// the VIP and the real servers see the client's own address (LVS-NAT).
func TestNATRoundRobin(t *testing.T) {
	l := newNATLab(t, 3)
	l.serveTCP(8080)
	l.apply(natConfig("nat", "rr", l.vip(8080), "tcp", l.RealAddrs, nil, ""))
	l.checkRoundRobin(8080, 30)
}

// checkRoundRobin asks n times through the VIP: rr spreads them evenly over
// the three real servers, which see the client's own address (LVS-NAT).
func (l *natLab) checkRoundRobin(port, n int) {
	l.t.Helper()
	got := map[string]int{}
	for range n {
		name, peer, err := l.askOnce(port)
		if err != nil {
			l.t.Fatal(err)
		}
		if h := peerHost(l.t, peer); h != l.ClientAddr {
			l.t.Fatalf("real server saw %v, want the client %v (nat keeps the client address)", h, l.ClientAddr)
		}
		got[name]++
	}
	for _, name := range []string{"rs1", "rs2", "rs3"} {
		if got[name] != n/3 {
			l.t.Fatalf("rr spread %v, want %d each", got, n/3)
		}
	}
}

// fullnat: the real servers see the director's local address, not the
// client's.
func TestFullNAT(t *testing.T) {
	l := newNATLab(t, 2)
	l.serveTCP(8081)
	// The director's address on rs1's link; rs2 reaches it through its
	// default route, the director.
	local := l.DirectorRealSide[0]
	l.apply(natConfig("fullnat", "rr", l.vip(8081), "tcp", l.RealAddrs, nil,
		fmt.Sprintf("    local_addresses: [\"%s\"]\n", local)))
	l.checkFullNATSource(8081, func(int) netip.Addr { return local })
}

// checkFullNATSource asks four times through the VIP: both real servers
// answer, and real server i sees source(i) as the client, not the client.
func (l *natLab) checkFullNATSource(port int, source func(i int) netip.Addr) {
	l.t.Helper()
	seen := map[string]bool{}
	for range 4 {
		name, peer, err := l.askOnce(port)
		if err != nil {
			l.t.Fatal(err)
		}
		i := int(name[len(name)-1] - '1')
		if h, want := peerHost(l.t, peer), source(i); h != want {
			l.t.Fatalf("%s saw %v, want the director's address %v", name, h, want)
		}
		seen[name] = true
	}
	if len(seen) != 2 {
		l.t.Fatalf("reached %v, want both real servers", seen)
	}
}

// UDP through the kernel: each flow is scheduled once, replies come from
// the VIP.
func TestNATUDP(t *testing.T) {
	l := newNATLab(t, 2)
	l.serveUDP(5353)
	l.apply(natConfig("nat", "rr", l.vip(5353), "udp", l.RealAddrs, nil, ""))
	l.checkUDPFlows(5353)
}

// wlc is not a kernel scheduler: first packets go to govs through NFQUEUE,
// govs picks by the live counts (which conntrack keeps true) and the
// kernel DNATs by the packet mark. Weights 2:1 with connections held open
// give 4:2, which the kernel's round-robin fallback would not.
func TestNATWeightedLeastConnectionViaQueue(t *testing.T) {
	l := newNATLab(t, 2)
	l.serveTCP(8082)
	l.apply(natConfig("nat", "wlc", l.vip(8082), "tcp", l.RealAddrs, []int{2, 1}, ""))
	l.checkWLCViaQueue(8082)
}

// A real server removed by a reload takes no new connections at once,
// while its established connection keeps working through conntrack.
func TestNATReloadRemovesRealServer(t *testing.T) {
	l := newNATLab(t, 2)
	l.serveTCP(8083)
	l.apply(natConfig("nat", "rr", l.vip(8083), "tcp", l.RealAddrs, nil, ""))
	cc, err := l.dial(8083)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.c.Close()
	first, _, err := cc.ask()
	if err != nil {
		t.Fatal(err)
	}
	keep := l.RealAddrs[0]
	if first == "rs1" {
		keep = l.RealAddrs[1]
	}
	l.apply(natConfig("nat", "rr", l.vip(8083), "tcp", []netip.Addr{keep}, nil, ""))
	for range 6 {
		name, _, err := l.askOnce(8083)
		if err != nil {
			t.Fatal(err)
		}
		if name == first {
			t.Fatalf("new connection went to %s, removed by the reload", name)
		}
	}
	for range 3 {
		name, _, err := cc.ask()
		if err != nil {
			t.Fatalf("established connection to the removed %s broke: %v", first, err)
		}
		if name != first {
			t.Fatalf("established connection answered by %s, want %s", name, first)
		}
	}
}

// With expire_nodest_conn the removed real server's flows end at once.
func TestNATExpireNodestConn(t *testing.T) {
	l := newNATLab(t, 2)
	l.serveTCP(8084)
	extra := "    expire_nodest_conn: true\n"
	l.apply(natConfig("nat", "rr", l.vip(8084), "tcp", l.RealAddrs, nil, extra))
	cc, err := l.dial(8084)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.c.Close()
	first, _, err := cc.ask()
	if err != nil {
		t.Fatal(err)
	}
	keep := l.RealAddrs[0]
	if first == "rs1" {
		keep = l.RealAddrs[1]
	}
	l.apply(natConfig("nat", "rr", l.vip(8084), "tcp", []netip.Addr{keep}, nil, extra))
	// The conntrack entry is gone: the next segment is no longer
	// translated, so the connection does not answer any more.
	if name, _, err := cc.askWithin(3 * time.Second); err == nil {
		t.Fatalf("connection to the removed %s still answered by %s", first, name)
	}
}

// A table left by a crashed run is replaced at start, and shutdown removes
// govs's table, leaving the rest of the ruleset alone.
func TestNATTableLifecycle(t *testing.T) {
	l := newNATLab(t, 1)
	c, err := nftables.New(nftables.WithNetNSFd(l.Director.FD()))
	if err != nil {
		t.Fatal(err)
	}
	stale := &nftables.Table{Name: "govs", Family: nftables.TableFamilyINet}
	other := &nftables.Table{Name: "someone_else", Family: nftables.TableFamilyINet}
	c.AddTable(stale)
	c.AddChain(&nftables.Chain{Name: "left_over", Table: stale})
	c.AddTable(other)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	l.serveTCP(8085)
	l.apply(natConfig("nat", "rr", l.vip(8085), "tcp", l.RealAddrs, nil, ""))
	if _, _, err := l.askOnce(8085); err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if ch.Name == "left_over" {
			t.Fatal("the stale table's chain survived the start")
		}
	}
	if err := l.d.Shutdown(100 * time.Millisecond); err != nil {
		t.Logf("shutdown: %v", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	if len(names) != 1 || names[0] != "someone_else" {
		t.Fatalf("tables after shutdown: %v, want only someone_else", names)
	}
}

// checkUDPFlows sends three datagrams on each of six flows to the VIP's
// port: each flow stays on one real server, replies come from the VIP, the
// real servers see the client, and rr spreads the flows 3:3.
func (l *natLab) checkUDPFlows(port int) {
	l.t.Helper()
	got := map[string]int{}
	for range 6 {
		var pc *net.UDPConn
		if err := l.Client.Do(func() (err error) {
			pc, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.vip(port)))
			return err
		}); err != nil {
			l.t.Fatal(err)
		}
		pc.SetDeadline(time.Now().Add(3 * time.Second))
		var first string
		for range 3 { // three datagrams of one flow: one real server
			if _, err := pc.Write([]byte("q")); err != nil {
				l.t.Fatal(err)
			}
			b := make([]byte, 200)
			n, from, err := pc.ReadFromUDPAddrPort(b)
			if err != nil {
				l.t.Fatal(err)
			}
			if from.Addr() != l.VIP {
				l.t.Fatalf("reply from %v, want the VIP", from)
			}
			name, peer, _ := strings.Cut(string(b[:n]), " ")
			if h := peerHost(l.t, peer); h != l.ClientAddr {
				l.t.Fatalf("real server saw %v, want the client", h)
			}
			if first == "" {
				first = name
				got[name]++
			} else if name != first {
				l.t.Fatalf("one flow answered by %s and %s", first, name)
			}
		}
		pc.Close()
	}
	if got["rs1"] != 3 || got["rs2"] != 3 {
		l.t.Fatalf("udp flows spread %v, want 3 each", got)
	}
}

// checkWLCViaQueue holds six connections to a wlc service of weights 2:1:
// govs, scheduling through NFQUEUE, spreads them 4:2 (the kernel's
// round-robin fallback would not), counts each, and conntrack reports them
// active, with bytes.
func (l *natLab) checkWLCViaQueue(port int) {
	l.t.Helper()
	got := map[string]int{}
	for range 6 {
		cc, err := l.dial(port)
		if err != nil {
			l.t.Fatal(err)
		}
		defer cc.c.Close()
		name, peer, err := cc.ask()
		if err != nil {
			l.t.Fatal(err)
		}
		if h := peerHost(l.t, peer); h != l.ClientAddr {
			l.t.Fatalf("real server saw %v, want the client", h)
		}
		got[name]++
	}
	if testing.Verbose() {
		out, _ := l.Director.Exec("nft", "list", "table", "inet", "govs")
		l.t.Logf("ruleset:\n%s", out)
	}
	if got["rs1"] != 4 || got["rs2"] != 2 {
		l.t.Fatalf("wlc spread %v, want rs1:4 rs2:2", got)
	}
	vs := l.d.Services()[0]
	if n := vs.Stats.Conns.Load(); n != 6 {
		l.t.Errorf("service counted %d connections, want 6", n)
	}
	// conntrack, read every 200ms, makes the held connections active.
	loopback.WaitFor(l.t, "conntrack counts", func() bool {
		rs := vs.RealServers()
		return rs[0].Dest.ActiveConns() == 4 && rs[1].Dest.ActiveConns() == 2 &&
			rs[0].Dest.InactiveConns() == 0 && vs.Stats.InBytes.Load() > 0 && vs.Stats.OutBytes.Load() > 0
	})
}
