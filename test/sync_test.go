package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// The sync lab: two directors between a client segment and a real server
// segment, VRRP on the client side carrying the VIP, the real servers'
// gateway and fullnat's local address together:
//
//	client 10.91.0.2 (br0) --+-- eth0 10.91.0.11  d1  eth1 10.92.0.11 --+-- (br1) real servers
//	                         +-- eth0 10.91.0.12  d2  eth1 10.92.0.12 --+   10.92.0.21, .22, .23
//	VIPs (VRRP): 10.91.0.100 (service), 10.92.0.1 (gateway), 10.92.0.50 (fullnat local address)
//
// The directors sync their flows over eth1 (multicast 224.0.0.81:8848).
// The real servers share one namespace, each bound to its own address; each
// answers with its name, so a connection that moved to another real server
// is seen at once.
type syncLab struct {
	t        testing.TB
	dir      string
	client   *netns.NS
	servers  *netns.NS
	dirs     [2]*syncDirector
	fwd      string
	loss     bool
	bin      string // the govs binary; default govsBin
	noSync   bool   // no sync section (a benchmark's baseline)
	services string // more virtual_servers items, YAML
	fwmark   bool   // the TCP service is fwmark 7, marked by an operator's rule
	listener []net.Listener
}

type syncDirector struct {
	name  string
	ns    *netns.NS
	ports [2]string // its bridge ports: in the client and the servers namespace
	sock  string
	govs  *daemon
}

const syncVIP = "10.91.0.100"

func newSyncLab(t *testing.T, fwd string, loss bool) *syncLab {
	return newSyncLabTB(t, fwd, loss, false)
}

func newSyncLabTB(t testing.TB, fwd string, loss, fwmark bool) *syncLab {
	t.Helper()
	netns.Require(t)
	for _, bin := range []string{"nft", "conntrack"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("needs %s (.ci/run installs it)", bin)
			}
			t.Skipf("needs %s (apt-get install nftables conntrack)", bin)
		}
	}
	l := &syncLab{t: t, dir: t.TempDir(), fwd: fwd, loss: loss, fwmark: fwmark}
	l.client = netns.New(t, "scl")
	l.servers = netns.New(t, "ssrv")
	l.client.IP("link", "add", "br0", "type", "bridge")
	l.client.IP("link", "set", "br0", "up")
	l.client.IP("addr", "add", "10.91.0.2/24", "dev", "br0")
	l.servers.IP("link", "add", "br1", "type", "bridge")
	l.servers.IP("link", "set", "br1", "up")
	if fwd != "dr" {
		for i := 21; i <= 23; i++ {
			l.servers.IP("addr", "add", fmt.Sprintf("10.92.0.%d/24", i), "dev", "br1")
		}
		l.servers.IP("route", "add", "default", "via", "10.92.0.1")
	}
	for i := range 2 {
		d := &syncDirector{name: fmt.Sprintf("d%d", i+1), sock: filepath.Join(l.dir, fmt.Sprintf("d%d.sock", i+1))}
		d.ns = netns.New(t, "s"+d.name)
		d.ports = [2]string{"o" + d.name, "i" + d.name}
		netns.Link(l.client, d.ports[0], "", d.ns, "eth0", fmt.Sprintf("10.91.0.%d/24", 11+i))
		netns.Link(l.servers, d.ports[1], "", d.ns, "eth1", fmt.Sprintf("10.92.0.%d/24", 11+i))
		l.client.IP("link", "set", d.ports[0], "master", "br0")
		l.servers.IP("link", "set", d.ports[1], "master", "br1")
		d.ns.Sysctl("net.ipv4.ip_forward", "1")
		if fwmark {
			markPorts(t, d.ns, netip.MustParseAddr(syncVIP), []int{80}, 7, "mangle")
		}
		if loss {
			// The sync link loses one sync datagram in ten, both ways:
			// every tenth, from the first, so that a run with few
			// datagrams (batches carry many flows) still loses some;
			// numgen random lost none of 20 in about one run in eight.
			if out, err := d.ns.Exec("nft", "add table inet synctest; add chain inet synctest in { type filter hook input priority 0; }; "+
				"add rule inet synctest in udp dport 8848 numgen inc mod 10 == 0 counter drop"); err != nil {
				t.Fatalf("nft: %v %s", err, out)
			}
		}
		l.dirs[i] = d
	}
	if err := os.WriteFile(filepath.Join(l.dir, "sync.key"), []byte("a shared key for the sync lab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fwd == "dr" {
		l.drRealServers()
		return l
	}
	// The real servers: each greets with its name, then answers every
	// number N with "name N+1".
	for i := 21; i <= 23; i++ {
		l.listener = append(l.listener, serveCounter(t, l.servers, fmt.Sprintf("10.92.0.%d:8080", i), fmt.Sprintf("rs%d", i)))
	}
	// UDP: each answers N with "name N+1".
	for i := 21; i <= 23; i++ {
		var pc net.PacketConn
		if err := l.servers.Do(func() (err error) { pc, err = net.ListenPacket("udp", fmt.Sprintf("10.92.0.%d:5353", i)); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		name := fmt.Sprintf("rs%d", i)
		go func() {
			b := make([]byte, 64)
			for {
				n, from, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				k, _ := strconv.Atoi(string(b[:n]))
				pc.WriteTo(fmt.Appendf(nil, "%s %d", name, k+1), from)
			}
		}()
	}
	return l
}

// serveCounter runs the sync lab's TCP server on addr in ns: it greets
// with name, then answers every number N with "name N+1".
func serveCounter(t testing.TB, ns *netns.NS, addr, name string) net.Listener {
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					n, _ := strconv.Atoi(strings.TrimSpace(line))
					fmt.Fprintf(c, "%s %d\n", name, n+1)
				}
			}()
		}
	}()
	return ln
}

