package test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/internal/forward/proxy"
	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// drLab is LVS-DR's topology: a client network, a router, and one L2
// segment (a bridge in the router's namespace) with the director and the
// real servers. The router sends the VIP to the director; the real
// servers' default route is the router, so their replies go straight to
// the client. The director holds the VIP on lo too (as with VRRP), which DR
// does not mind. The real servers are prepared by `govs realserver`.
//
//	client --- router ==br0== director
//	                    ||=== rs1, rs2, ...   (VIP on lo)
type drLab struct {
	t                        *testing.T
	v6                       bool
	Client, Router, Director *netns.NS
	Reals                    []*netns.NS
	RealAddrs                []netip.Addr
	VIP                      netip.Addr
	servers                  []*killableServer
	d                        *director.Director
	dp                       *nft.Dataplane
}

// newDRLab builds the lab with n real servers and runs the director in
// this process (its dataplane programs the director's namespace).
func newDRLab(t *testing.T, n int, v6 bool) *drLab {
	t.Helper()
	l := newDRTopology(t, n, v6)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l.dp = nft.New(log, nft.Options{NetNS: l.Director.FD(), Queues: 2, StatsInterval: 200 * time.Millisecond})
	l.d = director.New(log, forward.NewMulti(map[desired.Forwarding]director.Dataplane{
		desired.Proxy: proxy.New(log), desired.NAT: l.dp, desired.FullNAT: l.dp, desired.DR: l.dp,
	}))
	t.Cleanup(func() {
		if err := l.d.Shutdown(200 * time.Millisecond); err != nil {
			t.Logf("director shutdown: %v", err)
		}
	})
	return l
}

// newDRTopology builds the namespaces, prepares the real servers with
// `govs realserver` and starts their servers; no director runs yet.
func newDRTopology(t *testing.T, n int, v6 bool) *drLab {
	t.Helper()
	netns.Require(t)
	if v6 {
		netns.Require6(t)
	}
	l := &drLab{t: t, v6: v6,
		Client: netns.New(t, "drc"), Router: netns.New(t, "drr"), Director: netns.New(t, "drd")}
	// a(net, host) is an address of the lab's two networks (0: client, 1:
	// the segment); p its prefix length.
	a := func(nw, host int) string {
		if v6 {
			return fmt.Sprintf("fd79:%d::%x", nw, host)
		}
		return fmt.Sprintf("10.79.%d.%d", nw, host)
	}
	p := "/24"
	l.VIP = netip.MustParseAddr("10.79.9.100")
	if v6 {
		p = "/64"
		l.VIP = netip.MustParseAddr("fd79:9::100")
		for _, ns := range []*netns.NS{l.Client, l.Router, l.Director} {
			ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
			ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		}
	}
	vipPrefix := l.VIP.String() + "/32"
	if v6 {
		vipPrefix = l.VIP.String() + "/128"
	}
	netns.Link(l.Client, "eth0", a(0, 2)+p, l.Router, "c0", a(0, 1)+p)
	l.Client.IP("route", "add", "default", "via", a(0, 1))
	l.Router.IP("link", "add", "br0", "type", "bridge")
	l.Router.IP("link", "set", "br0", "up")
	l.Router.IP("addr", "add", a(1, 1)+p, "dev", "br0")
	l.Router.Sysctl("net.ipv4.ip_forward", "1")
	l.Router.Sysctl("net.ipv6.conf.all.forwarding", "1")
	port := func(ns *netns.NS, name, addr string) {
		netns.Link(l.Router, name, "", ns, "eth0", addr+p)
		l.Router.IP("link", "set", name, "master", "br0")
		ns.IP("route", "add", "default", "via", a(1, 1))
	}
	port(l.Director, "bd", a(1, 10))
	l.Director.IP("addr", "add", vipPrefix, "dev", "lo")
	l.Router.IP("route", "add", vipPrefix, "via", a(1, 10))
	for i := 1; i <= n; i++ {
		rs := netns.New(t, fmt.Sprintf("drs%d", i))
		if v6 {
			rs.Sysctl("net.ipv6.conf.all.accept_dad", "0")
			rs.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		}
		port(rs, fmt.Sprintf("b%d", i), a(1, 20+i))
		if out, err := rs.Exec(govsBin, "realserver", "--vip", l.VIP.String()); err != nil {
			t.Fatalf("govs realserver in %s: %v: %s", rs.Name, err, out)
		}
		l.Reals = append(l.Reals, rs)
		l.RealAddrs = append(l.RealAddrs, netip.MustParseAddr(a(1, 20+i)))
		any := netip.IPv4Unspecified()
		if v6 {
			any = netip.IPv6Unspecified()
		}
		l.servers = append(l.servers, serveKillable(t, rs, fmt.Sprintf("rs%d", i), netip.AddrPortFrom(any, 80)))
	}
	// Bridges forward only once their ports are past learning; the
	// segment is ready when the director reaches each real server.
	for i := range l.Reals {
		loopback.WaitFor(t, "the segment to forward", func() bool {
			return l.Director.Do(func() error {
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(l.RealAddrs[i], 80).String(), time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}) == nil
		})
	}
	if rep := nft.ProbeKernel(l.Director.FD()); rep.DRErr() != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("forwarding dr not available: %v", rep.DRErr())
		}
		t.Skipf("forwarding dr not available here: %v", rep.DRErr())
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := l.Director.Exec("nft", "list", "ruleset")
			t.Logf("director's ruleset at failure:\n%s", out)
		}
	})
	return l
}

