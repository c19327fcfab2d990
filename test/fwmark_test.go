package test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/forward/nft"

	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// Firewall-mark services (docs/fwmark.md): the operator's own nft rule
// marks the packets of several ports, and one govs service balances them
// all, with one persistence.

// markPorts installs the operator's marking rule in ns: packets of protos
// to vip's ports get mark, at priority prio: "raw - 10", before every govs
// chain (forwarding dr's run at raw), or "mangle", LVS's classic place,
// which nat and fullnat follow whichever table was loaded first. The table
// goes at the test's end.
func markPorts(t testing.TB, ns *netns.NS, vip netip.Addr, ports []int, mark int, prio string) {
	t.Helper()
	fam, table := "ip", "fwm_test"
	if vip.Is6() {
		fam = "ip6"
	}
	var ps []string
	for _, p := range ports {
		ps = append(ps, fmt.Sprint(p))
	}
	script := fmt.Sprintf(`table inet %s {
	chain pre {
		type filter hook prerouting priority %s; policy accept;
		%s daddr %s meta l4proto { tcp, udp } th dport { %s } meta mark set %d
	}
}
`, table, prio, fam, vip, strings.Join(ps, ", "), mark)
	path := filepath.Join(t.TempDir(), "mark.nft")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Exec("nft", "-f", path); err != nil {
		t.Fatalf("nft -f %s: %v: %s", path, err, out)
	}
	t.Cleanup(func() { ns.Exec("nft", "delete", "table", "inet", table) })
}

// fwmServe runs a line server on every real server of l on each port,
// answering "rsN:PORT PEER": which real server, on which port.
func fwmServe(l *natLab, ports ...int) {
	for _, port := range ports {
		for i, rs := range l.Reals {
			serveKillable(l.t, rs, fmt.Sprintf("rs%d:%d", i+1, port), netip.AddrPortFrom(l.RealAddrs[i], uint16(port)))
		}
	}
}

// HTTP and HTTPS (8080, 8443) and a UDP port marked into one nat service,
// persistent: each client keeps its real server across both ports and
// UDP, the real servers see the port the client asked for, and the clients
// spread over the real servers. An unmarked port of the VIP is not served.
func TestFWMarkNATPersistence(t *testing.T) {
	l := newNATLab(t, 3)
	fwmServe(l, 8080, 8443)
	l.serveUDP(5353)
	// Marked in mangle (iptables -t mangle's priority) by a table loaded
	// before govs's: of chains of one priority the last registered runs
	// first, so govs's queue chain must come after mangle, not at it.
	markPorts(t, l.Director, l.VIP, []int{8080, 8443, 5353}, 7, "mangle")
	var b strings.Builder
	b.WriteString("grace_period: 2s\nvirtual_servers:\n  - fwmark: 7\n    forwarding: nat\n    scheduler: rr\n    persistence_timeout: 5m\n    real_servers:\n")
	for _, a := range l.RealAddrs {
		fmt.Fprintf(&b, "      - address: %s\n", a) // no port: the packet's own
	}
	l.apply(b.String())

	srcs := l.AddClientAddrs(6)
	clientsOf := map[string]int{}
	for _, src := range srcs {
		var first string
		for round := range 3 {
			for _, port := range []int{8080, 8443} {
				name, peer, err := l.askFrom(src, port)
				if err != nil {
					t.Fatalf("client %s round %d port %d: %v", src, round, port, err)
				}
				rs, got, _ := strings.Cut(name, ":")
				if got != fmt.Sprint(port) {
					t.Fatalf("client %s asked port %d, real server %s answered on %s", src, port, rs, got)
				}
				if h := peerHost(t, peer); h != src {
					t.Fatalf("%s saw %v, want the client %v (nat)", rs, h, src)
				}
				if first == "" {
					first = rs
					clientsOf[rs]++
				} else if rs != first {
					t.Fatalf("client %s went to %s, then to %s on port %d: persistence must hold across the ports of a fwmark service", src, first, rs, port)
				}
			}
		}
		// UDP is marked into the same service: the same real server.
		name, err := l.askUDPFrom(netip.AddrPortFrom(src, 40000), 5353)
		if err != nil {
			t.Fatalf("udp from %s: %v", src, err)
		}
		if name != first {
			t.Fatalf("client %s: udp went to %s, tcp to %s", src, name, first)
		}
	}
	// rr schedules each new client's template in turn: two clients each.
	if len(clientsOf) != 3 || clientsOf["rs1"] != 2 || clientsOf["rs2"] != 2 || clientsOf["rs3"] != 2 {
		t.Fatalf("clients per real server %v, want 2 each of rs1..rs3", clientsOf)
	}
	vs := l.d.Service("fwm/7")
	if vs == nil {
		t.Fatal("no service fwm/7")
	}
	// Every connection and flow was scheduled by govs (persistence): 6
	// clients x 3 rounds x 2 ports + 6 udp flows (a SYN retransmitted while
	// its first was queued, on a very loaded machine, would add one).
	if n := vs.Stats.Conns.Load(); n < 42 {
		t.Fatalf("service scheduled %d connections and flows, want 42", n)
	}
	if _, _, err := l.askFrom(srcs[0], 8081); err == nil {
		t.Fatal("port 8081 is not marked, yet it was served")
	}
}

