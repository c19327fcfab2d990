//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/loopback"
	"golang.org/x/sys/unix"
)

// TestRemovedRealServerEndsItsConnections: a reload removes one of two real
// servers; when the grace period is over every connection to it ends, on
// whichever loop it lives, and none of the other real server's does. The
// loops watch each real server's context once for all its connections
// (evLoopState.watches), so this is what breaks if a connection is missing
// from its real server's list or sits in another's.
func TestRemovedRealServerEndsItsConnections(t *testing.T) {
	a := startBackend(t, "a")
	b := startBackend(t, "b")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	cfg := `grace_period: 300ms
virtual_servers: [{name: t-watch, address: %s, scheduler: rr, real_servers: [%s]}]`
	d := startDirector(t, fmt.Sprintf(cfg, vip, "{address: "+a.addr+"}, {address: "+b.addr+"}"))
	type conn struct {
		name string
		c    *net.TCPConn
		r    *bufio.Reader
	}
	var conns []conn
	for range 40 {
		c := dial(t, vip)
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "hello\n")
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		conns = append(conns, conn{strings.Fields(line)[0], c, r})
		if len(conns)%10 == 0 {
			// Some connections end before the removal: their places in
			// the lists are taken out, the others' kept.
			conns[len(conns)-3].c.Close()
			conns = append(conns[:len(conns)-3], conns[len(conns)-2:]...)
		}
	}
	if err := apply(t, d, fmt.Sprintf(cfg, vip, "{address: "+b.addr+"}")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var toA, toB int
	for _, c := range conns {
		c.c.SetDeadline(deadline)
		if c.name == "a" {
			toA++
			// Ended by the proxy once the grace period is over: EOF or a reset.
			if _, err := c.r.ReadString('\n'); err == nil {
				t.Errorf("a connection to the removed real server got an answer after its removal")
			}
			continue
		}
		toB++
	}
	if toA == 0 || toB == 0 {
		t.Fatalf("connections: %d to a, %d to b; want some to each", toA, toB)
	}
	// Past a's grace period, b's connections still carry bytes.
	for _, c := range conns {
		if c.name != "b" {
			continue
		}
		fmt.Fprintf(c.c, "again\n")
		if line, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "b again") {
			t.Fatalf("a connection to the kept real server: %q, %v", line, err)
		}
	}
	if got, err := ask(t, vip); err != nil || got != "b" {
		t.Errorf("a new connection after the removal: %q, %v; want b", got, err)
	}
}

// earlyConnects is how many connects of p's loops the client's first bytes
// confirmed (sendEarly).
func earlyConnects(t *testing.T, p *Proxy) int {
	t.Helper()
	n := 0
	p.mu.Lock()
	e := p.ev
	p.mu.Unlock()
	if e == nil {
		return 0
	}
	for i, l := range e.loops {
		done := make(chan int, 1)
		if !l.Post(func() { done <- e.state[i].early }) {
			t.Fatal("loop stopped")
		}
		n += <-done
	}
	return n
}