// udpFlow is a UDP flow (one client socket) exchanging a counter with its
// real server; a datagram may be lost during a failover, but every answer
// must come from the same real server.
type udpFlow struct {
	port    string // the client's port
	server  atomic.Pointer[string]
	lastOK  atomic.Int64
	err     atomic.Pointer[error]
	answers atomic.Int64
}

func (l *syncLab) openUDP(n int, every time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) []*udpFlow {
	t := l.t
	flows := make([]*udpFlow, n)
	for i := range flows {
		var c net.Conn
		if err := l.client.Do(func() (err error) { c, err = net.Dial("udp", syncVIP+":53"); return err }); err != nil {
			t.Fatal(err)
		}
		f := &udpFlow{port: strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)}
		flows[i] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			b := make([]byte, 64)
			for k := 0; ; k += 2 {
				select {
				case <-stop:
					return
				case <-time.After(every):
				}
				fmt.Fprintf(c, "%d", k)
				c.SetReadDeadline(time.Now().Add(time.Second))
				var name string
				for {
					m, err := c.Read(b)
					if err != nil {
						break // lost (failover): the next one goes
					}
					var num string
					name, num, _ = strings.Cut(string(b[:m]), " ")
					if num == strconv.Itoa(k+1) {
						break
					}
					name = "" // a late answer to an earlier datagram
				}
				if name == "" {
					continue
				}
				if prev := f.server.Load(); prev == nil {
					f.server.Store(&name)
				} else if *prev != name {
					err := fmt.Errorf("UDP flow moved from %s to %s", *prev, name)
					f.err.Store(&err)
					return
				}
				f.answers.Add(1)
				f.lastOK.Store(time.Now().UnixNano())
			}
		}()
	}
	return flows
}