// config is a DR service on VIP:80 over the real servers with the given
// weights (a negative weight leaves the real server out).
func (l *drLab) config(sched, extra string, weights ...int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual_servers:\n  - address: \"%s\"\n    forwarding: dr\n    scheduler: %s\n%s    real_servers:\n",
		netip.AddrPortFrom(l.VIP, 80), sched, extra)
	for i, w := range weights {
		if w >= 0 {
			fmt.Fprintf(&b, "      - {address: \"%s\", weight: %d}\n", netip.AddrPortFrom(l.RealAddrs[i], 80), w)
		}
	}
	return b.String()
}

func (l *drLab) apply(yaml string) {
	l.t.Helper()
	cfg, err := config.Parse("dr.yaml", []byte(yaml))
	if err != nil {
		l.t.Fatalf("config: %v", err)
	}
	if err := l.d.Apply(cfg); err != nil {
		l.t.Fatalf("apply: %v", err)
	}
}

func (l *drLab) dial() (*clientConn, error) {
	var c net.Conn
	err := l.Client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.VIP, 80).String(), 3*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &clientConn{c: c, r: bufio.NewReader(c)}, nil
}

// hold opens n connections through the VIP, asks each once, and returns
// them open with the real server that answered each.
func (l *drLab) hold(n int) ([]*clientConn, []string) {
	l.t.Helper()
	return l.holdSettled(n, false)
}

// holdSettled is hold; with settle, each connection waits until the
// director counts the ones before it active (lc, wlc see the counts of the
// flow map, which the statistics read every 200 ms).
func (l *drLab) holdSettled(n int, settle bool) ([]*clientConn, []string) {
	l.t.Helper()
	var conns []*clientConn
	var names []string
	for i := range n {
		if settle {
			vs := l.d.Service("tcp/" + netip.AddrPortFrom(l.VIP, 80).String())
			loopback.WaitFor(l.t, fmt.Sprintf("%d connections counted active", i), func() bool {
				active, inactive := 0, 0
				for _, rs := range vs.RealServers() {
					active += rs.Dest.ActiveConns()
					inactive += rs.Dest.InactiveConns()
				}
				return active == i && inactive == 0
			})
		}
		cc, err := l.dial()
		if err != nil {
			l.t.Fatalf("connection %d through the VIP: %v", len(conns)+1, err)
		}
		l.t.Cleanup(func() { cc.c.Close() })
		name, _, err := cc.ask()
		if err != nil {
			l.t.Fatalf("connection %d through the VIP: %v", len(conns)+1, err)
		}
		conns, names = append(conns, cc), append(names, name)
	}
	return conns, names
}

func count(names []string) map[string]int {
	out := map[string]int{}
	for _, n := range names {
		out[n]++
	}
	return out
}

