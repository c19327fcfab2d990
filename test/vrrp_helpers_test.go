package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/test/netns"
)

// The VRRP lab is one Ethernet segment, a bridge in the client's namespace:
//
//	client 10.88.0.2 (br0) ---+--- p1 --- eth0 10.88.0.11  router r1
//	                          +--- p2 --- eth0 10.88.0.12  router r2
//
// (fd88::2, fd88::11, fd88::12 for IPv6.) Each router runs govs or
// keepalived in its namespace, and a tiny UDP echo server bound to the VIP
// (with IP_FREEBIND, so it exists before the router holds the VIP) that
// answers with the router's name. The client probes the VIP every 2 ms and
// records who answered when, so the failover time is what a client sees:
// the time without answers. A router "crashes" by having its bridge port
// cut and its daemon killed with SIGKILL at the same instant: the VIP it
// held stays on its interface, as on a machine that lost power, but
// nothing reaches it any more.
type vrrpLab struct {
	t       *testing.T
	dir     string
	client  *netns.NS
	routers []*router
	v6      bool
	vip     netip.Addr
	prefix  int
}

// router is one VRRP router of the lab and the daemon it runs.
type router struct {
	lab  *vrrpLab
	name string
	ns   *netns.NS
	addr netip.Addr
	port string // its bridge port in the client namespace
	// vipDev is where the VIP goes when master: eth0, or the VMAC
	// interface of use_vmac.
	vipDev string

	govs *daemon
	ka   *keepalived
}

const vrrpEchoPort = 7000

func requireKeepalived(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("needs keepalived for the interoperability tests (apt-get install keepalived)")
	}
}

// newVRRPLab builds the segment with two routers.
func newVRRPLab(t *testing.T, v6 bool) *vrrpLab {
	t.Helper()
	netns.Require(t)
	l := &vrrpLab{t: t, dir: t.TempDir(), v6: v6, vip: netip.MustParseAddr("10.88.0.100"), prefix: 24}
	if v6 {
		l.vip, l.prefix = netip.MustParseAddr("fd88::100"), 64
	}
	l.client = netns.New(t, "vcl")
	noDAD := func(ns *netns.NS) {
		// Addresses usable at once (no duplicate address detection), so an
		// IPv6 router has its link-local source address when it starts.
		ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
		ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	}
	noDAD(l.client)
	l.client.IP("link", "add", "br0", "type", "bridge")
	l.client.IP("link", "set", "br0", "up")
	l.client.IP("addr", "add", l.addr(2), "dev", "br0")
	for i := 1; i <= 2; i++ {
		r := &router{lab: l, name: fmt.Sprintf("r%d", i), port: fmt.Sprintf("p%d", i)}
		r.ns = netns.New(t, "v"+r.name)
		noDAD(r.ns)
		netns.Link(l.client, r.port, "", r.ns, "eth0", l.addr(10+i))
		l.client.IP("link", "set", r.port, "master", "br0")
		r.addr = netip.MustParsePrefix(l.addr(10 + i)).Addr()
		r.echo()
		l.routers = append(l.routers, r)
	}
	return l
}

// addr is the lab address with host part n, in CIDR form.
func (l *vrrpLab) addr(n int) string {
	if l.v6 {
		return fmt.Sprintf("fd88::%d/64", n)
	}
	return fmt.Sprintf("10.88.0.%d/24", n)
}

func (l *vrrpLab) vipCIDR() string { return fmt.Sprintf("%s/%d", l.vip, l.prefix) }

// echo serves the UDP echo on VIP:7000 in the router's namespace.
func (r *router) echo() {
	t := r.lab.t
	var pc net.PacketConn
	err := r.ns.Do(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) })
			return serr
		}}
		pc, err = lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(r.lab.vip, vrrpEchoPort).String())
		return err
	})
	if err != nil {
		t.Fatalf("echo server in %s: %v", r.name, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(r.name+" "), b[:n]...), from)
		}
	}()
}

// hasVIP reports whether the router's eth0 (or vipDev) holds the VIP.
func (r *router) hasVIP() bool {
	dev := r.vipDev
	if dev == "" {
		dev = "eth0"
	}
	out, err := r.ns.Exec("ip", "-br", "addr", "show", "dev", dev)
	return err == nil && strings.Contains(out, " "+r.lab.vipCIDR())
}

