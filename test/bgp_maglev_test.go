package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// The active-active proof (issue #15): a real FRR router spreads the
// clients' flows by ECMP over three govs directors that announce the VIP
// over BGP (with BFD) and forward by direct routing to four real servers
// on one segment, which answer the clients straight through the router:
//
//	client 10.77.0.2 --- eth0 10.77.0.1  rt (FRR 65000)  br0 10.77.1.1
//	                                                       |-- d1 10.77.1.11, d2 .12, d3 .13 (govs, dr)
//	                                                       `-- rs1..rs4 10.77.1.21-24 (VIP on lo)
//
// Each real server answers with its name, so a client sees when its flow
// changed server. Every director lists the real servers in another order
// (rotated): the Maglev table must not depend on it.
type aaLab struct {
	*bgpLab
	reals []*netns.NS
	rips  []string
}

// aaConns is how many long-lived connections the proof keeps.
const aaConns = 300

func newAALab(t testing.TB) *aaLab {
	t.Helper()
	netns.Require(t)
	requireFRR(t)
	dir, err := os.MkdirTemp("", "govs-aa-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // FRR, running as frr, reads its configs here
	l := &aaLab{bgpLab: &bgpLab{t: t, dir: dir, bfd: true, fastBFD: true}}
	l.client = netns.New(t, "acl")
	l.rt = netns.New(t, "art")
	netns.Link(l.client, "eth0", "10.77.0.2/24", l.rt, "eth0", "10.77.0.1/24")
	l.client.IP("route", "add", "default", "via", "10.77.0.1")
	l.rt.Sysctl("net.ipv4.ip_forward", "1")
	l.rt.Sysctl("net.ipv4.fib_multipath_hash_policy", "1") // L4 hash: flows spread by port
	l.rt.IP("link", "add", "br0", "type", "bridge")
	l.rt.IP("link", "set", "br0", "up")
	l.rt.IP("addr", "add", bgpRouter+"/24", "dev", "br0")
	port := func(ns *netns.NS, name, addr string) {
		netns.Link(l.rt, name, "", ns, "eth0", addr+"/24")
		l.rt.IP("link", "set", name, "master", "br0")
		ns.IP("route", "add", "default", "via", bgpRouter)
	}
	for i := 1; i <= 3; i++ {
		d := &bgpDirector{lab: l.bgpLab, n: i, name: fmt.Sprintf("d%d", i), addr: fmt.Sprintf("10.77.1.%d", 10+i)}
		d.ns = netns.New(t, "a"+d.name)
		port(d.ns, "p"+d.name, d.addr)
		d.sock = filepath.Join(dir, d.name+".sock")
		d.cfg = filepath.Join(dir, d.name+".yaml")
		l.dirs = append(l.dirs, d)
	}
	for i := 1; i <= 4; i++ {
		rs := netns.New(t, fmt.Sprintf("ars%d", i))
		rip := fmt.Sprintf("10.77.1.%d", 20+i)
		port(rs, fmt.Sprintf("r%d", i), rip)
		if out, err := rs.Exec(govsBin, "realserver", "--vip", bgpVIP); err != nil {
			t.Fatalf("govs realserver in %s: %v: %s", rs.Name, err, out)
		}
		(&nameServer{name: fmt.Sprintf("rs%d", i), ns: rs, addr: "0.0.0.0:80"}).start(t)
		l.reals, l.rips = append(l.reals, rs), append(l.rips, rip)
	}
	if rep := nft.ProbeKernel(l.dirs[0].ns.FD()); rep.DRErr() != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("forwarding dr not available: %v", rep.DRErr())
		}
		t.Skipf("forwarding dr not available here: %v", rep.DRErr())
	}
	// The bridge forwards once its ports are past learning.
	for _, rip := range l.rips {
		loopback.WaitFor(t, "the segment to forward", func() bool {
			return l.dirs[0].ns.Do(func() error {
				c, err := net.DialTimeout("tcp", rip+":80", time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}) == nil
		})
	}
	writeFile(t, filepath.Join(dir, "password"), bgpPassword+"\n")
	l.startFRR()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router at failure:\n%s\n%s", l.vtysh("show bgp summary"), l.vtysh("show bfd peers brief"))
		}
	})
	return l
}

