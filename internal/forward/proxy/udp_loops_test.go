package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/loopback"
)

// udpModes are the UDP data paths: the event loops (the default on Linux,
// and with more loops than cores, so that flows spread over several) and
// the goroutine path (GOVS_PROXY_LOOPS=off).
var udpModes = []string{"", "4", "off"}

func eachUDPMode(t *testing.T, test func(t *testing.T, mode string)) {
	for _, mode := range udpModes {
		t.Run("GOVS_PROXY_LOOPS="+mode, func(t *testing.T) {
			if mode != "off" && !eventLoopSupported {
				t.Skip("event loops are Linux's")
			}
			t.Setenv(loopsEnv, mode)
			test(t, mode)
		})
	}
}

// TestUDPGoroutinePath runs the UDP tests on the goroutine data path, which
// the rest of the package runs on the event loops: both keep every
// behaviour (flows, stats, ops, max_flows, reloads, ICMP unreachable,
// termination codes, the connection list, IPv6).
func TestUDPGoroutinePath(t *testing.T) {
	for name, test := range map[string]func(*testing.T){
		"Flows":                TestUDPFlows,
		"MaxFlowsAndOnePacket": TestUDPMaxFlowsAndOnePacket,
		"ReloadKeepsFlows":     TestUDPReloadKeepsFlows,
		"RealServerUnreach":    TestUDPRealServerUnreachable,
		"TerminationUDP":       TestTerminationUDP,
		"ConnectionList":       TestConnectionList,
		"IPv6":                 TestIPv6,
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(loopsEnv, "off")
			test(t)
		})
	}
}

// udpClients opens n client sockets to vip, each sending one datagram and
// reading its answer: n flows.
func udpClients(t *testing.T, vip string, n int) []*net.UDPConn {
	t.Helper()
	cs := make([]*net.UDPConn, 0, n)
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.Dial("udp", vip)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c.(*net.UDPConn))
		if got, want := udpAsk(t, c.(*net.UDPConn), fmt.Sprint("q", i)), fmt.Sprint("a:q", i); got != want {
			t.Fatalf("client %d: %q, want %q", i, got, want)
		}
	}
	return cs
}

// TestUDPIdleFlowsHoldNoGoroutine: 2,000 idle UDP flows cost no goroutine
// on the event loops (the goroutine path parks one per flow, which this
// checks too, so the count measures what it should). Catches a data path
// that reads a flow's socket from a goroutine of its own.
func TestUDPIdleFlowsHoldNoGoroutine(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a := startUDPBackend(t, "a")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, idle_timeout: 60s, real_servers: [{address: %s}]}]", vip, a))
		vs := d.Services()[0]
		udpClients(t, vip, 1) // the loops, the pools
		before := goroutineIDs()
		const n = 2000
		udpClients(t, vip, n)
		if got := vs.Flows.Load(); got != n+1 {
			t.Fatalf("%d flows, want %d", got, n+1)
		}
		if s := vs.Stats.Snapshot(); s.Conns != n+1 || s.InPkts != n+1 || s.OutPkts != n+1 {
			t.Errorf("stats %+v: want %d flows and as many datagrams each way", s, n+1)
		}
		// Goroutines started since the baseline and still running: one
		// that ended meanwhile (a pool's, a timer's) does not offset a new
		// one, as it did in a difference of runtime.NumGoroutine (1,999 of
		// 2,000 once).
		grew := goroutinesSince(before)
		if mode == "off" {
			// A control arm, not the product's check: the count sees one
			// goroutine per flow.
			if grew < n {
				t.Errorf("goroutine path: %d flows added %d goroutines, want one each (the count is off)", n, grew)
			}
			return
		}
		if grew > 10 {
			t.Errorf("%d idle flows added %d goroutines, want none", n, grew)
		}
	})
}

// TestUDPIdleTimeoutEndsFlows: idle flows end after idle_timeout, while a
// flow with datagrams every 50 ms outlives it twice over in one
// flow. Catches a timer that never fires, and one that fires on a busy flow
// (a client scheduled anew mid-conversation).
func TestUDPIdleTimeoutEndsFlows(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a := startUDPBackend(t, "a")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, idle_timeout: 600ms, real_servers: [{address: %s}]}]", vip, a))
		vs := d.Services()[0]
		udpClients(t, vip, 20)
		busy := udpClients(t, vip, 1)[0]
		for i := range 30 { // 1.5 s and more: over two idle timeouts
			if got := udpAsk(t, busy, fmt.Sprint("b", i)); got != fmt.Sprint("a:b", i) {
				t.Fatalf("busy flow: %q", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
		loopback.WaitFor(t, "the idle flows to end", func() bool { return vs.Flows.Load() == 1 })
		if c := vs.Stats.Conns.Load(); c != 21 {
			t.Errorf("%d flows scheduled, want 21: the busy flow was ended while busy", c)
		}
		loopback.WaitFor(t, "the busy flow to end once quiet", func() bool { return vs.Flows.Load() == 0 })
		if n := vs.RealServers()[0].Dest.InactiveConns(); n != 0 {
			t.Errorf("inactive = %d after every flow ended, want 0", n)
		}
	})
}

