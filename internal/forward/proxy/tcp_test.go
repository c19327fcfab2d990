package proxy

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
)

func TestTCPRoundRobinAndStats(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    scheduler: rr
    real_servers: [{address: %s}, {address: %s}]
`, vip, a.addr, b.addr))
	var got []string
	for range 4 {
		name, err := ask(t, vip)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	if fmt.Sprint(got) != "[a b a b]" {
		t.Errorf("rr order = %v", got)
	}
	vs := d.Services()[0]
	loopback.WaitFor(t, "connections to close", func() bool {
		for _, rs := range vs.RealServers() {
			if rs.Dest.ActiveConns()+rs.Dest.InactiveConns() != 0 {
				return false
			}
		}
		return true
	})
	s := vs.Stats.Snapshot()
	if s.Conns != 4 || s.InBytes != 4*6 || s.OutBytes != 4*8 {
		t.Errorf("service stats = %+v, want 4 conns, 24 bytes in, 32 out", s)
	}
	for _, rs := range vs.RealServers() {
		if c := rs.Stats.Conns.Load(); c != 2 {
			t.Errorf("%s served %d connections, want 2", rs.Addr, c)
		}
	}
}

// A half-close is passed on: the client's FIN reaches the real server, which
// can still answer, and the real server's FIN then reaches the client.
func TestTCPHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // until the client's FIN
		fmt.Fprintf(c, "got %d bytes after FIN", len(req))
	}()
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, ln.Addr()))
	c, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "request body")
	rs := d.Services()[0].RealServers()[0]
	loopback.WaitFor(t, "the connection to be active", func() bool { return rs.Dest.ActiveConns() == 1 })
	c.(*net.TCPConn).CloseWrite()
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp) != "got 12 bytes after FIN" {
		t.Errorf("response = %q", resp)
	}
	loopback.WaitFor(t, "counters to clear", func() bool { return rs.Dest.ActiveConns() == 0 && rs.Dest.InactiveConns() == 0 })
}

// A real server's last bytes and its FIN, queued together, reach the client
// whole and in order (the loop takes the FIN from the event with a short
// read, without reading on to it), and the client's direction stays open:
// the real server still reads what the client sends after it.
func TestTCPDataThenFIN(t *testing.T) {
	answer := bytes.Repeat([]byte("0123456789abcdef"), 10_000) // 160 kB: full reads, then a short one
	got := make(chan string, 1)
	rs := loopback.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(answer)
		c.(*net.TCPConn).CloseWrite()
		rest, _ := io.ReadAll(c)
		select {
		case got <- string(rest):
		default:
		}
	})
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, rs))
	for i := range 50 {
		c, err := net.Dial("tcp", vip)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := io.ReadAll(c) // to the real server's FIN
		if err != nil || !bytes.Equal(resp, answer) {
			c.Close()
			t.Fatalf("connection %d: %d bytes (err %v), want the %d sent, in order", i, len(resp), err, len(answer))
		}
		io.WriteString(c, "after your FIN")
		c.(*net.TCPConn).CloseWrite()
		select {
		case rest := <-got:
			if rest != "after your FIN" {
				t.Fatalf("connection %d: the real server read %q after its FIN", i, rest)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d: the real server never read the client's last bytes", i)
		}
		c.Close()
	}
}

// IPVS counts an established connection active, and one that has started to
// close inactive.
func TestTCPActiveInactive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadAll(c)
		<-release
	}()
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, ln.Addr()))
	rs := d.Services()[0].RealServers()[0]
	c, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loopback.WaitFor(t, "active=1", func() bool { return rs.Dest.ActiveConns() == 1 && rs.Dest.InactiveConns() == 0 })
	c.(*net.TCPConn).CloseWrite()
	loopback.WaitFor(t, "inactive=1", func() bool { return rs.Dest.ActiveConns() == 0 && rs.Dest.InactiveConns() == 1 })
	close(release)
	loopback.WaitFor(t, "none", func() bool { return rs.Dest.ActiveConns() == 0 && rs.Dest.InactiveConns() == 0 })
}

// A real server that refuses connections is skipped without the client
// noticing: the connect is retried on another real server.
func TestTCPConnectRetry(t *testing.T) {
	good := startBackend(t, "good")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    scheduler: rr
    real_servers: [{address: %s}, {address: %s}, {address: %s}]
`, vip, loopback.Addr(t, "tcp"), good.addr, loopback.Addr(t, "tcp")))
	for i := range 20 {
		name, err := ask(t, vip)
		if err != nil || name != "good" {
			t.Fatalf("connection %d: %q, %v", i, name, err)
		}
	}
	s := d.Services()[0].Stats.Snapshot()
	if s.ConnectErrors == 0 || s.Refused != 0 || s.Conns != 20 {
		t.Errorf("stats = %+v, want connect errors, no refusals, 20 conns", s)
	}
}

