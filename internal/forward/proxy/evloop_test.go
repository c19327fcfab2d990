package proxy

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/loopback"
)

// holdingBackend accepts connections and holds them, with no goroutine per
// connection, until the test ends.
func holdingBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func countConns(t *testing.T, d *director.Director) int {
	n := 0
	if err := d.Connections(func(c director.Connection) bool {
		if !c.Template {
			n++
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdleConnectionsHoldNoGoroutine: with the event loops (the default on
// Linux), idle proxied connections cost no goroutine; the goroutine data
// path costs two each. Catches a data path that parks a goroutine per
// connection (and its stack: the memory of an idle connection).
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	for _, mode := range []string{"", "off"} {
		t.Run("GOVS_PROXY_LOOPS="+mode, func(t *testing.T) {
			if mode == "" && !eventLoopSupported {
				t.Skip("event loops are Linux's")
			}
			t.Setenv(loopsEnv, mode)
			be := holdingBackend(t)
			vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
			d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, be))
			// A first connection starts the loops and the pools.
			first, err := net.Dial("tcp", vip)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			loopback.WaitFor(t, "the first connection", func() bool { return countConns(t, d) == 1 })
			// Goroutines started since, and running: not offset by ones
			// that end meanwhile (goroutinesSince).
			before := goroutineIDs()
			const n = 100
			for range n {
				c, err := net.DialTimeout("tcp", vip, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			loopback.WaitFor(t, "the connections to reach the real server", func() bool { return countConns(t, d) == n+1 })
			if mode == "off" {
				// Listed before their two goroutines start: wait for them.
				loopback.WaitFor(t, "two goroutines per connection on the goroutine path", func() bool {
					return goroutinesSince(before) >= 2*n
				})
				return
			}
			if grew := goroutinesSince(before); grew > 10 {
				t.Errorf("%d idle connections added %d goroutines, want none", n, grew)
			}
		})
	}
}

// TestGoroutineDataPath runs the TCP tests on the goroutine data path
// (GOVS_PROXY_LOOPS=off), which the rest of the package runs on the event
// loops: both must keep every behaviour.
func TestGoroutineDataPath(t *testing.T) {
	for name, test := range map[string]func(*testing.T){
		"RoundRobinAndStats":      TestTCPRoundRobinAndStats,
		"HalfClose":               TestTCPHalfClose,
		"ConnectRetry":            TestTCPConnectRetry,
		"IdleTimeout":             TestTCPIdleTimeout,
		"SendProxy":               TestTCPSendProxy,
		"MaxConnections":          TestTCPMaxConnections,
		"ConnectionList":          TestConnectionList,
		"StopClosesQuiet":         TestStopClosesQuietConnection,
		"TerminationServerDown":   TestTerminationServerDown,
		"TerminationClientAbort":  TestTerminationClientAbort,
		"TerminationServerIdle":   TestTerminationServerTimeout,
		"TerminationHalfClosed":   TestTerminationHalfClosedTimeout,
		"TerminationAdminKill":    TestTerminationAdminKill,
		"TerminationConnTimeout":  TestTerminationConnectTimeout,
		"TerminationPerClientMax": TestTerminationPerClientLimit,
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(loopsEnv, "off")
			test(t)
		})
	}
}

// TestSecondDirectorOnSameVIP: a VIP another process (here another
// director) already serves is refused, as one plain listener was, although
// the loops' listeners share their address with SO_REUSEPORT: a second govs
// must not join the group and take half the connections.
func TestSecondDirectorOnSameVIP(t *testing.T) {
	be := startBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	cfg := fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, be.addr)
	startDirector(t, cfg)
	d2 := director.New(testLog(), New(testLog()))
	t.Cleanup(func() { d2.Shutdown(time.Second) })
	err := apply(t, d2, cfg)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second director on %s: %v, want address already in use", vip, err)
	}
	if name, err := ask(t, vip); err != nil || name != "a" {
		t.Errorf("the first director stopped serving: %q, %v", name, err)
	}
}