// TestUDPUnreachableEndsFlow: ICMP port unreachable from the real server
// ends its flow at once (not at the idle timeout), counts a connect error
// against that real server, and the client's next datagram goes to another.
func TestUDPUnreachableEndsFlow(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a := startUDPBackend(t, "a")
		dead := loopback.Addr(t, "udp") // nothing listens there
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, scheduler: rr, idle_timeout: 300s, real_servers: [{address: %s}, {address: %s}]}]", vip, dead, a))
		vs := d.Services()[0]
		c, err := net.Dial("udp", vip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("lost"))
		loopback.WaitFor(t, "the flow to end on ICMP unreachable", func() bool {
			return vs.Stats.ConnectErrors.Load() == 1 && vs.Flows.Load() == 0
		})
		for _, rs := range vs.RealServers() {
			want := uint64(0)
			if rs.Addr.String() == dead {
				want = 1
			}
			if got := rs.Stats.ConnectErrors.Load(); got != want {
				t.Errorf("%s: %d connect errors, want %d", rs.Addr, got, want)
			}
		}
		if got := udpAsk(t, c.(*net.UDPConn), "retry"); got != "a:retry" {
			t.Fatalf("retry: %q", got)
		}
	})
}

// TestUDPReloadLosesNoDatagram: clients in request-response loops while the
// configuration is reloaded 20 times (weights, idle timeout, another
// service added and removed): every datagram is answered (a lost one fails
// the ask after 3 s), and every client keeps its one flow throughout.
// Catches a reload that rebinds the VIP (datagrams lost in between, or a
// SO_REUSEPORT group rebuilt, moving clients to another loop where a second
// flow would begin).
func TestUDPReloadLosesNoDatagram(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a := startUDPBackend(t, "a")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		tcpVIP := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
		cfg := func(i int) string {
			s := fmt.Sprintf("virtual_servers:\n  - {address: %s, protocol: udp, idle_timeout: %ds, real_servers: [{address: %s, weight: %d}]}\n",
				vip, 30-i%2*10, a, 1+i%3)
			if i%2 == 1 {
				s += fmt.Sprintf("  - {address: %s, real_servers: [{address: %s}]}\n", tcpVIP, loopback.Addr(t, "tcp"))
			}
			return s
		}
		d := startDirector(t, cfg(0))
		vs := d.Services()[0]
		const clients, maxAsks = 16, 100000
		cs := udpClients(t, vip, clients)
		var wg sync.WaitGroup
		errs := make(chan string, clients)
		stop := make(chan struct{})
		var answered atomic.Int64
		for k, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for i := range maxAsks { // until the reloads are over
					msg := fmt.Sprintf("c%d-%d", k, i)
					c.SetDeadline(time.Now().Add(3 * time.Second))
					if _, err := c.Write([]byte(msg)); err != nil {
						errs <- err.Error()
						return
					}
					n, err := c.Read(buf)
					if err != nil || string(buf[:n]) != "a:"+msg {
						errs <- fmt.Sprintf("client %d datagram %d: %q, %v", k, i, buf[:n], err)
						return
					}
					answered.Add(1)
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		for i := 1; i <= 20; i++ {
			if err := apply(t, d, cfg(i)); err != nil {
				t.Fatalf("reload %d: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		close(errs)
		t.Logf("%d datagrams answered during 20 reloads", answered.Load())
		for e := range errs {
			t.Error(e)
		}
		if got := d.Services()[0].Stats.Conns.Load(); got != clients {
			t.Errorf("%d flows scheduled for %d clients: a reload moved clients to new flows", got, clients)
		}
		if vs.Stats.Dropped.Load() != 0 {
			t.Errorf("%d datagrams dropped", vs.Stats.Dropped.Load())
		}
	})
}

// TestUDPSecondDirectorOnSameVIP: as for TCP, a UDP VIP another process
// holds is refused although the loops' sockets share it with SO_REUSEPORT.
func TestUDPSecondDirectorOnSameVIP(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a := startUDPBackend(t, "a")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		cfg := fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, real_servers: [{address: %s}]}]", vip, a)
		startDirector(t, cfg)
		d2 := director.New(testLog(), New(testLog()))
		t.Cleanup(func() { d2.Shutdown(time.Second) })
		err := apply(t, d2, cfg)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("second director on %s: %v, want address already in use", vip, err)
		}
		udpClients(t, vip, 5)
	})
}