func TestTCPNoRealServer(t *testing.T) {
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    retries: 1
    real_servers: [{address: %s}, {address: %s, weight: 0}]
`, vip, loopback.Addr(t, "tcp"), loopback.Addr(t, "tcp")))
	if _, err := ask(t, vip); err == nil {
		t.Fatal("a connection with no real server up succeeded")
	}
	loopback.WaitFor(t, "refusal counted", func() bool { return d.Services()[0].Stats.Refused.Load() == 1 })
}

func TestTCPMaxConnections(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    scheduler: wrr
    real_servers: [{address: %s, weight: 100, max_connections: 2}, {address: %s, weight: 1}]
`, vip, a.addr, b.addr))
	// Hold two connections to a; wrr would send most new ones to a, but it
	// is full: they must go to b.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", vip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "x\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line != "a x\n" {
			t.Fatalf("held connection answered %q", line)
		}
		held = append(held, c)
	}
	for range 5 {
		if name, err := ask(t, vip); err != nil || name != "b" {
			t.Fatalf("with a full, got %q, %v", name, err)
		}
	}
	held[0].Close()
	loopback.WaitFor(t, "a to take connections again", func() bool { name, _ := ask(t, vip); return name == "a" })
}

func TestTCPIdleTimeout(t *testing.T) {
	a := startBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	// idle_timeout 1s, traffic every 100 ms: a loaded machine may stretch
	// the client's pauses several times over (with 200 ms, one stretched
	// to 200 ms ended an active connection: the test's doing, not govs's).
	startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, idle_timeout: 1s, real_servers: [{address: %s}]}]", vip, a.addr))
	c, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	// Traffic every 100ms keeps the connection open past the timeout...
	for range 15 {
		fmt.Fprintf(c, "x\n")
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("active connection closed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ...and silence closes it.
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("idle connection got data")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("idle connection closed after %v", el)
	}
}

func TestProxyHeaderBytes(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("192.0.2.1:56324"), netip.MustParseAddrPort("198.51.100.7:443")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:56324"), netip.MustParseAddrPort("[2001:db8::2]:443")
	for _, tc := range []struct {
		name     string
		v        config.ProxyProtocol
		src, dst netip.AddrPort
		want     string // text for v1, hex for v2
	}{
		{"v1 ipv4", config.ProxyV1, src4, dst4, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"},
		{"v1 ipv6", config.ProxyV1, src6, dst6, "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"},
		{"v1 mixed", config.ProxyV1, src4, dst6, "PROXY UNKNOWN\r\n"},
		{"v2 ipv4", config.ProxyV2, src4, dst4,
			"0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0000201" + "c6336407" + "dc04" + "01bb"},
		{"v2 ipv6", config.ProxyV2, src6, dst6,
			"0d0a0d0a000d0a515549540a" + "21" + "21" + "0024" +
				"20010db8000000000000000000000001" + "20010db8000000000000000000000002" + "dc04" + "01bb"},
		{"v2 mixed", config.ProxyV2, src4, dst6, "0d0a0d0a000d0a515549540a" + "20" + "00" + "0000"},
	} {
		got := appendProxyHeader(nil, desired.ProxyProtocol(tc.v), tc.src, tc.dst)
		want := []byte(tc.want)
		if tc.v == config.ProxyV2 {
			want, _ = hex.DecodeString(tc.want)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, want %x", tc.name, got, want)
		}
	}
}

// The real server receives the PROXY header before the client's bytes.
func TestTCPSendProxy(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				b, _ := io.ReadAll(c)
				got <- b
			}()
			vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
			startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, send_proxy: %s, real_servers: [{address: %s}]}]", vip, v, ln.Addr()))
			c, err := net.Dial("tcp", vip)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "payload")
			client := netip.MustParseAddrPort(c.LocalAddr().String())
			c.Close()
			want := appendProxyHeader(nil, desired.ProxyProtocol(v), client, netip.MustParseAddrPort(vip))
			want = append(want, "payload"...)
			select {
			case b := <-got:
				if !bytes.Equal(b, want) {
					t.Errorf("real server got %q, want %q", b, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("real server got nothing")
			}
		})
	}
}

