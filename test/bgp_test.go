package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// The BGP lab: a real FRR router (zebra, bgpd, bfdd) between a client and
// three directors that announce one VIP over BGP (ECMP):
//
//	client 10.77.0.2 --- eth0 10.77.0.1  rt (FRR, AS 65000)  br0 10.77.1.1
//	                                                           |-- d1 10.77.1.11 (AS 65001)
//	                                                           |-- d2 10.77.1.12 (AS 65002)
//	                                                           |-- d3 10.77.1.13 (AS 65003)
//	                                                           `-- side 10.77.1.50
//
// Each director holds the VIP 10.77.9.100 on lo and runs govs with a
// proxy service VIP:80 over two real servers of its own on 127.0.0.1 that
// answer with their name ("d1-rs1"), so a client sees which director and
// real server carry its connection. "side" reaches one director directly
// (a static route), a path that does not depend on the BGP route.
const (
	bgpVIP      = "10.77.9.100"
	bgpVIP6     = "fd77:9::100"
	bgpRouter6  = "fd77:1::1"
	bgpRouter   = "10.77.1.1"
	bgpPassword = "govs-md5-s3cret"
	bgpGrace    = 15 * time.Second
)

type bgpLab struct {
	t      testing.TB
	dir    string
	client *netns.NS
	side   *netns.NS
	rt     *netns.NS
	dirs   []*bgpDirector
	bfd    bool
	v6     bool // IPv6 too: addresses, a second session and a service on bgpVIP6
	// fastBFD gives FRR's BFD sessions 200 ms intervals (profile "fast"),
	// to match directors with bfd_interval: 200ms: detection in 600 ms.
	fastBFD bool
}

type bgpDirector struct {
	lab  *bgpLab
	name string
	n    int
	ns   *netns.NS
	addr string
	cfg  string // its YAML file
	sock string
	rs   []*nameServer
	govs *daemon
}

func requireFRR(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/bfdd", "/usr/bin/vtysh"} {
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("needs FRR (%s): apt-get install frr", bin)
			}
			t.Skipf("needs FRR (%s): apt-get install frr", bin)
		}
	}
}