// waitUDP waits until every UDP flow was answered after since, by its own
// real server.
func (l *syncLab) waitUDP(flows []*udpFlow, since time.Time, within time.Duration, what string) {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		done := true
		for i, f := range flows {
			if e := f.err.Load(); e != nil {
				l.t.Fatalf("%s: UDP flow %d: %v", what, i, *e)
			}
			if time.Unix(0, f.lastOK.Load()).Before(since) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: UDP flows not answered within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *syncLab) config(d *syncDirector, prio int) string {
	if l.fwd == "dr" {
		return l.drConfig(d, prio)
	}
	state := "BACKUP"
	if prio > 100 {
		state = "MASTER"
	}
	extra := ""
	syncSection := fmt.Sprintf("sync: {interface: eth1, key_file: %s, sync_id: 5, resync_timeout: 3s}\n", filepath.Join(l.dir, "sync.key"))
	if l.noSync {
		syncSection = ""
	}
	syncSection = l.services + syncSection
	if l.fwd == "fullnat" {
		extra = "    local_addresses: [10.92.0.50]\n"
	}
	cfg := fmt.Sprintf(`api: {socket: %s}
virtual_servers:
  - name: web
    address: %s:80
    protocol: tcp
    forwarding: %s
    scheduler: rr
%s    real_servers: [{address: 10.92.0.21:8080}, {address: 10.92.0.22:8080}, {address: 10.92.0.23:8080}]
  - name: dns
    address: %s:53
    protocol: udp
    forwarding: %s
    scheduler: rr
%s    real_servers: [{address: 10.92.0.21:5353}, {address: 10.92.0.22:5353}, {address: 10.92.0.23:5353}]
%svrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 61
    version: 3
    priority: %d
    advert_int: 200ms
    state: %s
    virtual_ipaddresses: [%s/24, 10.92.0.1/24 dev eth1, 10.92.0.50/24 dev eth1]
`, d.sock, syncVIP, l.fwd, extra, syncVIP, l.fwd, extra, syncSection, prio, state, syncVIP)
	if l.fwmark {
		cfg = strings.Replace(cfg, "    address: "+syncVIP+":80\n    protocol: tcp\n", "    fwmark: 7\n", 1)
	}
	return cfg
}

func (l *syncLab) start(d *syncDirector, prio int) {
	t := l.t
	t.Helper()
	file := filepath.Join(l.dir, d.name+".yaml")
	if err := os.WriteFile(file, []byte(l.config(d, prio)), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := govsBin
	if l.bin != "" {
		bin = l.bin
	}
	cmd := exec.Command("ip", "netns", "exec", d.ns.Name, bin, "run", "-c", file)
	cmd.Env = append(cmd.Environ(), "GOVS_SOCKET="+d.sock)
	d.govs = runDaemon(t, "govs in "+d.name, cmd, 10*time.Second)
	g := d.govs
	loopback.WaitFor(t, "govs to start in "+d.name, func() bool {
		select {
		case <-g.done:
			t.Fatalf("govs in %s exited: %v\n%s", d.name, g.err, g.log())
		default:
		}
		return strings.Contains(g.log(), "govs running")
	})
}

func (d *syncDirector) hasVIP() bool {
	return strings.Contains(d.ns.IP("-br", "addr", "show", "dev", "eth0"), " "+syncVIP+"/24")
}

func (l *syncLab) waitMaster(d *syncDirector, within time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for !d.hasVIP() {
		if time.Now().After(deadline) {
			log := "(govs does not run there)"
			if d.govs != nil {
				log = d.govs.log()
			}
			l.t.Fatalf("%s did not take the VIP within %v\n%s", d.name, within, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// crash cuts d off both segments and kills its govs at once: its VIPs stay
// on its interfaces, as on a machine that lost power.
func (l *syncLab) crash(d *syncDirector) {
	l.client.IP("link", "set", d.ports[0], "down")
	l.servers.IP("link", "set", d.ports[1], "down")
	d.govs.cmd.Process.Kill()
	<-d.govs.done
}

// reboot brings d back as a rebooted machine: no VIPs, an empty conntrack
// table, its ports up; govs is started by the caller.
func (l *syncLab) reboot(d *syncDirector) {
	for _, dev := range []string{"eth0", "eth1"} {
		for _, a := range []string{syncVIP + "/24", "10.92.0.1/24", "10.92.0.50/24"} {
			d.ns.Exec("ip", "addr", "del", a, "dev", dev)
		}
	}
	d.ns.Exec("conntrack", "-F")
	d.ns.Exec("nft", "delete table inet govs")
	d.ns.Exec("nft", "delete table ip govs") // dr's
	l.client.IP("link", "set", d.ports[0], "up")
	l.servers.IP("link", "set", d.ports[1], "up")
}

// syncState reads GET /api/v1/sync of d.
func (d *syncDirector) syncState(t testing.TB) (st struct {
	Status    string `json:"status"`
	PeerFlows int    `json:"peer_flows"`
	Flows     int    `json:"flows"`
	Resync    struct {
		Result string `json:"result"`
	} `json:"resync"`
	Counters map[string]any `json:"counters"`
	LagP99Ms float64        `json:"lag_p99_ms"`
}) {
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	resp, err := c.Get("http://govs/api/v1/sync")
	if err != nil {
		t.Fatalf("%s: GET /api/v1/sync: %v", d.name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// longConn is a long-lived connection exchanging a counter with its real
// server every interval, checking each answer comes from the same server.
type longConn struct {
	port      string // the client's port
	server    string
	exchanges atomic.Int64
	lastOK    atomic.Int64 // UnixNano of the last good exchange
	err       atomic.Pointer[error]
}

func (l *syncLab) dial() (net.Conn, error) {
	var c net.Conn
	err := l.client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", syncVIP+":80", 3*time.Second)
		return err
	})
	return c, err
}

func (l *syncLab) openLong(n int, every time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) []*longConn {
	t := l.t
	t.Helper()
	conns := make([]*longConn, n)
	for i := range conns {
		c, err := l.dial()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		r := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		name, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("connection %d greeting: %v", i, err)
		}
		_, port, _ := net.SplitHostPort(c.LocalAddr().String())
		lc := &longConn{port: port, server: strings.TrimSpace(name)}
		conns[i] = lc
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			fail := func(err error) {
				err = fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err)
				lc.err.Store(&err)
			}
			tick := time.NewTicker(every)
			defer tick.Stop()
			for k := 0; ; k += 2 {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// Generous: a failover stalls the connection for the VRRP
				// takeover plus TCP's retransmission backoff.
				c.SetDeadline(time.Now().Add(20 * time.Second))
				if _, err := fmt.Fprintf(c, "%d\n", k); err != nil {
					fail(fmt.Errorf("exchange %d: write: %w", k/2, err))
					return
				}
				line, err := r.ReadString('\n')
				if err != nil {
					fail(fmt.Errorf("exchange %d with %s: %w", k/2, lc.server, err))
					return
				}
				if want := fmt.Sprintf("%s %d", lc.server, k+1); strings.TrimSpace(line) != want {
					fail(fmt.Errorf("exchange %d: got %q, want %q (the connection moved)", k/2, strings.TrimSpace(line), want))
					return
				}
				lc.exchanges.Add(1)
				lc.lastOK.Store(time.Now().UnixNano())
			}
		}()
	}
	return conns
}

// shortConns opens a short connection every interval, recording when the
// last one that succeeded started.
func (l *syncLab) shortConns(every time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) *atomic.Int64 {
	var lastOK atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			started := time.Now()
			c, err := l.dial()
			if err != nil {
				continue
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err == nil {
				if _, err := fmt.Fprintf(c, "1\n"); err == nil {
					if _, err := r.ReadString('\n'); err == nil {
						lastOK.Store(started.UnixNano())
					}
				}
			}
			c.Close()
		}
	}()
	return &lastOK
}

// checkLong fails the test for every broken connection, and for those
// that made no exchange after since.
func (l *syncLab) checkLong(conns []*longConn, since time.Time, what string) {
	l.t.Helper()
	broken, stalled := 0, 0
	for i, c := range conns {
		if e := c.err.Load(); e != nil {
			broken++
			if broken <= 5 {
				l.t.Errorf("%s: connection %d broken: %v", what, i, *e)
			}
			continue
		}
		if time.Unix(0, c.lastOK.Load()).Before(since) {
			stalled++
		}
	}
	if broken > 0 || stalled > 0 {
		for _, d := range l.dirs {
			out, _ := d.ns.Exec("conntrack", "-L", "-p", "tcp", "--dport", "80")
			l.t.Logf("%s conntrack:\n%s", d.name, out)
		}
		l.t.Fatalf("%s: %d of %d established connections broken, %d stalled", what, broken, len(conns), stalled)
	}
}

// waitLong waits until every connection exchanged after since.
func (l *syncLab) waitLong(conns []*longConn, since time.Time, within time.Duration, what string) {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		done := true
		for _, c := range conns {
			if c.err.Load() != nil {
				l.checkLong(conns, since, what)
			}
			if time.Unix(0, c.lastOK.Load()).Before(since) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			l.checkLong(conns, since, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *syncLab) waitShort(lastOK *atomic.Int64, since time.Time, within time.Duration, what string) {
	l.t.Helper()
	loopback.WaitFor(l.t, what, func() bool { return time.Unix(0, lastOK.Load()).After(since) })
	_ = within
}

// waitSynced waits until d's conntrack holds every long connection as
// ESTABLISHED and every UDP flow (installed by the sync), and returns how
// long that took. The UDP flows start after the connections, so their
// entries come later in the sync's sequence: the connections' arrival says
// nothing of theirs.
func (l *syncLab) waitSynced(d *syncDirector, conns []*longConn, udp []*udpFlow, within time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	ports := func(args ...string) map[string]bool {
		out, err := d.ns.Exec("conntrack", append([]string{"-L"}, args...)...)
		if err != nil {
			l.t.Fatalf("conntrack -L in %s: %v %s", d.name, err, out)
		}
		have := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			if _, rest, ok := strings.Cut(line, " sport="); ok {
				port, _, _ := strings.Cut(rest, " ")
				have[port] = true
			}
		}
		return have
	}
	for {
		tcp := ports("-p", "tcp", "--dport", "80", "--state", "ESTABLISHED")
		missing := 0
		for _, c := range conns {
			if !tcp[c.port] {
				missing++
			}
		}
		missingUDP := 0
		if len(udp) > 0 {
			have := ports("-p", "udp", "--dport", "53")
			for _, f := range udp {
				if !have[f.port] {
					missingUDP++
				}
			}
		}
		if missing == 0 && missingUDP == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: %d of %d connections not ESTABLISHED and %d of %d UDP flows missing in conntrack after %v: %+v",
				d.name, missing, len(conns), missingUDP, len(udp), within, d.syncState(l.t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startPair starts d1, which takes MASTER, then d2, and waits until d2 has
// d1's table (its start-up resync).
func (l *syncLab) startPair() (d1, d2 *syncDirector) {
	d1, d2 = l.dirs[0], l.dirs[1]
	l.start(d1, 150)
	l.waitMaster(d1, 8*time.Second)
	l.start(d2, 100)
	loopback.WaitFor(l.t, "d2's resync from d1", func() bool { return d2.syncState(l.t).Resync.Result == "complete" })
	return d1, d2
}

// openSpread opens n long-lived connections through the VIP and checks that
// the round robin spread them over the three real servers, which it counts.
func (l *syncLab) openSpread(n int, stop <-chan struct{}, wg *sync.WaitGroup) ([]*longConn, map[string]int) {
	conns := l.openLong(n, 100*time.Millisecond, stop, wg)
	by := map[string]int{}
	for _, c := range conns {
		by[c.server]++
	}
	if len(by) != 3 {
		l.t.Fatalf("connections by real server %v: want all three (rr)", by)
	}
	return conns, by
}

func (l *syncLab) run() {
	t := l.t
	d1, d2 := l.startPair()
	// Alone, d1 waited for the resync timeout (3s) before taking MASTER.
	if !strings.Contains(d1.govs.log(), "resync timed out") {
		t.Errorf("d1 took MASTER without saying the resync timed out")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	const n = 200
	conns, by := l.openSpread(n, stop, &wg)
	short := l.shortConns(20*time.Millisecond, stop, &wg)
	udp := l.openUDP(20, 100*time.Millisecond, stop, &wg)
	l.waitLong(conns, time.Now(), 10*time.Second, "before failover")
	l.waitUDP(udp, time.Now(), 10*time.Second, "before failover")
	// The sync's lag is what a failover loses; wait for it, and report it.
	t.Logf("d2 had all %d connections ESTABLISHED and all %d UDP flows %v after the last ones were checked", n, len(udp), l.waitSynced(d2, conns, udp, 10*time.Second).Round(time.Millisecond))

	// The master dies.
	crashed := time.Now()
	t.Logf("crash at %s", crashed.Format("15:04:05.000"))
	l.crash(d1)
	l.waitMaster(d2, 5*time.Second)
	takeover := time.Since(crashed)
	l.waitShort(short, crashed, 10*time.Second, "new connections after failover")
	l.waitLong(conns, time.Now(), 30*time.Second, "after failover")
	l.waitUDP(udp, time.Now(), 10*time.Second, "after failover")
	t.Logf("failover: d2 held the VIP %v after the crash; %d connections by real server %v all survived; a new connection started %v after the crash succeeded",
		takeover.Round(time.Millisecond), n, by, time.Unix(0, short.Load()).Sub(crashed).Round(time.Millisecond))
	if l.loss {
		out, _ := d2.ns.Exec("nft", "list", "chain", "inet", "synctest", "in")
		_, rest, _ := strings.Cut(out, "counter packets ")
		dropped, _, _ := strings.Cut(rest, " ")
		st := d2.syncState(t)
		t.Logf("lossy sync link: %s sync datagrams to d2 dropped; d2's counters %v", dropped, st.Counters)
		if dropped == "0" || dropped == "" {
			t.Errorf("the lossy link dropped nothing on the way to d2 (%q): the test did not exercise loss", out)
		}
	}

	// Failback: d1 reboots, resyncs from d2, then preempts.
	l.reboot(d1)
	rebooted := time.Now()
	l.start(d1, 150)
	l.waitMaster(d1, 15*time.Second)
	if d2.hasVIP() {
		time.Sleep(time.Second)
		if d2.hasVIP() {
			t.Fatalf("d2 kept the VIP after d1 preempted")
		}
	}
	st := d1.syncState(t)
	if st.Resync.Result != "complete" {
		t.Fatalf("d1 preempted with resync %q", st.Resync.Result)
	}
	l.waitSynced(d1, conns, udp, time.Second) // no waiting: it had them before it preempted
	if !strings.Contains(d1.govs.log(), "peers' flows installed, may take MASTER") {
		t.Errorf("d1's log does not say the resync released VRRP")
	}
	l.waitShort(short, rebooted, 10*time.Second, "new connections after failback")
	l.waitLong(conns, time.Now(), 30*time.Second, "after failback")
	l.waitUDP(udp, time.Now(), 10*time.Second, "after failback")
	t.Logf("failback: %d connections all survived (%d exchanges each on average)", n, avgExchanges(conns))
}

func avgExchanges(conns []*longConn) int64 {
	var s int64
	for _, c := range conns {
		s += c.exchanges.Load()
	}
	return s / int64(len(conns))
}

func TestSyncFailoverNAT(t *testing.T) {
	l := newSyncLab(t, "nat", false)
	l.run()
	l.daemonRoles(l.dirs[1])
}

// syncPost posts body to the sync's path on d's API, and returns the
// status code and the answer.
func (d *syncDirector) syncPost(t testing.TB, path, body string) (int, string) {
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
	}}}
	resp, err := c.Post("http://govs"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: POST %s: %v", d.name, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var compact bytes.Buffer
	if json.Compact(&compact, b) == nil {
		b = compact.Bytes()
	}
	return resp.StatusCode, string(b)
}

// daemonRoles stops and starts d's sync at run time, as govsadm
// --stop-daemon / --start-daemon do: roles go, the sync stops with the
// last one, and starts again (with a sync_id given) and finds its peer.
func (l *syncLab) daemonRoles(d *syncDirector) {
	t := l.t
	for _, step := range []struct {
		path, body string
		code       int
		want       string // in the answer
	}{
		{"/api/v1/sync/stop", `{"role":"backup"}`, 200, `"roles":["master"]`},
		{"/api/v1/sync/stop", `{"role":"backup"}`, 409, "the backup sync daemon is not running"},
		{"/api/v1/sync/stop", `{"role":"master"}`, 200, `"status":"stopped"`},
		{"/api/v1/sync/start", `{"role":"backup","sync_id":6}`, 200, `"roles":["backup"]`},
		{"/api/v1/sync/start", `{"role":"master","sync_id":5}`, 409, "stop it first"},
		{"/api/v1/sync/stop", `{"role":"backup"}`, 200, `"status":"stopped"`},
		{"/api/v1/sync/start", `{"role":"master","interface":"eth1","sync_id":5}`, 200, `"roles":["master"]`},
		{"/api/v1/sync/start", `{"role":"backup"}`, 200, `"roles":["master","backup"]`},
		{"/api/v1/sync/start", `{"role":"primary"}`, 400, "want master or backup"},
	} {
		code, body := d.syncPost(t, step.path, step.body)
		if code != step.code || !strings.Contains(body, step.want) {
			t.Fatalf("%s %s: %d %s, want %d with %s", step.path, step.body, code, body, step.code, step.want)
		}
	}
	// Started again with its peer's sync_id, it hears it.
	loopback.WaitFor(t, d.name+"'s restarted sync to hear its peer", func() bool {
		st := d.syncState(t)
		return st.Status == "running" && st.Counters["messages_received"].(float64) > 0
	})
}
func TestSyncFailoverFullNAT(t *testing.T) { newSyncLab(t, "fullnat", false).run() }

// TestSyncFailoverFWMark: the TCP service is a fwmark service (the
// operator's rule marks port 80): its flows are told by their conntrack
// mark, synced, and survive the failover and the failback.
func TestSyncFailoverFWMark(t *testing.T) { newSyncLabTB(t, "nat", false, true).run() }

// TestSyncFailoverLossyLink: one sync datagram in ten is lost, both ways,
// all along: NACKs and retransmissions still bring every flow across.
func TestSyncFailoverLossyLink(t *testing.T) { newSyncLab(t, "nat", true).run() }