// waitMaster waits until r holds the VIP and the other routers do not.
func (l *vrrpLab) waitMaster(r *router, within time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := r.hasVIP()
		for _, o := range l.routers {
			if o != r && o.hasVIP() && o.alive() {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s did not become the only master within %v", r.name, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether the router is connected to the segment.
func (r *router) alive() bool {
	f := strings.Fields(r.lab.client.IP("-br", "link", "show", "dev", r.port))
	return len(f) > 1 && f[1] == "UP"
}

// vrrpOpts describes a router's VRRP instance.
type vrrpOpts struct {
	version  int
	interval time.Duration
	priority int
	master   bool   // state MASTER hint
	extra    string // extra govs YAML keys for the instance, indented 4
	top      string // top-level govs YAML; default "virtual_servers: []"
	auth     string // VRRPv2 PASS password (the AH key with ah)
	ah       bool   // auth_type AH instead of PASS
	unicast  bool   // unicast to the other router instead of multicast
}

// peer is the other router's address.
func (r *router) peer() netip.Addr {
	for _, o := range r.lab.routers {
		if o != r {
			return o.addr
		}
	}
	return netip.Addr{}
}

func authType(o vrrpOpts) string {
	if o.ah {
		return "AH"
	}
	return "PASS"
}

// startGovs runs govs in the router's namespace with one VRRP instance.
func (r *router) startGovs(o vrrpOpts) *daemon {
	t := r.lab.t
	t.Helper()
	state := "BACKUP"
	if o.master {
		state = "MASTER"
	}
	if o.top == "" {
		o.top = "virtual_servers: []\n"
	}
	if o.auth != "" {
		o.extra += "    authentication: {auth_type: " + authType(o) + ", auth_pass: " + o.auth + "}\n"
	}
	if o.unicast {
		o.extra += fmt.Sprintf("    unicast_src_ip: %s\n    unicast_peers: [%s]\n", r.addr, r.peer())
	}
	cfg := fmt.Sprintf(`api: {socket: %s}
%svrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    version: %d
    priority: %d
    advert_int: %v
    state: %s
    virtual_ipaddresses: [%s]
%s`, filepath.Join(r.lab.dir, r.name+".sock"), o.top, o.version, o.priority, o.interval, state, r.lab.vipCIDR(), o.extra)
	file := filepath.Join(r.lab.dir, r.name+".yaml")
	writeFile(t, file, cfg)
	cmd := exec.Command("ip", "netns", "exec", r.ns.Name, govsBin, "run", "-c", file)
	cmd.Env = append(os.Environ(), "GOVS_SOCKET="+filepath.Join(r.lab.dir, r.name+".sock"))
	d := runDaemon(t, "govs in "+r.name, cmd, 10*time.Second)
	loopback.WaitFor(t, "govs to start in "+r.name, func() bool {
		select {
		case <-d.done:
			t.Fatalf("govs in %s exited: %v\n%s", r.name, d.err, d.log())
		default:
		}
		return strings.Contains(d.log(), "govs running")
	})
	r.govs = d
	return d
}

// keepalived is a keepalived process started by a test: the parent and
// its VRRP child, known by their PIDs.
type keepalived struct {
	cmd      *exec.Cmd
	out      *daemon // its log
	vrrpPID  string  // file holding the VRRP child's PID
	done     chan struct{}
	killOnce sync.Once
}

// startKeepalived runs keepalived (VRRP only, no respawn) in the router's
// namespace with the equivalent instance.
func (r *router) startKeepalived(o vrrpOpts) *keepalived {
	t := r.lab.t
	t.Helper()
	requireKeepalived(t)
	state := "BACKUP"
	if o.master {
		state = "MASTER"
	}
	adv := strconv.FormatFloat(o.interval.Seconds(), 'f', -1, 64)
	extra := ""
	if o.auth != "" {
		extra += "  authentication {\n    auth_type " + authType(o) + "\n    auth_pass " + o.auth + "\n  }\n"
	}
	if o.unicast {
		extra += fmt.Sprintf("  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }\n", r.addr, r.peer())
	}
	conf := fmt.Sprintf(`global_defs {
  router_id %s
}
vrrp_instance VI_1 {
  state %s
  interface eth0
  virtual_router_id 51
  version %d
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s dev eth0
  }
%s}
`, r.name, state, o.version, o.priority, adv, r.lab.vipCIDR(), extra)
	base := filepath.Join(r.lab.dir, r.name+"-keepalived")
	writeFile(t, base+".conf", conf)
	k := &keepalived{out: &daemon{}, vrrpPID: base + ".vrrp.pid", done: make(chan struct{})}
	os.Remove(k.vrrpPID)
	k.cmd = exec.Command("ip", "netns", "exec", r.ns.Name, "keepalived", "-n", "-l", "-D", "-P", "-R",
		"-f", base+".conf", "-p", base+".pid", "-r", k.vrrpPID, "-c", base+".check.pid")
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		select {
		case <-k.done:
		default:
			k.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-k.done:
			case <-time.After(5 * time.Second):
				k.kill()
			}
		}
		if t.Failed() {
			t.Logf("keepalived in %s:\n%s", r.name, k.out.log())
		}
	})
	loopback.WaitFor(t, "keepalived to start in "+r.name, func() bool {
		return strings.Contains(k.out.log(), "Startup complete")
	})
	r.ka = k
	return k
}