// replyCounters puts counters in front of govs's rules on the director:
// packets to the VIP, and packets from it (replies, which DR must never
// bring to the director).
func (l *drLab) replyCounters() func() (toVIP, fromVIP int) {
	l.t.Helper()
	fam, ip := "ip", "ip"
	if l.v6 {
		fam, ip = "ip6", "ip6"
	}
	rules := fmt.Sprintf("table %s drtest { chain c { type filter hook prerouting priority -400; policy accept; "+
		"%s daddr %s counter; %s saddr %s counter; }; }", fam, ip, l.VIP, ip, l.VIP)
	if out, err := l.Director.Exec("nft", rules); err != nil {
		l.t.Skipf("needs the nft command for the director's counters: %v: %s", err, out)
	}
	re := regexp.MustCompile(`counter packets (\d+)`)
	return func() (int, int) {
		out, err := l.Director.Exec("nft", "list", "table", fam, "drtest")
		if err != nil {
			l.t.Fatalf("nft list: %v: %s", err, out)
		}
		m := re.FindAllStringSubmatch(out, -1)
		if len(m) != 2 {
			l.t.Fatalf("counters not found in %s", out)
		}
		a, _ := strconv.Atoi(m[0][1])
		b, _ := strconv.Atoi(m[1][1])
		return a, b
	}
}

func TestDRSchedulers(t *testing.T)  { testDRSchedulers(t, false) }
func TestDRSchedulers6(t *testing.T) { testDRSchedulers(t, true) }

// testDRSchedulers: every kind of scheduling distributes as it should
// through DR, the replies bypass the director, and persistence holds.
func testDRSchedulers(t *testing.T, v6 bool) {
	l := newDRLab(t, 3, v6)
	counters := l.replyCounters()
	for _, tc := range []struct {
		sched, extra string
		weights      []int
		n            int
		want         map[string]int // nil: checked below
	}{
		// wlc first: the connections closed by each case stay counted
		// inactive for the FIN timeout (120 s), as in IPVS, and wlc
		// counts them.
		{"wlc", "", []int{1, 1, 1}, 30, map[string]int{"rs1": 10, "rs2": 10, "rs3": 10}},
		{"rr", "", []int{1, 1, 1}, 30, map[string]int{"rs1": 10, "rs2": 10, "rs3": 10}},
		{"wrr", "", []int{3, 2, 1}, 60, map[string]int{"rs1": 30, "rs2": 20, "rs3": 10}},
		{"mh", "", []int{1, 1, 1}, 20, nil},
		{"rr", "    persistence_timeout: 60s\n", []int{1, 1, 1}, 20, nil},
	} {
		name := tc.sched
		if tc.extra != "" {
			name += "-persistent"
		}
		t.Run(name, func(t *testing.T) {
			l.t = t
			l.apply(l.config(tc.sched, tc.extra, tc.weights...))
			settle := tc.sched == "wlc"
			conns, names := l.holdSettled(tc.n, settle)
			got := count(names)
			t.Logf("%s over weights %v: %v", name, tc.weights, got)
			switch {
			case tc.want != nil:
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("%s spread %v, want %v", name, got, tc.want)
				}
			default:
				// mh hashes the client's address, persistence keeps the
				// client: one client, one real server.
				if len(got) != 1 {
					t.Fatalf("%s: one client went to %v, want one real server", name, got)
				}
			}
			// The director counts the open connections as active (from
			// its flow map) and the inbound packets; never an outbound one.
			vs := l.d.Service("tcp/" + netip.AddrPortFrom(l.VIP, 80).String())
			loopback.WaitFor(t, fmt.Sprintf("%d connections counted active", tc.n), func() bool {
				active := 0
				for _, rs := range vs.RealServers() {
					active += rs.Dest.ActiveConns()
				}
				return active == tc.n && vs.Stats.InPkts.Load() > 0
			})
			if out := vs.Stats.OutPkts.Load(); out != 0 {
				t.Fatalf("%d outbound packets counted: DR sees none", out)
			}
			// Each connection keeps its real server.
			for i, cc := range conns {
				if n, _, err := cc.ask(); err != nil || n != names[i] {
					t.Fatalf("connection %d: answered by %q (%v), first by %s", i, n, err, names[i])
				}
				cc.c.Close()
			}
		})
	}
	l.t = t
	to, from := counters()
	t.Logf("director saw %d packets to the VIP and %d from it", to, from)
	if to == 0 {
		t.Fatal("the counter of packets to the VIP saw nothing: the check below proves nothing")
	}
	if from != 0 {
		t.Fatalf("%d reply packets from the VIP reached the director: DR replies must bypass it", from)
	}
}