// TestUDPGraceEndsFlows: a real server removed by a reload keeps its flow
// through the grace period, then the flow ends, logged as killed (KD); a
// service removed by a reload likewise, and its VIP is then free to bind.
// Catches flows the loops would keep past their grace (no watch on the
// real server's or the service's end) and sockets left open.
func TestUDPGraceEndsFlows(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		path := accessFile(t)
		a, b := startUDPBackend(t, "a"), startUDPBackend(t, "b")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		tcpVIP := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
		tcpSvc := fmt.Sprintf("{address: %s, real_servers: [{address: %s}]}", tcpVIP, loopback.Addr(t, "tcp"))
		// A grace of 1.5 s: the exchange during it must fit in it on a loaded
		// machine.
		cfg := `grace_period: 1500ms
logging: {access_log: true}
virtual_servers: [{name: t-ugrace, protocol: udp, address: %s, idle_timeout: 60s, real_servers: [{address: %s}]}, %s]`
		d := startDirector(t, fmt.Sprintf(cfg, vip, a, tcpSvc))
		c := udpClients(t, vip, 1)[0]
		if err := apply(t, d, fmt.Sprintf(cfg, vip, b, tcpSvc)); err != nil {
			t.Fatal(err)
		}
		if got := udpAsk(t, c, "during"); got != "a:during" {
			t.Fatalf("flow during its real server's grace: %q", got)
		}
		checkCode(t, path, "t-ugrace", a, "KD")
		if got := udpAsk(t, c, "after"); got != "b:after" {
			t.Fatalf("the client's next datagram: %q, want it on b", got)
		}
		// The service goes: its flow on b lasts the grace period, then the
		// VIP is free.
		if err := apply(t, d, "grace_period: 1500ms\nvirtual_servers: ["+tcpSvc+"]"); err != nil {
			t.Fatal(err)
		}
		if got := udpAsk(t, c, "removed"); got != "b:removed" {
			t.Fatalf("flow during its service's grace: %q", got)
		}
		loopback.WaitFor(t, "the removed service's VIP to be free", func() bool {
			pc, err := net.ListenPacket("udp", vip)
			if err != nil {
				return false
			}
			pc.Close()
			return true
		})
	})
}

// TestUDPIdleFlowLogged: a flow ended by its idle timeout is logged with
// its bytes, as normal (--).
func TestUDPIdleFlowLogged(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		path := accessFile(t)
		a := startUDPBackend(t, "a")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		startDirector(t, fmt.Sprintf(`logging: {access_log: true}
virtual_servers: [{name: t-uidle, protocol: udp, address: %s, idle_timeout: 200ms, real_servers: [{address: %s}]}]`, vip, a))
		udpClients(t, vip, 1)
		l := checkCode(t, path, "t-uidle", a, "--")
		if l.BytesIn != 2 || l.BytesOut != 4 {
			t.Errorf("line %+v: want bytes_in 2, bytes_out 4", l)
		}
	})
}

// TestUDPStopEndsQuietFlow: a stop ends a UDP flow once it has been quiet
// for stopQuiet, though its idle timeout is 300 s: on the loops the flow's
// timer is armed for the idle timeout, so the stop has to tell it.
func TestUDPStopEndsQuietFlow(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a := startUDPBackend(t, "a")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, idle_timeout: 300s, real_servers: [{address: %s}]}]", vip, a)))
		if err != nil {
			t.Fatal(err)
		}
		d := director.New(testLog(), New(testLog()))
		if err := d.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		udpClients(t, vip, 3)
		done := make(chan error, 1)
		go func() { done <- d.Shutdown(60 * time.Second) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the stop still waits for quiet UDP flows")
		}
	})
}

// TestUDPPersistence: with persistence, every flow of a client address goes
// to one real server though rr alternates, from the client's several
// ports (each a flow of its own, possibly on different loops); another
// client address is scheduled apart.
func TestUDPPersistence(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		a, b := startUDPBackend(t, "a"), startUDPBackend(t, "b")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, scheduler: rr, persistence_timeout: 30s, real_servers: [{address: %s}, {address: %s}]}]", vip, a, b))
		owner := func(src string) string {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(vip)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			name, _, _ := strings.Cut(udpAsk(t, c, "p"), ":")
			return name
		}
		first := owner("127.0.0.1")
		for i := range 8 {
			if got := owner("127.0.0.1"); got != first {
				t.Fatalf("flow %d of 127.0.0.1 on %s, want %s (persistence)", i, got, first)
			}
		}
		if other := owner("127.0.0.2"); other == first {
			t.Errorf("127.0.0.2 also on %s: rr should have chosen the other", first)
		}
		if c := d.Services()[0].Stats.Conns.Load(); c != 10 {
			t.Errorf("%d flows, want 10", c)
		}
	})
}

// TestUDPLargeDatagram: a datagram of 65,000 bytes crosses the proxy whole
// both ways (the loops read into 64 KiB buffers).
func TestUDPLargeDatagram(t *testing.T) {
	eachUDPMode(t, func(t *testing.T, mode string) {
		be := udpEcho(t, "")
		vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
		startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, real_servers: [{address: %s}]}]", vip, be))
		c, err := net.Dial("udp", vip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := make([]byte, 65000)
		for i := range msg {
			msg[i] = byte(i)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 70000)
		n, err := c.Read(buf)
		if err != nil || n != len(msg) || string(buf[:n]) != string(msg) {
			t.Fatalf("answer of %d bytes (%v), want the %d bytes sent", n, err, len(msg))
		}
	})
}