// fullnat in the kernel (rr, no NFQUEUE): both marked ports reach every
// real server, on the port asked, from the director's local address.
func TestFWMarkFullNAT(t *testing.T) {
	l := newNATLab(t, 2)
	fwmServe(l, 8080, 8443)
	markPorts(t, l.Director, l.VIP, []int{8080, 8443}, 0x10, "raw - 10")
	local := l.DirectorRealSide[0]
	l.apply(fmt.Sprintf(`grace_period: 2s
virtual_servers:
  - fwmark: 0x10
    forwarding: fullnat
    scheduler: rr
    local_addresses: [%s]
    real_servers: [{address: %s}, {address: %s}]
`, local, l.RealAddrs[0], l.RealAddrs[1]))
	seen := map[string]int{}
	for i := range 8 {
		port := []int{8080, 8443}[i/2%2] // two on each port in turn: rr alternates the servers
		name, peer, err := l.askOnce(port)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		if !strings.HasSuffix(name, fmt.Sprintf(":%d", port)) {
			t.Fatalf("asked port %d, %s answered", port, name)
		}
		if h := peerHost(t, peer); h != local {
			t.Fatalf("%s saw %v, want the local address %v", name, h, local)
		}
		seen[name]++
	}
	if len(seen) != 4 {
		t.Fatalf("answers %v, want both real servers on both ports", seen)
	}
	// The kernel scheduled them: the statistics come from conntrack, which
	// tells the service's flows by their conntrack mark and their real
	// server (without a port) by its address.
	vs := l.d.Service("fwm/16")
	if vs == nil {
		t.Fatal("no service fwm/16")
	}
	loopback.WaitFor(t, "the conntrack statistics", func() bool { return vs.Stats.Conns.Load() == 8 })
	for _, rs := range vs.RealServers() {
		if n := rs.Stats.Conns.Load(); n != 4 || rs.Addr.Port() != 0 {
			t.Errorf("real server %s counted %d connections, want 4", rs.Addr, n)
		}
	}
}

// IPv6 (family: ipv6, ipvsadm's -6): the same service over the IPv6 lab,
// in the kernel (sh: by client address), both ports to one real server.
func TestFWMarkNAT6(t *testing.T) {
	l := newNATLab6(t, 2)
	fwmServe(l, 8080, 8443)
	markPorts(t, l.Director, l.VIP, []int{8080, 8443}, 3, "mangle")
	l.apply(fmt.Sprintf(`grace_period: 2s
virtual_servers:
  - fwmark: 3
    family: ipv6
    forwarding: nat
    scheduler: sh
    real_servers: [{address: "%s"}, {address: "%s"}]
`, l.RealAddrs[0], l.RealAddrs[1]))
	var first string
	for i := range 4 {
		port := []int{8080, 8443}[i%2]
		name, peer, err := l.askOnce(port)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		rs, got, _ := strings.Cut(name, ":")
		if got != fmt.Sprint(port) || peerHost(t, peer) != l.ClientAddr {
			t.Fatalf("asked port %d: %s answered, saw %s", port, name, peer)
		}
		if first == "" {
			first = rs
		} else if rs != first {
			t.Fatalf("sh sent the client to %s, then %s", first, rs)
		}
	}
	if l.d.Service("fwm6/3") == nil {
		t.Fatal("no service fwm6/3")
	}
}

