package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestUDPFlowsSpreadOverLoops: with 4 loops, SO_REUSEPORT spreads 400
// clients over every loop's socket, each flow lives in the table of the
// loop that received it, and the loops' tables add up to the service's.
// Catches a single socket doing all the work, and flows created on a loop
// other than the one their datagrams reach (a client would then have a
// flow per loop).
func TestUDPFlowsSpreadOverLoops(t *testing.T) {
	t.Setenv(loopsEnv, "4")
	a := startUDPBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
	p := New(testLog())
	d := newDirector(p)
	t.Cleanup(func() { d.Shutdown(time.Second) })
	if err := apply(t, d, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, idle_timeout: 60s, real_servers: [{address: %s}]}]", vip, a)); err != nil {
		t.Fatal(err)
	}
	const n = 400
	udpClients(t, vip, n)
	us := p.udpServers()
	if len(us) != 1 || len(us[0].ls) != 4 {
		t.Fatalf("%d udp servers, want 1 with 4 sockets", len(us))
	}
	s := us[0]
	total := 0
	for i, lst := range s.ls {
		got := make(chan int, 1)
		lst.l.Post(func() {
			k := 0
			for _, f := range lst.flows {
				if f.ev.lst == lst && f.ev.fd >= 0 {
					k++
				}
			}
			got <- k
		})
		k := <-got
		if k == 0 {
			t.Errorf("loop %d has no flow of %d: the sockets do not share the clients", i, n)
		}
		total += k
	}
	s.mu.Lock()
	all := len(s.flows)
	s.mu.Unlock()
	if total != n || all != n {
		t.Errorf("loops hold %d flows, the service %d, want %d", total, all, n)
	}
}