// writeConfig writes d's file: a dr service on the VIP over the real
// servers reals (1-4), listed rotated by the director's number.
func (l *aaLab) writeConfig(d *bgpDirector, sched string, reals ...int) {
	flags := ""
	if sched == "mh" {
		flags = "    scheduler_flags: [mh-port]\n" // the router spreads one client's ports: so does the director
	}
	var rs strings.Builder
	for k := range reals {
		i := reals[(k+d.n-1)%len(reals)]
		fmt.Fprintf(&rs, "      - address: %s:80\n", l.rips[i-1])
	}
	writeFile(l.t, d.cfg, fmt.Sprintf(`api: {socket: %s}
grace_period: 3s
bgp:
  asn: %d
  router_id: %s
  announce_delay: 1s
  peers:
    - {address: %s, asn: 65000, hold_time: 30s, keepalive: 10s, password_file: %s, bfd: true, bfd_interval: 200ms}
virtual_servers:
  - name: web
    address: %s:80
    forwarding: dr
    scheduler: %s
%s    quorum: 3
    alpha: true
    health_check: {type: tcp, interval: 300ms, timeout: 300ms, rise: 1, fall: 2}
    real_servers:
%s`, d.sock, 65000+d.n, d.addr, bgpRouter, filepath.Join(l.dir, "password"), bgpVIP, sched, flags, rs.String()))
}

// fibHops are the router's kernel next hops for the VIP (what forwards
// the packets), sorted; quicker to read than vtysh.
func (l *aaLab) fibHops() []string {
	out, err := l.rt.Exec("ip", "route", "show", bgpVIP)
	if err != nil {
		l.t.Fatalf("ip route show: %v: %s", err, out)
	}
	var hops []string
	for _, m := range regexp.MustCompile(`via (\S+)`).FindAllStringSubmatch(out, -1) {
		hops = append(hops, m[1])
	}
	slices.Sort(hops)
	return hops
}