func newBGPLab(t *testing.T, bfd, v6 bool) *bgpLab {
	t.Helper()
	netns.Require(t)
	requireFRR(t)
	// A directory FRR (running as frr) can read.
	dir, err := os.MkdirTemp("", "govs-bgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	l := &bgpLab{t: t, dir: dir, bfd: bfd, v6: v6}
	l.client = netns.New(t, "bcl")
	l.rt = netns.New(t, "brt")
	l.side = netns.New(t, "bsd")
	if v6 {
		for _, ns := range []*netns.NS{l.client, l.rt} {
			ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
			ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		}
		l.rt.Sysctl("net.ipv6.conf.all.forwarding", "1")
		l.rt.Sysctl("net.ipv6.fib_multipath_hash_policy", "1")
	}
	netns.Link(l.client, "eth0", "10.77.0.2/24", l.rt, "eth0", "10.77.0.1/24")
	l.client.IP("route", "add", "default", "via", "10.77.0.1")
	if v6 {
		l.client.IP("addr", "add", "fd77::2/64", "dev", "eth0")
		l.rt.IP("addr", "add", "fd77::1/64", "dev", "eth0")
		l.client.IP("-6", "route", "add", "default", "via", "fd77::1")
	}
	l.rt.Sysctl("net.ipv4.ip_forward", "1")
	l.rt.Sysctl("net.ipv4.fib_multipath_hash_policy", "1") // L4 hash: flows spread by port
	l.rt.IP("link", "add", "br0", "type", "bridge")
	l.rt.IP("link", "set", "br0", "up")
	l.rt.IP("addr", "add", bgpRouter+"/24", "dev", "br0")
	if v6 {
		l.rt.IP("addr", "add", bgpRouter6+"/64", "dev", "br0")
	}
	netns.Link(l.rt, "ps", "", l.side, "eth0", "10.77.1.50/24")
	l.rt.IP("link", "set", "ps", "master", "br0")
	for i := 1; i <= 3; i++ {
		d := &bgpDirector{lab: l, n: i, name: fmt.Sprintf("d%d", i), addr: fmt.Sprintf("10.77.1.%d", 10+i)}
		d.ns = netns.New(t, "b"+d.name)
		if v6 {
			d.ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
			d.ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
		}
		port := "p" + d.name
		netns.Link(l.rt, port, "", d.ns, "eth0", d.addr+"/24")
		l.rt.IP("link", "set", port, "master", "br0")
		d.ns.IP("route", "add", "default", "via", bgpRouter)
		d.ns.IP("addr", "add", bgpVIP+"/32", "dev", "lo")
		if v6 {
			d.ns.IP("addr", "add", fmt.Sprintf("fd77:1::%d/64", 10+i), "dev", "eth0")
			d.ns.IP("-6", "route", "add", "default", "via", bgpRouter6)
			d.ns.IP("addr", "add", bgpVIP6+"/128", "dev", "lo")
		}
		d.sock = filepath.Join(dir, d.name+".sock")
		d.cfg = filepath.Join(dir, d.name+".yaml")
		for j := 1; j <= 2; j++ {
			rs := &nameServer{name: fmt.Sprintf("%s-rs%d", d.name, j), ns: d.ns, addr: fmt.Sprintf("127.0.0.1:%d", 8000+j)}
			rs.start(t)
			d.rs = append(d.rs, rs)
		}
		l.dirs = append(l.dirs, d)
	}
	writeFile(t, filepath.Join(dir, "password"), bgpPassword+"\n")
	l.startFRR()
	return l
}

// startFRR runs zebra, bfdd and bgpd in rt's namespace, without systemd:
// their pid files and vty sockets live in /var/run/frr/NS (vtysh -N NS).
func (l *bgpLab) startFRR() {
	t := l.t
	// /var/run/frr is made by FRR's service on a systemd machine; without
	// systemd (CI containers) the test makes it, owned by frr as FRR wants.
	run := "/var/run/frr/" + l.rt.Name
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "frr:frr", "/var/run/frr", run).CombinedOutput(); err != nil {
		t.Fatalf("chown frr: %v: %s", err, out)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	bfd, bfdConf := "", ""
	if l.bfd {
		bfd = " neighbor DIRS bfd\n"
	}
	if l.bfd && l.fastBFD {
		bfd = " neighbor DIRS bfd profile fast\n"
		bfdConf = "bfd\n profile fast\n  receive-interval 200\n  transmit-interval 200\n !\n!\n"
	}
	// With BFD the directors are explicit neighbors (FRR does not start
	// BFD for listen-range peers), and the hold time is 30s, so a route
	// gone within 15s of a power loss can only be BFD's doing. Without,
	// any of 10.77.1.0/24 may connect, with a 3s hold time.
	v6conf := ""
	if l.v6 {
		// IPv6 sessions over the directors' global addresses carry the
		// /128s; the IPv4 sessions the /32s.
		v6conf = `router bgp 65000
 neighbor DIRS6 peer-group
 neighbor DIRS6 remote-as external
 neighbor DIRS6 timers 1 3
 neighbor DIRS6 password ` + bgpPassword + `
 bgp listen range fd77:1::/64 peer-group DIRS6
 address-family ipv4 unicast
  no neighbor DIRS6 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor DIRS6 activate
  maximum-paths 8
 exit-address-family
`
	}
	timers := "1 3"
	if l.bfd {
		timers = "10 30"
	}
	neighbors := " bgp listen range 10.77.1.0/24 peer-group DIRS"
	if l.bfd {
		neighbors = ""
		for i := 1; i <= 3; i++ {
			neighbors += fmt.Sprintf(" neighbor 10.77.1.%d peer-group DIRS\n", 10+i)
		}
	}
	conf := map[string]string{
		"zebra": "hostname rt\nlog stdout informational\n",
		"bfdd":  "hostname rt\nlog stdout informational\n" + bfdConf,
		"bgpd": `hostname rt
log stdout informational
router bgp 65000
 bgp router-id 10.77.1.1
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor DIRS peer-group
 neighbor DIRS remote-as external
 neighbor DIRS timers ` + timers + `
 neighbor DIRS password ` + bgpPassword + `
` + bfd + neighbors + `
 address-family ipv4 unicast
  maximum-paths 8
 exit-address-family
` + v6conf,
	}
	daemons := []string{"zebra", "bgpd"}
	if l.bfd {
		daemons = []string{"zebra", "bfdd", "bgpd"}
	}
	for _, name := range daemons {
		file := filepath.Join(l.dir, name+".conf")
		if err := os.WriteFile(file, []byte(conf[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"netns", "exec", l.rt.Name, "/usr/lib/frr/" + name, "-N", l.rt.Name, "-f", file,
			"-i", filepath.Join(run, name+".pid"), "-u", "frr", "-g", "frr"}
		if name != "zebra" {
			args = append(args, "-P", "0") // no vty TCP port; vtysh uses the socket
		}
		d := runDaemon(t, name, exec.Command("ip", args...), 5*time.Second)
		loopback.WaitFor(t, name+" to start", func() bool {
			select {
			case <-d.done:
				t.Fatalf("%s exited: %v\n%s", name, d.err, d.log())
			default:
			}
			_, err := os.Stat(filepath.Join(run, name+".vty"))
			return err == nil
		})
	}
}

// vtysh runs a command on the router.
func (l *bgpLab) vtysh(cmd string) string {
	out, err := exec.Command("vtysh", "-N", l.rt.Name, "-c", cmd).Output()
	if err != nil {
		l.t.Fatalf("vtysh %q: %v", cmd, err)
	}
	return string(out)
}

// nexthops are the router's installed next hops for the VIP, sorted.
func (l *bgpLab) nexthops() []string { return l.nexthopsOf("ip", bgpVIP+"/32") }

// nexthopsOf are the installed next hops of prefix in the router's "ip"
// or "ipv6" table.
func (l *bgpLab) nexthopsOf(table, prefix string) []string {
	var routes map[string][]struct {
		Protocol  string `json:"protocol"`
		Selected  bool   `json:"selected"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
			FIB    bool   `json:"fib"`
		} `json:"nexthops"`
	}
	out := l.vtysh("show " + table + " route " + prefix + " json")
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		l.t.Fatalf("show ip route json: %v: %s", err, out)
	}
	var hops []string
	for _, r := range routes[prefix] {
		if r.Protocol != "bgp" || !r.Selected || !r.Installed {
			continue
		}
		for _, h := range r.Nexthops {
			if h.FIB {
				hops = append(hops, h.IP)
			}
		}
	}
	slices.Sort(hops)
	return hops
}

// waitNexthops waits until the router's next hops for the VIP are exactly
// those of dirs and returns when that was first seen.
func (l *bgpLab) waitNexthops(what string, within time.Duration, dirs ...*bgpDirector) time.Time {
	l.t.Helper()
	var want []string
	for _, d := range dirs {
		want = append(want, d.addr)
	}
	slices.Sort(want)
	deadline := time.Now().Add(within)
	var got []string
	for time.Now().Before(deadline) {
		if got = l.nexthops(); slices.Equal(got, want) {
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("%s: the router's next hops for %s are %v, want %v within %v\n%s\n%s", what, bgpVIP, got, want, within,
		l.vtysh("show bgp summary"), l.rt.IP("route", "show", bgpVIP))
	return time.Time{}
}

// writeConfig writes the director's govs YAML; extra goes under the service.
func (d *bgpDirector) writeConfig(extra string) {
	peer6, svc6 := "", ""
	if d.lab.v6 {
		peer6 = fmt.Sprintf("\n    - {address: %q, asn: 65000, hold_time: 3s, keepalive: 1s, password_file: %s}", bgpRouter6, filepath.Join(d.lab.dir, "password"))
		svc6 = fmt.Sprintf(`  - name: web6
    address: "[%s]:80"
    forwarding: proxy
    quorum: 2
    alpha: true
    health_check: {type: tcp, interval: 300ms, timeout: 300ms, rise: 1, fall: 1}
    real_servers:
      - address: 127.0.0.1:8001
      - address: 127.0.0.1:8002
`, bgpVIP6)
	}
	bfd, hold, keepalive := "", "3s", "1s"
	if d.lab.bfd {
		bfd, hold, keepalive = "\n      bfd: true\n      bfd_interval: 200ms", "30s", "10s"
	}
	writeFile(d.lab.t, d.cfg, fmt.Sprintf(`api: {socket: %s}
grace_period: %s
bgp:
  asn: %d
  router_id: %s
  announce_delay: 1s
  peers:
    - address: %s
      asn: 65000
      hold_time: %s
      keepalive: %s
      password_file: %s%s%s
virtual_servers:
  - name: web
    address: %s:80
    forwarding: proxy
    scheduler: rr
    quorum: 2
    alpha: true
    health_check: {type: tcp, interval: 300ms, timeout: 300ms, rise: 1, fall: 1}
    real_servers:
      - address: 127.0.0.1:8001
      - address: 127.0.0.1:8002
%s%s`, d.sock, bgpGrace, 65000+d.n, d.addr, bgpRouter, hold, keepalive, filepath.Join(d.lab.dir, "password"), bfd, peer6, bgpVIP, extra, svc6))
}

func (d *bgpDirector) start() {
	t := d.lab.t
	t.Helper()
	if _, err := os.Stat(d.cfg); err != nil {
		d.writeConfig("")
	}
	cmd := exec.Command("ip", "netns", "exec", d.ns.Name, govsBin, "run", "-c", d.cfg)
	cmd.Env = append(os.Environ(), "GOVS_SOCKET="+d.sock)
	d.govs = runDaemon(t, "govs in "+d.name, cmd, 5*time.Second)
	loopback.WaitFor(t, "govs to start in "+d.name, func() bool {
		select {
		case <-d.govs.done:
			t.Fatalf("govs in %s exited: %v\n%s", d.name, d.govs.err, d.govs.log())
		default:
		}
		return strings.Contains(d.govs.log(), "govs running")
	})
}

func (d *bgpDirector) status() *api.BGP {
	d.lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := api.GetBGP(ctx, api.NewUnixClient(d.sock))
	if err != nil {
		d.lab.t.Fatalf("%s: GET /api/v1/bgp: %v", d.name, err)
	}
	return st
}

func (d *bgpDirector) metrics() string {
	d.lab.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}}}
	resp, err := c.Get("http://govs/metrics")
	if err != nil {
		d.lab.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// nameServer is a real server in a director's namespace: each line it
// reads it answers with its name and the line.
type nameServer struct {
	name, addr string
	ns         *netns.NS
	mu         sync.Mutex
	ln         net.Listener
	conns      map[net.Conn]bool
}

func (s *nameServer) start(t testing.TB) {
	t.Helper()
	err := s.ns.Do(func() (err error) {
		s.ln, err = net.Listen("tcp", s.addr)
		return err
	})
	if err != nil {
		t.Fatalf("real server %s: %v", s.name, err)
	}
	s.mu.Lock()
	s.conns = map[net.Conn]bool{}
	ln := s.ln
	s.mu.Unlock()
	t.Cleanup(s.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, s.name+" "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// stop closes the listener and every connection, as a crashed server.
func (s *nameServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
}

// flow is a long-lived client connection to the VIP.
type flow struct {
	c     net.Conn
	r     *bufio.Reader
	first string // the real server that answered first
}

func dialFlow(ns *netns.NS) (*flow, error) { return dialFlowTo(ns, bgpVIP+":80") }

func dialFlowTo(ns *netns.NS, addr string) (*flow, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := &flow{c: c, r: bufio.NewReader(c)}
	if f.first, err = f.ping(); err != nil {
		c.Close()
		return nil, err
	}
	return f, nil
}

// ping exchanges one line and returns the real server that answered.
func (f *flow) ping() (string, error) { return f.pingWithin(3 * time.Second) }

// pingWithin is ping waiting up to d for the answer.
func (f *flow) pingWithin(d time.Duration) (string, error) {
	f.c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(f.c, "ping\n"); err != nil {
		return "", err
	}
	line, err := f.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	name, rest, _ := strings.Cut(line, " ")
	if rest != "ping\n" {
		return "", fmt.Errorf("bad answer %q", line)
	}
	return name, nil
}

func directorOf(rs string) string { d, _, _ := strings.Cut(rs, "-"); return d }

// openFlows opens n connections through the router and counts them per
// director.
func (l *bgpLab) openFlows(n int) ([]*flow, map[string]int) {
	l.t.Helper()
	var flows []*flow
	per := map[string]int{}
	for range n {
		f, err := dialFlow(l.client)
		if err != nil {
			l.t.Fatalf("connection %d through the router: %v", len(flows), err)
		}
		flows = append(flows, f)
		per[directorOf(f.first)]++
	}
	l.t.Cleanup(func() {
		for _, f := range flows {
			f.c.Close()
		}
	})
	return flows, per
}

func TestBGPAnnounceECMPWithdrawAndDetect(t *testing.T) {
	l := newBGPLab(t, false, false)
	d1, d2, d3 := l.dirs[0], l.dirs[1], l.dirs[2]
	for _, d := range l.dirs {
		d.start()
	}
	// 1. Every healthy director announces the VIP: three ECMP next hops.
	l.waitNexthops("three directors up", 30*time.Second, d1, d2, d3)
	st := d1.status()
	if len(st.Peers) != 1 || !st.Peers[0].Up || st.Peers[0].Address != bgpRouter || st.Peers[0].HoldTime != 3 {
		t.Fatalf("d1 /api/v1/bgp peers: %+v", st.Peers)
	}
	if len(st.VIPs) != 1 || st.VIPs[0].Prefix != bgpVIP+"/32" || !st.VIPs[0].Announced || st.ASN != 65001 {
		t.Fatalf("d1 /api/v1/bgp: %+v", st)
	}
	m := d1.metrics()
	for _, want := range []string{`govs_bgp_session_up{peer="` + bgpRouter + `"} 1`, `govs_bgp_announced{prefix="` + bgpVIP + `/32"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("d1 /metrics lacks %s", want)
		}
	}
	out := l.vtysh("show bgp ipv4 unicast " + bgpVIP + "/32 json")
	if strings.Count(out, `"multipath":true`) < 2 {
		t.Errorf("the router does not use the three paths as multipath:\n%s", out)
	}
	flows, per := l.openFlows(30)
	t.Logf("30 connections through the router: %v", per)
	if len(per) < 2 {
		t.Errorf("the router's ECMP sent all 30 connections to one director: %v", per)
	}
	for _, f := range flows {
		f.c.Close()
	}

	// 2. d1 loses its quorum (one of two real servers, quorum 2): its route
	// is withdrawn; restored, it comes back after the announce delay.
	t0 := time.Now()
	d1.rs[1].stop()
	seen := l.waitNexthops("d1 below quorum", 15*time.Second, d2, d3)
	t.Logf("quorum loss to route withdrawn at the router: %v", seen.Sub(t0).Round(time.Millisecond))
	if st := d1.status(); st.VIPs[0].Announced || st.VIPs[0].Healthy || st.VIPs[0].Flaps != 1 {
		t.Errorf("d1 after quorum loss: %+v", st.VIPs[0])
	}
	t0 = time.Now()
	d1.rs[1].start(t)
	seen = l.waitNexthops("d1 healthy again", 15*time.Second, d1, d2, d3)
	back := seen.Sub(t0)
	t.Logf("quorum back to route re-announced: %v (announce_delay 1s)", back.Round(time.Millisecond))
	if back < time.Second {
		t.Errorf("re-announced after %v, before the 1s announce_delay", back)
	}

	// 3. Active-standby over BGP: d3 prepends its AS twice (a reload);
	// the router then prefers the shorter paths of d1 and d2.
	d3.writeConfig("    bgp: {as_path_prepend: 2, communities: [\"65003:100\"], med: 20}\n")
	d3.govs.signal(t, syscall.SIGHUP)
	l.waitNexthops("d3 prepends", 15*time.Second, d1, d2)
	out = l.vtysh("show bgp ipv4 unicast " + bgpVIP + "/32 json")
	if !strings.Contains(out, "65003 65003 65003") || !strings.Contains(out, "65003:100") {
		t.Errorf("d3's path lacks the prepend or the community:\n%s", out)
	}
	d3.writeConfig("")
	d3.govs.signal(t, syscall.SIGHUP)
	l.waitNexthops("d3 without prepend", 15*time.Second, d1, d2, d3)

	// 4. SIGTERM withdraws first, then drains: a connection that reaches
	// d2 directly (not by the BGP route) keeps working while the route is
	// gone, until it ends; d2 then exits 0.
	l.side.IP("route", "add", bgpVIP+"/32", "via", d2.addr)
	side, err := dialFlow(l.side)
	if err != nil || directorOf(side.first) != "d2" {
		t.Fatalf("side connection to d2: %v %q", err, side.first)
	}
	defer side.c.Close()
	t0 = time.Now()
	d2.govs.signal(t, syscall.SIGTERM)
	seen = l.waitNexthops("d2 stopping", 10*time.Second, d1, d3)
	t.Logf("SIGTERM to route withdrawn at the router: %v", seen.Sub(t0).Round(time.Millisecond))
	for i := range 10 {
		if rs, err := side.ping(); err != nil || directorOf(rs) != "d2" {
			t.Fatalf("established connection through d2 broken %v after SIGTERM (ping %d): %q %v", time.Since(t0), i, rs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case <-d2.govs.done:
		t.Fatal("d2 exited while a connection was still open")
	default:
	}
	side.c.Close()
	select {
	case <-d2.govs.done:
		if d2.govs.err != nil {
			t.Errorf("d2 exit: %v", d2.govs.err)
		}
	case <-time.After(bgpGrace + 10*time.Second):
		t.Fatal("d2 did not exit after its last connection ended")
	}
	log := d2.govs.log()
	if w, s := strings.Index(log, "routes withdrawn before draining"), strings.Index(log, "stopped"); w < 0 || s < w {
		t.Errorf("d2 did not withdraw before draining:\n%s", log)
	}
	l.side.IP("route", "del", bgpVIP+"/32")

	// 5. A director returns: the router's hashing is not resilient, so
	// connections on the other directors move too. Informative: the
	// baseline the consistent-hashing and sync work will improve.
	flows, per = l.openFlows(60)
	t.Logf("60 connections over d1 and d3: %v", per)
	d2.start()
	l.waitNexthops("d2 back", 30*time.Second, d1, d2, d3)
	moved := 0
	for _, f := range flows {
		if rs, err := f.ping(); err != nil || rs != f.first {
			moved++
		}
	}
	t.Logf("BASELINE: %d of %d established connections broke when d2 returned (the router re-hashed them to another director; proxy state does not follow)", moved, len(flows))
	for _, f := range flows {
		f.c.Close()
	}

	// 6. kill -9 of d2: its kernel closes the BGP session's socket, so the
	// router notices at once. A director that loses power (its link cut
	// and the process killed at the same instant, d3) is noticed by BFD or
	// the hold timer.
	t0 = time.Now()
	d2.govs.cmd.Process.Kill()
	seen = l.waitNexthops("d2 killed", 15*time.Second, d1, d3)
	t.Logf("kill -9 of d2 to route gone at the router: %v (the kernel closes its TCP session)", seen.Sub(t0).Round(time.Millisecond))
	t0 = time.Now()
	d3.ns.IP("link", "set", "eth0", "down")
	d3.govs.cmd.Process.Kill()
	seen = l.waitNexthops("d3 lost power", 15*time.Second, d1)
	t.Logf("power loss of d3 (link cut + kill -9) to route gone at the router: %v (hold timer 3s)", seen.Sub(t0).Round(time.Millisecond))
}

// TestBGPBFD: with BFD (gobgp's, against FRR's bfdd) a director that loses
// power is noticed well within the 30s hold time.
func TestBGPBFD(t *testing.T) {
	l := newBGPLab(t, true, false)
	d1, d2 := l.dirs[0], l.dirs[1]
	d1.start()
	d2.start()
	l.waitNexthops("two directors up", 30*time.Second, d1, d2)
	loopback.WaitFor(t, "BFD up on d2", func() bool { return d2.status().Peers[0].BFD == "up" })
	// FRR restarts its BFD session when the BGP session first comes up,
	// which gobgp takes for a failure: one reset, then it is steady.
	l.waitNexthops("steady", 30*time.Second, d1, d2)
	// Steady: BFD up in ten reads 100 ms apart (the reset may come late on
	// a loaded machine; a fixed pause then saw it down).
	upFor := 0
	loopback.WaitFor(t, "BFD up on d2 for a second", func() bool {
		if st := d2.status(); st.Peers[0].HoldTime == 30 && st.Peers[0].BFD == "up" {
			upFor++
		} else {
			upFor = 0
		}
		time.Sleep(100 * time.Millisecond)
		return upFor >= 10
	})
	t0 := time.Now()
	d2.ns.IP("link", "set", "eth0", "down")
	d2.govs.cmd.Process.Kill()
	// Within 15s: the 30s hold timer cannot have done it.
	seen := l.waitNexthops("d2 lost power", 15*time.Second, d1)
	t.Logf("power loss of d2 to route gone at the router: %v (BFD 200ms x3, hold time 30s)", seen.Sub(t0).Round(time.Millisecond))
	if !strings.Contains(l.vtysh("show bfd peers brief"), "down") {
		t.Errorf("FRR's BFD session with d2 is not down:\n%s", l.vtysh("show bfd peers"))
	}
}

// TestBGPIPv6: the /128 of an IPv6 service goes over IPv6 sessions: three
// ECMP next hops, one fewer when a director loses its quorum, and IPv6
// clients reach the service through the router.
func TestBGPIPv6(t *testing.T) {
	l := newBGPLab(t, false, true)
	for _, d := range l.dirs {
		d.start()
	}
	prefix := bgpVIP6 + "/128"
	waitCount := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var got []string
		for time.Now().Before(deadline) {
			if got = l.nexthopsOf("ipv6", prefix); len(got) == n {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: the router's IPv6 next hops for %s are %v, want %d\n%s", what, prefix, got, n, l.vtysh("show bgp ipv6 unicast summary"))
	}
	waitCount("three directors up", 3)
	l.waitNexthops("IPv4 beside IPv6", 30*time.Second, l.dirs...)
	per := map[string]int{}
	for range 20 {
		f, err := dialFlowTo(l.client, "["+bgpVIP6+"]:80")
		if err != nil {
			t.Fatalf("IPv6 connection through the router: %v", err)
		}
		per[directorOf(f.first)]++
		f.c.Close()
	}
	t.Logf("20 IPv6 connections through the router: %v", per)
	l.dirs[0].rs[1].stop()
	waitCount("d1 below quorum", 2)
	l.dirs[0].rs[1].start(t)
	waitCount("d1 back", 3)
}