// Reloads under steady load lose no connection: new connections follow the
// new configuration at once, established ones keep running, also on a real
// server that the reload removed.
func TestTCPReloadUnderLoad(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	configs := []string{
		fmt.Sprintf("virtual_servers: [{address: %s, scheduler: rr, real_servers: [{address: %s}, {address: %s}]}]", vip, a.addr, b.addr),
		fmt.Sprintf("virtual_servers: [{address: %s, scheduler: wlc, real_servers: [{address: %s, weight: 3}, {address: %s}]}]", vip, b.addr, c.addr),
		fmt.Sprintf("virtual_servers: [{address: %s, scheduler: wrr, real_servers: [{address: %s}]}]", vip, c.addr),
		fmt.Sprintf("virtual_servers: [{address: %s, scheduler: lc, real_servers: [{address: %s}, {address: %s}, {address: %s}]}]", vip, a.addr, b.addr, c.addr),
	}
	grace := "grace_period: 10s\n"
	d := startDirector(t, grace+configs[0])

	// A long-lived connection to a, which the second config removes.
	long, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	longR := bufio.NewReader(long)
	fmt.Fprintf(long, "first\n")
	if line, _ := longR.ReadString('\n'); line != "a first\n" {
		t.Fatalf("long connection: %q", line)
	}

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ { // bounded in count and by stop
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ask(t, vip); err != nil {
					failed.Add(1)
					t.Logf("connection failed: %v", err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for i := 1; i <= 8; i++ {
		time.Sleep(50 * time.Millisecond)
		// And 13 connections since the last reload, whatever the pace a
		// loaded machine allows: each reload runs under traffic, and the
		// 100 asserted below are there by construction.
		since := ok.Load() + failed.Load()
		loopback.WaitFor(t, "connections between reloads", func() bool { return ok.Load()+failed.Load() >= since+13 })
		if err := apply(t, d, grace+configs[i%len(configs)]); err != nil {
			t.Fatal(err)
		}
		// The removed real server's connection still works.
		fmt.Fprintf(long, "again\n")
		if line, err := longR.ReadString('\n'); line != "a again\n" {
			t.Fatalf("long connection after reload %d: %q, %v", i, line, err)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Errorf("%d connections failed, %d succeeded", failed.Load(), ok.Load())
	}
	t.Logf("%d connections across 8 reloads, none failed", ok.Load())
}

func TestTCPGracefulShutdown(t *testing.T) {
	a := startBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	cfg, _ := config.Parse("t.yaml", []byte(fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, a.addr)))
	dp := New(testLog())
	d := newDirector(dp)
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "one\n")
	r.ReadString('\n')
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(5 * time.Second) }()
	// New connections are refused while the established one still works.
	loopback.WaitFor(t, "listener closed", func() bool {
		nc, err := net.DialTimeout("tcp", vip, time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	fmt.Fprintf(c, "two\n")
	if line, err := r.ReadString('\n'); line != "a two\n" {
		t.Fatalf("established connection during shutdown: %q, %v", line, err)
	}
	select {
	case <-done:
		t.Fatal("shutdown returned while a connection was open")
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not return after the last connection closed")
	}
}