// dr: the marked packets go unchanged to the real server's MAC; with
// persistence (scheduled through NFQUEUE and dr_pick) the client keeps its
// real server across ports 80 and 443.
func TestFWMarkDRPersistence(t *testing.T) {
	l := newDRLab(t, 2, false)
	any := netip.IPv4Unspecified()
	for i, rs := range l.Reals {
		serveKillable(t, rs, fmt.Sprintf("rs%d", i+1), netip.AddrPortFrom(any, 443))
	}
	markPorts(t, l.Director, l.VIP, []int{80, 443}, 9, "raw - 10")
	l.apply(fmt.Sprintf(`virtual_servers:
  - fwmark: 9
    forwarding: dr
    scheduler: rr
    persistence_timeout: 5m
    real_servers: [{address: %s}, {address: %s}]
`, l.RealAddrs[0], l.RealAddrs[1]))
	var first string
	for i := range 6 {
		port := []int{80, 443}[i%2]
		var c net.Conn
		err := l.Client.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.VIP, uint16(port)).String(), 3*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		name, _, err := (&clientConn{c: c, r: bufio.NewReader(c)}).ask()
		c.Close()
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		if first == "" {
			first = name
		} else if name != first {
			t.Fatalf("connection %d (port %d) went to %s, the first to %s: persistence must hold across ports", i, port, name, first)
		}
	}
	if n := l.d.Service("fwm/9").Stats.Conns.Load(); n < 6 {
		t.Fatalf("service scheduled %d connections, want 6", n)
	}
}

// The govs binary run on a keepalived.conf with keepalived's own
// firewall-mark service (as in its sample keepalived.conf.fwmark): the
// operator's mangle rule marks two ports, each client keeps its real server
// across both, and govsadm -L -n lists the service as ipvsadm does.
func TestFWMarkKeepalivedConf(t *testing.T) {
	lab := netns.NewLVS(t, 2)
	if rep := nft.ProbeKernel(lab.Director.FD()); rep.Err() != nil {
		t.Skipf("kernel dataplane not available here: %v", rep.Err())
	}
	adm, err := buildGovsadm()
	if err != nil {
		t.Fatal(err)
	}
	l := &natLab{LVS: lab, t: t}
	fwmServe(l, 8080, 8443)
	markPorts(t, lab.Director, lab.VIP, []int{8080, 8443}, 5, "mangle")
	var b strings.Builder
	b.WriteString("virtual_server fwmark 5 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  persistence_timeout 600\n  protocol TCP\n")
	for _, a := range lab.RealAddrs {
		fmt.Fprintf(&b, "  real_server %s {\n    weight 1\n    TCP_CHECK {\n      connect_port 8080\n      connect_timeout 1\n    }\n  }\n", a)
	}
	b.WriteString("}\n")
	dir := t.TempDir()
	conf, sock := filepath.Join(dir, "keepalived.conf"), filepath.Join(dir, "govs.sock")
	writeFile(t, conf, b.String())
	d := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", lab.Director.Name, govsBin, "--socket", sock, "run", "-c", conf), 5*time.Second)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := lab.Director.Exec("nft", "list", "ruleset")
			t.Logf("ruleset at failure:\n%s", out)
		}
	})
	srcs := lab.AddClientAddrs(4)
	loopback.WaitFor(t, "govs to serve the marked ports", func() bool { _, _, err := l.askFrom(srcs[0], 8080); return err == nil })
	used := map[string]bool{}
	for _, src := range srcs {
		var first string
		for i := range 4 {
			port := []int{8080, 8443}[i%2]
			name, _, err := l.askFrom(src, port)
			if err != nil {
				t.Fatalf("client %s port %d: %v", src, port, err)
			}
			rs, _, _ := strings.Cut(name, ":")
			if first == "" {
				first = rs
				used[rs] = true
			} else if rs != first {
				t.Fatalf("client %s went to %s, then to %s on port %d", src, first, rs, port)
			}
		}
	}
	if len(used) != 2 {
		t.Fatalf("4 clients used %v, want both real servers", used)
	}
	out, err := exec.Command(adm, "--socket", sock, "-L", "-n").CombinedOutput()
	want := fmt.Sprintf("FWM  5 rr persistent 600\n  -> %-28s Masq    1      ", lab.RealAddrs[0].String()+":0")
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("govsadm -L -n: %v\n%s\nwant it to contain %q", err, out, want)
	}
	t.Logf("govsadm -L -n:\n%s", out)
	// The connection table shows a flow with the VIP:port and real server
	// port it used (IPVS's entries do), not the real server's port 0.
	var c net.Conn
	if err := lab.Client.Do(func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(srcs[0], 0))}
		c, err = d.Dial("tcp", l.vip(8443).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name, _, err := (&clientConn{c: c, r: bufio.NewReader(c)}).ask()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{"rs1": 0, "rs2": 1}[strings.Split(name, ":")[0]]
	want = fmt.Sprintf("ESTABLISHED %-18s %-18s %s:8443", c.LocalAddr(), l.vip(8443), lab.RealAddrs[idx])
	out, err = exec.Command(adm, "--socket", sock, "-L", "-c", "-n").CombinedOutput()
	if err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("govsadm -L -c -n: %v\n%s\nwant a line with %q", err, out, want)
	}
}
