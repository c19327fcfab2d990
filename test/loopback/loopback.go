// Package loopback gives tests real servers and free ports on the loopback
// interface, the only place test traffic may go outside the namespaces a
// test builds itself. Every server stops at the test's cleanup.
package loopback

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// FreePort returns a port on 127.0.0.1 that was free a moment ago, for
// "tcp" or "udp".
func FreePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

// WaitFor polls cond every 5 ms until it holds, failing the test after 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
