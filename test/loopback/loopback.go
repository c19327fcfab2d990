// Package loopback gives tests real servers and free ports on the loopback
// interface, the only place test traffic may go outside the namespaces a
// test builds itself. Every server stops at the test's cleanup.
package loopback

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a port on 127.0.0.1 that is free for network ("tcp"
// or "udp"), for a test to hand to a process that binds it later.
//
// A port the kernel picked (bind to port 0, then close) is a race: until
// the later bind, any connect() on the machine — a load generator of this
// or of another test binary run in parallel by go test ./... — may take it
// as its source port, and the bind then fails with EADDRINUSE; a "dead"
// real server's port may even be bound by another test's server. So ports
// come from below ip_local_port_range, which the kernel never hands out by
// itself, and each is handed out once per reservation period to every test
// process on the machine (portsFile, under an exclusive lock).
func FreePort(t testing.TB, network string) int {
	t.Helper()
	port, err := reservePort(network)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Ports FreePort hands out: from portsLow up to below the kernel's
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768 by
// default).
const (
	portsLow   = 20000
	portsFile  = "/tmp/govs-test-ports"
	portsLease = time.Hour // longer than any test holds a port
)

var portsMu sync.Mutex

func reservePort(network string) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	high := ephemeralLow() - 1
	if high-portsLow < 1000 {
		// No room below the ephemeral range: the kernel's pick.
		return kernelPort(network)
	}
	f, err := os.OpenFile(portsFile, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		// Not ours (another user's run made it): the kernel's pick.
		return kernelPort(network)
	}
	defer f.Close()
	f.Chmod(0o666) // test runs as another user share it too
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("free port: locking %s: %w", portsFile, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	// The file holds "PORT UNIXSECONDS" lines: ports handed out within the
	// lease, and the last one handed out (the next search starts after
	// it, so that a port comes back as late as possible).
	now := time.Now()
	taken := map[int]bool{}
	last := portsLow - 1
	var kept []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var port int
		var at int64
		if _, err := fmt.Sscan(sc.Text(), &port, &at); err != nil {
			continue
		}
		last = port
		if now.Sub(time.Unix(at, 0)) < portsLease {
			taken[port] = true
			kept = append(kept, sc.Text())
		}
	}
	n := high - portsLow + 1
	for i := 1; i <= n; i++ {
		port := portsLow + (last-portsLow+i)%n
		if taken[port] || !bindable(port) {
			continue
		}
		kept = append(kept, fmt.Sprintf("%d %d", port, now.Unix()))
		if err := f.Truncate(0); err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		if _, err := f.WriteAt([]byte(strings.Join(kept, "\n")+"\n"), 0); err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		return port, nil
	}
	return 0, fmt.Errorf("free port: none free in %d-%d", portsLow, high)
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low int
	if _, err := fmt.Sscan(string(b), &low); err != nil {
		return 32768
	}
	return low
}

// bindable tells whether 127.0.0.1:port can be bound now, for TCP and
// for UDP (some tests serve both on one port, as DNS does).
func bindable(port int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	c.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// kernelPort is a port the kernel picks for network, free a moment ago.
func kernelPort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns a free 127.0.0.1:PORT for network: a VIP for a test, or the
// address of a real server that is not there.
func Addr(t testing.TB, network string) string {
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t, network))
}

// Serve listens on a loopback port and hands each connection to handle (it
// is closed when handle returns) until the test ends. It returns the
// address.
func Serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ServeOn(t, ln, handle)
	return ln.Addr().String()
}

// ServeOn is Serve on a listener the caller opened (in a namespace, on a
// given address): each connection goes to handle (closed when it returns)
// until the test ends, when ln is closed.
func ServeOn(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// LineServer is a TCP real server that answers each line with its name, a
// space and the line, so a test sees which real server served it. It
// returns its address.
func LineServer(t testing.TB, name string) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", name, line)
		}
	})
}

// EchoServer is a TCP real server that sends back every byte it receives,
// for at most idle between bytes (0: no limit). It returns its address.
func EchoServer(t testing.TB, idle time.Duration) string {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		if idle > 0 {
			c.SetDeadline(time.Now().Add(idle))
		}
		io.Copy(c, c)
	})
}

// WaitFor polls cond every 5 ms until it holds, failing the test after
// 30 s: generous, since the whole suite runs on two loaded cores (a -race
// daemon starting there has taken seconds); a wait that ends in time costs
// nothing more.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