// waitSteady waits until the router's next hops are exactly dirs, every one
// of them has BFD up, and that holds for 2 s: FRR restarts a new BFD
// session once, which GoBGP takes for a failure and resets the BGP session
// once (docs/bgp.md), so a director's first route comes and goes.
// It returns when the final steady state was first seen.
func (l *aaLab) waitSteady(what string, dirs ...*bgpDirector) time.Time {
	l.t.Helper()
	var want []string
	for _, d := range dirs {
		want = append(want, d.addr)
	}
	slices.Sort(want)
	deadline := time.Now().Add(60 * time.Second)
	var since time.Time
	for time.Now().Before(deadline) {
		ok := slices.Equal(l.fibHops(), want)
		for _, d := range dirs {
			if !ok {
				break
			}
			st := d.status()
			ok = len(st.Peers) == 1 && st.Peers[0].Up && st.Peers[0].BFD == "up"
		}
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= 2*time.Second:
			return since
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("%s: the router's next hops are %v (want %v, steady, BFD up)\n%s", what, l.fibHops(), want, l.vtysh("show bfd peers brief"))
	return time.Time{}
}

// waitHopsWithout waits until addr is no longer a next hop of the VIP and
// returns how long that took since t0.
func (l *aaLab) waitHopsWithout(addr string, t0 time.Time) time.Duration {
	l.t.Helper()
	for time.Since(t0) < 30*time.Second {
		if !slices.Contains(l.fibHops(), addr) {
			return time.Since(t0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.t.Fatalf("%s still a next hop of %s after 30s: %v", addr, bgpVIP, l.fibHops())
	return 0
}

// waitServersUp waits until d's service has exactly the real servers
// reals (1-4), all up: a reload applied and checked.
func (l *aaLab) waitServersUp(d *bgpDirector, reals ...int) {
	l.t.Helper()
	var want []string
	for _, i := range reals {
		want = append(want, l.rips[i-1]+":80")
	}
	slices.Sort(want)
	loopback.WaitFor(l.t, d.name+" to serve "+strings.Join(want, " "), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		svcs, err := api.NewUnixClient(d.sock).Services(ctx)
		if err != nil || len(svcs) != 1 {
			return false
		}
		var got []string
		for _, rs := range svcs[0].RealServers {
			if !rs.Status.Up {
				return false
			}
			got = append(got, rs.Address)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

// aaTraffic is the clients' load: long-lived connections that exchange a
// line every 50 ms, each checking that the same real server answers, and a
// stream of new connections.
type aaTraffic struct {
	t      testing.TB
	flows  []*flow
	lastOK []atomic.Int64 // per flow: when its last exchange succeeded (unix ns)
	dead   []atomic.Bool  // per flow: broken
	broken atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	why     []string // the first breaks, for the log
	newOK   int
	newFail int
	newBy   map[string]int
}

// aaWait is how long an active-active flow waits for its answer: a flow
// whose director died is retransmitted until the router moves it, so a
// short deadline would count a slow detection as a break.
const aaWait = 10 * time.Second

func (l *aaLab) startTraffic(n int) *aaTraffic {
	l.t.Helper()
	tr := &aaTraffic{t: l.t, stop: make(chan struct{}), newBy: map[string]int{}}
	per := map[string]int{}
	for range n {
		f, err := dialFlow(l.client)
		if err != nil {
			l.t.Fatalf("connection %d through the router: %v", len(tr.flows)+1, err)
		}
		tr.flows = append(tr.flows, f)
		per[f.first]++
	}
	l.t.Logf("%d long-lived connections: %v", n, per)
	l.t.Cleanup(tr.close)
	tr.lastOK, tr.dead = make([]atomic.Int64, n), make([]atomic.Bool, n)
	for i, f := range tr.flows {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tr.stop:
					return
				case <-tick.C:
				}
				name, err := f.pingWithin(aaWait)
				if err == nil && name == f.first {
					tr.lastOK[i].Store(time.Now().UnixNano())
					continue
				}
				select {
				case <-tr.stop:
					return // closed by the test
				default:
				}
				tr.dead[i].Store(true)
				tr.broken.Add(1)
				tr.mu.Lock()
				if len(tr.why) < 5 {
					tr.why = append(tr.why, fmt.Sprintf("%v on %s: answered by %q, %v", f.c.LocalAddr(), f.first, name, err))
				}
				tr.mu.Unlock()
				return
			}
		}()
	}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			var c net.Conn
			err := l.client.Do(func() (err error) {
				c, err = net.DialTimeout("tcp", bgpVIP+":80", 3*time.Second)
				return err
			})
			name := ""
			if err == nil {
				name, err = (&flow{c: c, r: bufio.NewReader(c)}).pingWithin(aaWait)
				c.Close()
			}
			tr.mu.Lock()
			if err != nil {
				tr.newFail++
			} else {
				tr.newOK++
				tr.newBy[name]++
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

func (tr *aaTraffic) close() {
	select {
	case <-tr.stop:
		return
	default:
	}
	close(tr.stop)
	for _, f := range tr.flows {
		f.c.Close()
	}
	tr.wg.Wait()
}

// takeNew returns the new connections since the last call.
func (tr *aaTraffic) takeNew() (ok, fail int, by map[string]int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ok, fail, by = tr.newOK, tr.newFail, tr.newBy
	tr.newOK, tr.newFail, tr.newBy = 0, 0, map[string]int{}
	return ok, fail, by
}

// aaPhase is one event's outcome.
type aaPhase struct {
	name           string
	alive, broken  int
	newOK, newFail int
	newBy          map[string]int
	survivedPct    float64
}

// phase runs act while the traffic goes on, lets the connections exchange
// for settle, and counts what broke.
func (tr *aaTraffic) phase(name string, settle time.Duration, act func()) aaPhase {
	tr.t.Helper()
	tr.takeNew()
	tr.mu.Lock()
	tr.why = nil
	tr.mu.Unlock()
	b0 := tr.broken.Load()
	alive := len(tr.flows) - int(b0)
	act()
	done := time.Now().UnixNano()
	time.Sleep(settle)
	// Every connection still counted alive must have exchanged since the
	// event: one whose packets vanish (a black hole) waits on its 10 s
	// deadline and would not be counted broken yet.
	stalled := 0
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		stalled = 0
		for i := range tr.flows {
			if !tr.dead[i].Load() && tr.lastOK[i].Load() < done {
				stalled++
			}
		}
		if stalled == 0 || time.Now().After(deadline) {
			break
		}
	}
	p := aaPhase{name: name, alive: alive, broken: int(tr.broken.Load()-b0) + stalled}
	if stalled > 0 {
		tr.t.Logf("%s: %d connections made no exchange within 15 s after the event: counted broken", name, stalled)
	}
	p.newOK, p.newFail, p.newBy = tr.takeNew()
	p.survivedPct = 100 * float64(alive-p.broken) / float64(alive)
	tr.mu.Lock()
	why := slices.Clone(tr.why)
	tr.mu.Unlock()
	tr.t.Logf("%s: %d of %d established connections broken (%.2f%% survived); new connections: %d ok, %d failed, by real server %v",
		name, p.broken, alive, p.survivedPct, p.newOK, p.newFail, p.newBy)
	if p.broken > 0 {
		tr.t.Logf("first breaks: %s", strings.Join(why, "; "))
	}
	return p
}

// TestBGPActiveActiveFlows is the proof that flows survive a director
// leaving, dying and joining behind an ECMP router with dr and mh (the same
// Maglev table on every director), side by side with rr (each director's
// own choice), and survive real servers being added and removed. Figures
// are printed as "AA:" lines (bench/activeactive.sh collects them).
func TestBGPActiveActiveFlows(t *testing.T) {
	l := newAALab(t)
	d1, d2, d3 := l.dirs[0], l.dirs[1], l.dirs[2]
	var phases []aaPhase

	// events runs the director events with sched on every director, each
	// on connections established before it: d3 stops (SIGTERM); d3 joins
	// (on connections opened while only d1 and d2 announced); d2 dies.
	events := func(sched string) (stop, join, kill aaPhase, tr *aaTraffic) {
		// Each scheduler's clients get ports of their own: a director keeps
		// the pins of flows the router moved away from it (their FIN never
		// comes back) until they time out, and an mh flow on a port an rr
		// flow left pinned on another director would follow that pin there
		// (docs/bgp.md: switching a live service to mh).
		ports := map[string]string{"rr": "20000 39999", "mh": "40000 60999"}[sched]
		l.client.Sysctl("net.ipv4.ip_local_port_range", ports)
		tr = l.startTraffic(aaConns)
		stop = tr.phase(sched+": d3 stopped (SIGTERM)", 3*time.Second, func() {
			t0 := time.Now()
			d3.govs.signal(t, syscall.SIGTERM)
			t.Logf("AA: converge: SIGTERM of d3 to its route gone from the router's FIB: %v", l.waitHopsWithout(d3.addr, t0).Round(time.Millisecond))
		})
		waitExit(t, d3)
		tr.close()
		tr = l.startTraffic(aaConns)
		join = tr.phase(sched+": d3 joins", 2*time.Second, func() {
			t0 := time.Now()
			d3.start()
			seen := l.waitSteady("d3 back with "+sched, d1, d2, d3)
			t.Logf("AA: converge: start of d3 to its route in the router's FIB for good: %v (govs start, health checks, announce_delay 1s, FRR's first BFD reset)", seen.Sub(t0).Round(time.Millisecond))
		})
		// A director dies: its link is cut and its govs killed with -9 at
		// the same instant, so no BGP notification or TCP close reaches
		// the router: BFD (200 ms x 3) must notice.
		var took time.Duration
		kill = tr.phase(sched+": d2 killed (kill -9, link cut)", 4*time.Second, func() {
			t0 := time.Now()
			d2.ns.IP("link", "set", "eth0", "down")
			d2.govs.cmd.Process.Kill()
			took = l.waitHopsWithout(d2.addr, t0)
		})
		t.Logf("AA: detect: kill -9 + link cut of d2 to its route gone from the router's FIB: %v (BFD 200ms x 3; hold time 30s)", took.Round(time.Millisecond))
		if took > 15*time.Second {
			t.Errorf("d2's death noticed after %v: not by BFD (the hold time is 30s)", took)
		}
		phases = append(phases, stop, join, kill)
		return stop, join, kill, tr
	}

	// 1. Side by side first: rr, every director scheduling on its own.
	for _, d := range l.dirs {
		l.writeConfig(d, "rr", 1, 2, 3)
		d.start()
	}
	l.waitSteady("three directors with rr", d1, d2, d3)
	_, _, _, tr := events("rr")
	tr.close()

	// 2. mh on every director, the same real servers listed in another
	// order on each: d2 comes back, d1 and d3 reload.
	for _, d := range l.dirs {
		l.writeConfig(d, "mh", 1, 2, 3)
	}
	d2.ns.IP("link", "set", "eth0", "up")
	d2.ns.IP("route", "add", "default", "via", bgpRouter)
	d2.start()
	for _, d := range []*bgpDirector{d1, d3} {
		d.govs.signal(t, syscall.SIGHUP)
		loopback.WaitFor(t, d.name+" to reload", func() bool {
			return strings.Contains(d.govs.log(), "configuration reloaded")
		})
	}
	l.waitSteady("three directors with mh", d1, d2, d3)
	stop, join, kill, tr := events("mh")
	if stop.broken != 0 || stop.newFail != 0 {
		t.Errorf("mh, graceful stop: %d established connections broken, %d new connections failed; want 0 and 0", stop.broken, stop.newFail)
	}
	// Every established flow keeps its real server: the same Maglev table on
	// every director, so none may break (the floor is 99%, its
	// target 100%, and a lost flow is a product failure to look at).
	if join.broken != 0 {
		t.Errorf("mh, a director joins: %d established connections broken (%.2f%% survived), want 0", join.broken, join.survivedPct)
	}
	if kill.broken != 0 {
		t.Errorf("mh, a director killed: %d established connections broken (%.2f%% survived), want 0", kill.broken, kill.survivedPct)
	}

	// 3. Real servers change on the surviving directors: rs4 added, then
	// rs1 removed (it keeps running: its established flows go on). New
	// flows re-spread; established ones keep their server.
	add := tr.phase("mh: rs4 added", time.Second, func() {
		for _, d := range []*bgpDirector{d1, d3} {
			l.writeConfig(d, "mh", 1, 2, 3, 4)
			d.govs.signal(t, syscall.SIGHUP)
		}
		l.waitServersUp(d1, 1, 2, 3, 4)
		l.waitServersUp(d3, 1, 2, 3, 4)
	})
	per := l.newConnections(60)
	t.Logf("60 new connections after rs4 was added: %v", per)
	if per["rs4"] == 0 {
		t.Errorf("no new connection reached the added rs4: %v", per)
	}
	remove := tr.phase("mh: rs1 removed", time.Second, func() {
		for _, d := range []*bgpDirector{d1, d3} {
			l.writeConfig(d, "mh", 2, 3, 4)
			d.govs.signal(t, syscall.SIGHUP)
		}
		l.waitServersUp(d1, 2, 3, 4)
		l.waitServersUp(d3, 2, 3, 4)
	})
	per = l.newConnections(60)
	t.Logf("60 new connections after rs1 was removed: %v", per)
	if per["rs1"] != 0 {
		t.Errorf("new connections reached the removed rs1: %v", per)
	}
	for _, p := range []aaPhase{add, remove} {
		if p.broken != 0 || p.newFail != 0 {
			t.Errorf("%s: %d established connections broken, %d new connections failed; want 0 and 0", p.name, p.broken, p.newFail)
		}
	}
	phases = append(phases, add, remove)
	tr.close()
	for _, p := range phases {
		t.Logf("AA: %-36s survived %6.2f%% (%d of %d broken), new connections %d ok %d failed", p.name+":", p.survivedPct, p.broken, p.alive, p.newOK, p.newFail)
	}
}

// newConnections opens n short connections through the router and counts
// them by the real server that answered.
func (l *aaLab) newConnections(n int) map[string]int {
	l.t.Helper()
	per := map[string]int{}
	for range n {
		f, err := dialFlow(l.client)
		if err != nil {
			l.t.Fatalf("new connection through the router: %v", err)
		}
		per[f.first]++
		f.c.Close()
	}
	return per
}

// waitExit waits for a stopped director's govs to exit 0.
func waitExit(t testing.TB, d *bgpDirector) {
	t.Helper()
	select {
	case <-d.govs.done:
		if d.govs.err != nil {
			t.Errorf("%s exit: %v", d.name, d.govs.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM", d.name)
	}
}

// BenchmarkBGPActiveActiveNewConns measures new connections/s through 1,
// 2 and 3 directors (dr, mh) behind the FRR router, in one lab and one
// run: d1 alone, then d2 joins, then d3, then d3 and d2 stop again (the
// second visits show how much the shared machine drifted meanwhile). Each
// connection connects, exchanges one line with a real server and closes; 8
// clients in parallel. "flaps" counts the BGP sessions that went down
// during the measure (a BFD false alarm under load shows there);
// "govs-cpu-%" is the CPU the directors' govs processes used, summed (the
// kernel's forwarding is not in it). On a
// shared 2-core machine the client, router, directors and real servers share
// the cores: the ratio between the figures matters, not the figures.
//
//	go test -run XXX -bench BGPActiveActiveNewConns -benchtime 5s ./test/
func BenchmarkBGPActiveActiveNewConns(b *testing.B) {
	l := newAALab(b)
	// Many short connections from one client address: reuse TIME_WAIT
	// ports, and use the whole port range.
	l.client.Sysctl("net.ipv4.tcp_tw_reuse", "1")
	l.client.Sysctl("net.ipv4.ip_local_port_range", "1024 65000")
	for _, d := range l.dirs {
		l.writeConfig(d, "mh", 1, 2, 3, 4)
	}
	measure := func(n int) {
		up := l.dirs[:n]
		l.waitSteady(fmt.Sprintf("%d directors", n), up...)
		b.Run(fmt.Sprintf("directors=%d", n), func(b *testing.B) {
			flaps := func() (f uint32) {
				for _, d := range up {
					f += d.status().Peers[0].Flaps
				}
				return f
			}
			cpu := func() (c time.Duration) {
				for _, d := range up {
					c += cpuOf(b, d.govs)
				}
				return c
			}
			f0, c0 := flaps(), cpu()
			var next, failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						var c net.Conn
						err := l.client.Do(func() (err error) {
							c, err = net.DialTimeout("tcp", bgpVIP+":80", 3*time.Second)
							return err
						})
						if err == nil {
							_, err = (&flow{c: c, r: bufio.NewReader(c)}).pingWithin(aaWait)
							c.Close()
						}
						if err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "conns/s")
			b.ReportMetric(100*(cpu()-c0).Seconds()/el.Seconds(), "govs-cpu-%")
			b.ReportMetric(float64(failed.Load()), "failed")
			b.ReportMetric(float64(flaps()-f0), "flaps")
		})
	}
	for n := 1; n <= 3; n++ {
		l.dirs[n-1].start()
		measure(n)
	}
	for n := 2; n >= 1; n-- {
		d := l.dirs[n]
		d.govs.signal(b, syscall.SIGTERM)
		waitExit(b, d)
		measure(n)
	}
}