func TestDRZeroBrokenFlows(t *testing.T)  { testDRZeroBrokenFlows(t, false) }
func TestDRZeroBrokenFlows6(t *testing.T) { testDRZeroBrokenFlows(t, true) }

// testDRZeroBrokenFlows: 200 long-lived connections each keep talking to
// their own real server while a real server is added, another drained, a
// weight changed and the configuration reloaded (another scheduler).
func testDRZeroBrokenFlows(t *testing.T, v6 bool) {
	l := newDRLab(t, 4, v6)
	l.apply(l.config("rr", "", 1, 1, 1, -1))
	conns, names := l.hold(200)
	t.Logf("200 connections: %v", count(names))
	check := func(step string) {
		t.Helper()
		broken := 0
		for i, cc := range conns {
			if n, _, err := cc.ask(); err != nil || n != names[i] {
				broken++
				if broken <= 3 {
					t.Logf("%s: connection %d answered by %q (%v), first by %s", step, i, n, err, names[i])
				}
			}
		}
		t.Logf("%s: %d of %d connections kept their real server, %d broken", step, len(conns)-broken, len(conns), broken)
		if broken != 0 {
			t.Fatalf("%s: %d broken connections", step, broken)
		}
	}
	newFlows := func(step string, n int) map[string]int {
		t.Helper()
		_, ns := l.hold(n)
		got := count(ns)
		t.Logf("%s: %d new connections went to %v", step, n, got)
		return got
	}
	check("before")
	l.apply(l.config("rr", "", 1, 1, 1, 1))
	check("rs4 added")
	if got := newFlows("rs4 added", 8); got["rs4"] != 2 {
		t.Fatalf("rs4 added: new flows %v, want 2 of 8 on rs4", got)
	}
	l.apply(l.config("rr", "", 1, 0, 1, 1))
	check("rs2 drained")
	if got := newFlows("rs2 drained", 9); got["rs2"] != 0 {
		t.Fatalf("rs2 drained: new flows %v, want none on rs2", got)
	}
	// A new connection from the port of a connection pinned to the drained
	// rs2 (ended by a reset: no TIME_WAIT) is scheduled afresh, as IPVS's
	// conn_reuse_mode does, not sent to rs2 by the old pin.
	for i, cc := range conns {
		if names[i] != "rs2" {
			continue
		}
		local := cc.c.LocalAddr().(*net.TCPAddr)
		cc.c.(*net.TCPConn).SetLinger(0)
		cc.c.Close()
		var c net.Conn
		err := l.Client.Do(func() (err error) {
			d := net.Dialer{LocalAddr: local, Timeout: 3 * time.Second}
			c, err = d.Dial("tcp", netip.AddrPortFrom(l.VIP, 80).String())
			return err
		})
		if err != nil {
			t.Fatalf("reusing port %d: %v", local.Port, err)
		}
		again := &clientConn{c: c, r: bufio.NewReader(c)}
		n, _, err := again.ask()
		if err != nil || n == "rs2" {
			t.Fatalf("a new connection from the port of a flow pinned to the drained rs2: answered by %q (%v), want another real server", n, err)
		}
		t.Logf("a new connection from port %d (pinned to the drained rs2 before) went to %s", local.Port, n)
		conns[i], names[i] = again, n
		t.Cleanup(func() { c.Close() })
		break
	}
	// A new connection on the port of one the client closed is scheduled
	// afresh even when its real server is available (IPVS reuses a
	// TIME_WAIT entry so): two in a row from one port go to two real
	// servers under rr. (A stale pin would send both to the first: with mh
	// on several directors, a director would then disagree with the others
	// about a reused port.)
	var reused []string
	port := 0
	for range 2 {
		var c net.Conn
		err := l.Client.Do(func() (err error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{Port: port}, Timeout: 3 * time.Second}
			c, err = d.Dial("tcp", netip.AddrPortFrom(l.VIP, 80).String())
			return err
		})
		if err != nil {
			t.Fatalf("port reuse: %v", err)
		}
		port = c.LocalAddr().(*net.TCPAddr).Port
		n, _, err := (&clientConn{c: c, r: bufio.NewReader(c)}).ask()
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		if err != nil {
			t.Fatalf("port reuse: %v", err)
		}
		reused = append(reused, n)
	}
	if reused[0] == reused[1] {
		t.Fatalf("two connections in a row from port %d went to %v: the second followed the first's pin", port, reused)
	}
	l.apply(l.config("wrr", "", 3, 0, 1, 1))
	check("rs1 weight 3, scheduler wrr")
	l.apply(l.config("wrr", "", 3, 0, 1, 1))
	check("reloaded unchanged")
	l.apply(l.config("wlc", "", 1, 1, 1, 1))
	check("reloaded with wlc")
}

