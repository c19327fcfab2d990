package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
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