// TestEarlyBytesRetried: a client's first bytes read with its connection,
// before the connect (earlyRead), reach the real server whole and once,
// also when the first real server tried refuses the connect and the next
// one takes it (the early write is what sees the refusal); and the early
// write confirms connects on loopback (the path is taken, not skipped).
func TestEarlyBytesRetried(t *testing.T) {
	good := startBackend(t, "good")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	p := New(testLog())
	d := startDirectorWith(t, p, fmt.Sprintf(`
virtual_servers:
  - address: %s
    scheduler: rr
    retries: 2
    real_servers: [{address: %s}, {address: %s}]
`, vip, loopback.Addr(t, "tcp"), good.addr))
	for i := range 40 {
		// Every other connection: the loops held busy while the client
		// connects and writes, until the proxy's side has acknowledged
		// the bytes, so that they are in before the proxy accepts
		// (without that they often come after). Held until then, not
		// for a time: a loaded machine may take longer to connect.
		var held sync.WaitGroup
		release := make(chan struct{})
		if i%2 == 0 {
			p.mu.Lock()
			for _, l := range p.ev.loops {
				held.Add(1)
				l.Post(func() { <-release; held.Done() })
			}
			p.mu.Unlock()
		}
		c := dial(t, vip)
		// Three lines in one write.
		fmt.Fprintf(c, "one\ntwo\nthree\n")
		if i%2 == 0 {
			waitAcked(t, c)
		}
		close(release)
		held.Wait()
		r := bufio.NewReader(c)
		for _, want := range []string{"good one\n", "good two\n", "good three\n"} {
			if line, err := r.ReadString('\n'); err != nil || line != want {
				t.Fatalf("connection %d: %q, %v; want %q", i, line, err, want)
			}
		}
		c.Close()
	}
	s := d.Services()[0].Stats.Snapshot()
	if s.ConnectErrors == 0 || s.Refused != 0 || s.Conns != 40 {
		t.Errorf("stats = %+v, want connect errors, no refusals, 40 conns", s)
	}
	// The 20 whose bytes were in before the accept, less those whose first
	// real server refused (their retry is confirmed by the early write too).
	if n := earlyConnects(t, p); n < 20 {
		t.Errorf("%d connects of 40 were confirmed by the client's first bytes, want at least 20", n)
	} else {
		t.Logf("%d of 40 connects confirmed by the client's first bytes", n)
	}
}

// waitAcked waits until the peer of c has acknowledged every byte c sent:
// they are in its socket's receive queue (on loopback, the accepted side's
// even before accept).
func waitAcked(t *testing.T, c *net.TCPConn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	loopback.WaitFor(t, "the client's bytes to be acknowledged", func() bool {
		var info *unix.TCPInfo
		var ierr error
		if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO) }); err != nil {
			t.Fatal(err)
		}
		if ierr != nil {
			t.Fatal(ierr)
		}
		return info.Unacked == 0
	})
}

// startDirectorWith is startDirector on a proxy the test holds.
func startDirectorWith(t *testing.T, p *Proxy, yaml string) *director.Director {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	d := director.New(testLog(), p)
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d
}

// loopConns is each of p's loops' count of the connections living on it.
func loopConns(p *Proxy) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ev == nil {
		return nil
	}
	var n []int64
	for _, s := range p.ev.state {
		n = append(n, s.conns.Load())
	}
	return n
}

// TestLoopsBalanceConnections: connections accepted on any loop's listener
// are spread so that no loop holds more than one more than another
// (evServer.pick), whatever the kernel's SO_REUSEPORT hash did (40 over 4
// listeners by the hash alone come out 10 each about once in 200); the
// connections handed to another loop carry traffic like the others, and
// every loop's count is back to zero once they have ended.
func TestLoopsBalanceConnections(t *testing.T) {
	t.Setenv(loopsEnv, "4")
	a := startBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	p := New(testLog())
	if p.nloops != 4 {
		t.Fatalf("%d loops, want 4", p.nloops)
	}
	startDirectorWith(t, p, fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, a.addr))
	const n = 40
	var conns []*net.TCPConn
	for i := range n {
		c := dial(t, vip)
		conns = append(conns, c)
		fmt.Fprintf(c, "hello %d\n", i)
		want := fmt.Sprintf("a hello %d\n", i)
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != want {
			t.Fatalf("connection %d: %q, %v; want %q", i, line, err, want)
		}
	}
	counts := loopConns(p)
	lo, hi, sum := counts[0], counts[0], int64(0)
	for _, c := range counts {
		lo, hi, sum = min(lo, c), max(hi, c), sum+c
	}
	if sum != n || hi-lo > 1 {
		t.Errorf("connections per loop %v, want %d in all and at most one apart", counts, n)
	}
	for _, c := range conns {
		c.Close()
	}
	loopback.WaitFor(t, "every loop's count back to zero", func() bool {
		for _, c := range loopConns(p) {
			if c != 0 {
				return false
			}
		}
		return true
	})
}