// TestDRRealServerKilled runs the govs binary as the director: a real
// server dies under load; once health checking notices, new flows go to the
// others, every one of them served; with every real server gone the sorry
// server takes the new flows.
func TestDRRealServerKilled(t *testing.T) {
	l := newDRTopology(t, 4, false)
	hc := "    health_check: {type: tcp, interval: 100ms, timeout: 200ms, rise: 1, fall: 2}\n"
	sorry := fmt.Sprintf("    sorry_server: \"%s\"\n", netip.AddrPortFrom(l.RealAddrs[3], 80))
	cfg := filepath.Join(t.TempDir(), "govs.yaml")
	writeFile(t, cfg, l.config("rr", hc+sorry, 1, 1, 1, -1))
	sock := filepath.Join(t.TempDir(), "govs.sock")
	d := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", l.Director.Name, govsBin, "--socket", sock, "run", "-c", cfg), 5*time.Second)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	// answered is who answers a new connection ("" when it fails).
	answered := func() string {
		cc, err := l.dial()
		if err != nil {
			return ""
		}
		defer cc.c.Close()
		n, _, _ := cc.ask()
		return n
	}
	// inARow waits until n new connections in a row are answered by one of
	// want.
	inARow := func(what string, n int, want ...string) {
		t.Helper()
		ok := 0
		loopback.WaitFor(t, what, func() bool {
			if slices.Contains(want, answered()) {
				ok++
			} else {
				ok = 0
			}
			return ok >= n
		})
	}
	inARow("three real servers serving", 6, "rs1", "rs2", "rs3")
	// Load while rs3 dies: short connections, one after the other.
	stop := make(chan struct{})
	loadDone := make(chan [2]int)
	go func() {
		var served, failed int
		for {
			select {
			case <-stop:
				loadDone <- [2]int{served, failed}
				return
			default:
			}
			if answered() != "" {
				served++
			} else {
				failed++
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	l.servers[2].kill()
	inARow("health checks to take rs3 out", 10, "rs1", "rs2")
	close(stop)
	load := <-loadDone
	t.Logf("under load while rs3 died and until its health check noticed: %d connections served, %d refused by the dead rs3", load[0], load[1])
	_, names := l.hold(30)
	got := count(names)
	t.Logf("after rs3 died: 30 new connections went to %v", got)
	if got["rs3"] != 0 || got["rs1"] != 15 || got["rs2"] != 15 {
		t.Fatalf("after rs3 died: %v, want 15 on rs1 and rs2 each", got)
	}
	l.servers[0].kill()
	l.servers[1].kill()
	inARow("the sorry server to stand in", 5, "rs4")
}

// TestDRRefusals: a DR real server behind a gateway is refused at load, as
// is a port different from the VIP's (config validation).
func TestDRRefusals(t *testing.T) {
	l := newDRLab(t, 1, false)
	cfg, err := config.Parse("dr.yaml", []byte(fmt.Sprintf(
		"virtual_servers:\n  - address: \"%s\"\n    forwarding: dr\n    real_servers:\n      - address: \"10.79.0.2:80\"\n",
		netip.AddrPortFrom(l.VIP, 80))))
	if err != nil {
		t.Fatal(err)
	}
	err = l.d.Apply(cfg)
	if err == nil || !strings.Contains(err.Error(), "not on a directly connected segment") {
		t.Fatalf("a real server behind a gateway: %v, want refused", err)
	}
	_, err = config.Parse("dr.yaml", []byte(fmt.Sprintf(
		"virtual_servers:\n  - address: \"%s\"\n    forwarding: dr\n    real_servers:\n      - address: \"%s\"\n",
		netip.AddrPortFrom(l.VIP, 80), netip.AddrPortFrom(l.RealAddrs[0], 8080))))
	if err == nil || !strings.Contains(err.Error(), "dr.yaml:5:") || !strings.Contains(err.Error(), "cannot change the port") {
		t.Fatalf("a real server port other than the VIP's: %v, want refused with its line", err)
	}
}

// TestDRGovsadm: govsadm -a ... -g makes a DR real server that serves
// through the VIP, -L -n shows Route, and -S / -C / -R round-trip it.
func TestDRGovsadm(t *testing.T) {
	l := newDRTopology(t, 2, false)
	adm, err := buildGovsadm()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "govs.yaml")
	writeFile(t, cfg, "virtual_servers: []\n")
	sock := filepath.Join(t.TempDir(), "govs.sock")
	d := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", l.Director.Name, govsBin, "--socket", sock, "run", "-c", cfg), 5*time.Second)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(adm, append([]string{"--socket", sock}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("govsadm %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	vip := netip.AddrPortFrom(l.VIP, 80).String()
	run("", "-A", "-t", vip, "-s", "rr")
	run("", "-a", "-t", vip, "-r", l.RealAddrs[0].String(), "-g")
	run("", "-a", "-t", vip, "-r", netip.AddrPortFrom(l.RealAddrs[1], 80).String(), "-g", "-w", "2")
	list := run("", "-L", "-n")
	t.Logf("govsadm -L -n:\n%s", list)
	for _, a := range l.RealAddrs {
		if !regexp.MustCompile(`-> ` + regexp.QuoteMeta(netip.AddrPortFrom(a, 80).String()) + ` +Route `).MatchString(list) {
			t.Fatalf("-L -n does not show %s:80 as Route:\n%s", a, list)
		}
	}
	serves := func(step string) {
		t.Helper()
		_, names := l.hold(4)
		if got := count(names); got["rs1"] != 2 || got["rs2"] != 2 {
			t.Fatalf("%s: 4 connections went to %v, want 2 on each", step, got)
		}
	}
	serves("added by govsadm")
	// The connection table lists the DR flows (from the flow map).
	held, heldBy := l.hold(1)
	conns := run("", "-L", "-c", "-n")
	t.Logf("govsadm -L -c -n with a connection open:\n%s", conns)
	local := held[0].c.LocalAddr().String()
	if !regexp.MustCompile(`TCP \S+ +ESTABLISHED ` + regexp.QuoteMeta(local) + ` +` + regexp.QuoteMeta(vip) + ` +`).MatchString(conns) {
		t.Fatalf("-L -c -n does not list the connection from %s (to %s):\n%s", local, heldBy[0], conns)
	}
	save := run("", "-S", "-n")
	if !strings.Contains(save, "-r "+netip.AddrPortFrom(l.RealAddrs[0], 80).String()+" -g -w 1") {
		t.Fatalf("-S -n does not save the DR real server with -g:\n%s", save)
	}
	run("", "-C")
	run(save, "-R")
	if again := run("", "-S", "-n"); again != save {
		t.Fatalf("-S after -R:\n%s\nwant:\n%s", again, save)
	}
	serves("restored by govsadm -R")
}

// TestDRStop: a stop drops new flows at once and keeps forwarding the
// established ones until they end (then it returns).
func TestDRStop(t *testing.T) {
	l := newDRLab(t, 2, false)
	l.apply(l.config("rr", "", 1, 1))
	conns, names := l.hold(2)
	done := make(chan error, 1)
	go func() { done <- l.d.Shutdown(30 * time.Second) }()
	loopback.WaitFor(t, "new connections refused", func() bool {
		var c net.Conn
		err := l.Client.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.VIP, 80).String(), 300*time.Millisecond)
			return err
		})
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	for i, cc := range conns {
		if n, _, err := cc.ask(); err != nil || n != names[i] {
			t.Fatalf("during the stop, connection %d: answered by %q (%v), want %s", i, n, err, names[i])
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the stop returned (%v) while 2 connections were open", err)
	default:
	}
	for _, cc := range conns {
		cc.c.Close()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stop did not return once the connections had ended")
	}
}

// TestDRUDP: UDP flows through DR: rr spreads new flows, each flow keeps its
// real server, and the replies come from the VIP (the real servers answer
// from the VIP they hold on lo).
func TestDRUDP(t *testing.T) {
	l := newDRLab(t, 3, false)
	for i, rs := range l.Reals {
		name := fmt.Sprintf("rs%d", i+1)
		var pc net.PacketConn
		if err := rs.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(l.VIP, 53).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			b := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(name), from)
			}
		}()
	}
	l.apply(fmt.Sprintf("virtual_servers:\n  - address: \"%s\"\n    protocol: udp\n    forwarding: dr\n    scheduler: rr\n    real_servers:\n"+
		"      - address: \"%s\"\n      - address: \"%s\"\n      - address: \"%s\"\n", netip.AddrPortFrom(l.VIP, 53),
		netip.AddrPortFrom(l.RealAddrs[0], 53), netip.AddrPortFrom(l.RealAddrs[1], 53), netip.AddrPortFrom(l.RealAddrs[2], 53)))
	ask := func(c net.Conn) (string, error) {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("q")); err != nil {
			return "", err
		}
		b := make([]byte, 64)
		n, err := c.Read(b) // a connected socket takes replies from the VIP only
		return string(b[:n]), err
	}
	var names []string
	var socks []net.Conn
	for range 30 {
		var c net.Conn
		if err := l.Client.Do(func() (err error) {
			c, err = net.Dial("udp", netip.AddrPortFrom(l.VIP, 53).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		n, err := ask(c)
		if err != nil {
			t.Fatalf("udp flow %d: %v", len(names)+1, err)
		}
		names, socks = append(names, n), append(socks, c)
	}
	got := count(names)
	t.Logf("30 udp flows: %v", got)
	if fmt.Sprint(got) != fmt.Sprint(map[string]int{"rs1": 10, "rs2": 10, "rs3": 10}) {
		t.Fatalf("udp rr spread %v, want 10 each", got)
	}
	for i, c := range socks {
		if n, err := ask(c); err != nil || n != names[i] {
			t.Fatalf("udp flow %d: second answer from %q (%v), first from %s", i, n, err, names[i])
		}
	}
}

// TestDRReloadRemovesService: a reload that removes a DR service keeps its
// established connections forwarded for the grace period; new connections
// to its VIP are not served.
func TestDRReloadRemovesService(t *testing.T) {
	l := newDRLab(t, 2, false)
	l.apply("grace_period: 30s\n" + l.config("rr", "", 1, 1))
	conns, names := l.hold(4)
	l.apply("grace_period: 30s\nvirtual_servers: []\n")
	for i, cc := range conns {
		if n, _, err := cc.ask(); err != nil || n != names[i] {
			t.Fatalf("after the service's removal, connection %d: answered by %q (%v), want %s", i, n, err, names[i])
		}
	}
	var c net.Conn
	err := l.Client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.VIP, 80).String(), time.Second)
		return err
	})
	if err == nil {
		c.Close()
		t.Fatal("a new connection to the removed service's VIP was served")
	}
	t.Logf("after the removal: 4 established connections kept their real servers; a new one: %v", err)
}

// TestDRExpireNodestConn: with expire_nodest_conn, removing a real server
// ends its pinned flows at once (their next packet is scheduled afresh and
// reset by a real server that does not know it); the others go on.
func TestDRExpireNodestConn(t *testing.T) {
	l := newDRLab(t, 2, false)
	l.apply(l.config("rr", "    expire_nodest_conn: true\n", 1, 1))
	conns, names := l.hold(4)
	l.apply(l.config("rr", "    expire_nodest_conn: true\n", 1, -1))
	ended, kept := 0, 0
	for i, cc := range conns {
		n, _, err := cc.ask()
		switch {
		case names[i] == "rs2" && err != nil:
			ended++
		case names[i] == "rs1" && err == nil && n == "rs1":
			kept++
		default:
			t.Fatalf("connection %d to %s after rs2's removal: answered by %q (%v)", i, names[i], n, err)
		}
	}
	t.Logf("rs2 removed with expire_nodest_conn: %d connections to it ended, %d to rs1 kept", ended, kept)
	if ended != 2 || kept != 2 {
		t.Fatalf("ended %d, kept %d; want 2 and 2", ended, kept)
	}
}