// kill ends keepalived with SIGKILL, the VRRP child first (its parent
// would otherwise stop it cleanly), each by its PID.
func (k *keepalived) kill() {
	k.killOnce.Do(func() {
		if b, err := os.ReadFile(k.vrrpPID); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		k.cmd.Process.Kill()
		<-k.done
	})
}

// crash cuts the router off the segment and kills its daemon with SIGKILL,
// and returns the instant of the crash.
func (r *router) crash() time.Time {
	t0 := time.Now()
	r.lab.client.IP("link", "set", r.port, "down")
	if r.govs != nil {
		r.govs.cmd.Process.Kill()
		<-r.govs.done
		r.govs = nil
	}
	if r.ka != nil {
		r.ka.kill()
		r.ka = nil
	}
	return t0
}

// reboot brings a crashed router back on the segment, without the VIP its
// dead daemon left on the interface (a rebooted machine has lost it).
func (r *router) reboot() {
	r.ns.Exec("ip", "addr", "del", r.lab.vipCIDR(), "dev", "eth0")
	r.lab.client.IP("link", "set", r.port, "up")
}

// reply is one answer to a probe.
type reply struct {
	at   time.Time
	from string
}

// prober sends a UDP probe to VIP:7000 every 2 ms from the client.
type prober struct {
	mu      sync.Mutex
	replies []reply
	stop    chan struct{}
	done    sync.WaitGroup
}

const probeEvery = 2 * time.Millisecond

func (l *vrrpLab) probe() *prober {
	t := l.t
	var pc net.PacketConn
	if err := l.client.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(netip.MustParsePrefix(l.addr(2)).Addr(), 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p := &prober{stop: make(chan struct{})}
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.vip, vrrpEchoPort))
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				pc.WriteTo([]byte(strconv.Itoa(seq)), to)
			}
		}
	}()
	go func() {
		defer p.done.Done()
		b := make([]byte, 64)
		for {
			n, _, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			now := time.Now()
			from, _, _ := strings.Cut(string(b[:n]), " ")
			p.mu.Lock()
			p.replies = append(p.replies, reply{now, from})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(p.stop)
		pc.Close()
		p.done.Wait()
	})
	return p
}

// firstFrom waits up to within for the first answer from router name
// after t0 and returns when it came.
func (p *prober) firstFrom(t *testing.T, name string, t0 time.Time, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p.mu.Lock()
		for _, r := range p.replies {
			if r.at.After(t0) && r.from == name {
				p.mu.Unlock()
				return r.at
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no answer from %s within %v", name, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// maxGap is the longest time without any answer between from and to.
func (p *prober) maxGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, gap := from, time.Duration(0)
	for _, r := range p.replies {
		if r.at.Before(from) || r.at.After(to) {
			continue
		}
		gap = max(gap, r.at.Sub(last))
		last = r.at
	}
	return max(gap, to.Sub(last))
}

// answeredBy returns the routers that answered between from and to.
func (p *prober) answeredBy(from, to time.Time) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for _, r := range p.replies {
		if !r.at.Before(from) && !r.at.After(to) {
			m[r.from]++
		}
	}
	return m
}

// vrrpResult records a failover figure in the test log and, when
// GOVS_VRRP_RESULTS names a file, appends it there (bench/RESULTS.md is
// written from it).
func vrrpResult(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log("RESULT " + line)
	if f := os.Getenv("GOVS_VRRP_RESULTS"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(fh, "%s\t%s\n", t.Name(), line)
			fh.Close()
		}
	}
}

var errNoTCP = errors.New("no answer")

// tcpAsk connects from the client to addr and reads one line.
func (l *vrrpLab) tcpAsk(addr netip.AddrPort) (string, error) {
	var got string
	err := l.client.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 64)
		n, err := c.Read(b)
		if n == 0 {
			return errors.Join(errNoTCP, err)
		}
		got = string(b[:n])
		return nil
	})
	return got, err
}
