package test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// The kernel dataplane over IPv6: the same end-to-end checks as
// nat_test.go, in netns.NewLVS6's topology (client, director and real
// servers with ULA addresses only, VIP fd00:77::100). The helpers here
// format addresses with netip.AddrPort, so IPv6 ones get their brackets.

func newNATLab6(t *testing.T, reals int) *natLab {
	t.Helper()
	return startNATLab(t, netns.NewLVS6(t, reals))
}

// requireIP6Rules checks the service was programmed as IPv6 (ip6 VIP
// match and DNAT), so a pass cannot come from some IPv4 path.
func (l *natLab) requireIP6Rules(want ...string) {
	l.t.Helper()
	out, err := l.Director.Exec("nft", "list", "table", "inet", "govs")
	if err != nil {
		l.t.Logf("nft list (not checked): %v: %s", err, out)
		return
	}
	for _, w := range append([]string{"ip6 daddr " + l.VIP.String(), "dnat ip6 to"}, want...) {
		if !strings.Contains(out, w) {
			l.t.Fatalf("ruleset lacks %q:\n%s", w, out)
		}
	}
}

// rr in the kernel over IPv6: new connections spread evenly, the client
// talks to the VIP and the real servers see the client's own address.
func TestNAT6RoundRobin(t *testing.T) {
	l := newNATLab6(t, 3)
	l.serveTCP(8080)
	l.apply(natConfig("nat", "rr", l.vip(8080), "tcp", l.RealAddrs, nil, ""))
	l.requireIP6Rules("numgen inc mod 3")
	l.checkRoundRobin(8080, 30)
	// conntrack's IPv6 flows reach the statistics (counted at dumps).
	vs := l.d.Services()[0]
	loopback.WaitFor(t, "IPv6 flows counted from conntrack", func() bool {
		return vs.Stats.Conns.Load() == 30 && vs.Stats.InBytes.Load() > 0 && vs.Stats.OutBytes.Load() > 0
	})
}

// fullnat over IPv6: the real servers see the director's IPv6 local
// address, not the client's.
func TestFullNAT6(t *testing.T) {
	l := newNATLab6(t, 2)
	l.serveTCP(8081)
	local := l.DirectorRealSide[0]
	l.apply(natConfig("fullnat", "rr", l.vip(8081), "tcp", l.RealAddrs, nil,
		fmt.Sprintf("    local_addresses: [\"%s\"]\n", local)))
	l.requireIP6Rules("snat ip6 to")
	l.checkFullNATSource(8081, func(int) netip.Addr { return local })
}

// fullnat over IPv6 without local_addresses masquerades: each real server
// sees the director's address on its own link.
func TestFullNAT6Masquerade(t *testing.T) {
	l := newNATLab6(t, 2)
	l.serveTCP(8086)
	l.apply(natConfig("fullnat", "rr", l.vip(8086), "tcp", l.RealAddrs, nil, ""))
	l.requireIP6Rules("masquerade")
	l.checkFullNATSource(8086, func(i int) netip.Addr { return l.DirectorRealSide[i] })
}

// UDP over IPv6: each flow is scheduled once, replies come from the VIP.
func TestNAT6UDP(t *testing.T) {
	l := newNATLab6(t, 2)
	l.serveUDP(5353)
	l.apply(natConfig("nat", "rr", l.vip(5353), "udp", l.RealAddrs, nil, ""))
	l.requireIP6Rules()
	l.checkUDPFlows(5353)
}

// wlc over IPv6 is scheduled by govs through NFQUEUE: the queue reader
// parses IPv6 first packets, and conntrack's IPv6 flows give the counts.
// Weights 2:1 with connections held open give 4:2, which the kernel's
// round-robin fallback would not.
func TestNAT6WeightedLeastConnectionViaQueue(t *testing.T) {
	l := newNATLab6(t, 2)
	l.serveTCP(8082)
	l.apply(natConfig("nat", "wlc", l.vip(8082), "tcp", l.RealAddrs, []int{2, 1}, ""))
	l.requireIP6Rules("ct status ! confirmed", "ct mark map")
	l.checkWLCViaQueue(8082)
}

// fullnat with a queue-scheduled service over IPv6: govs picks, the
// kernel DNATs by the mark and SNATs to the local address.
func TestFullNAT6LeastConnectionViaQueue(t *testing.T) {
	l := newNATLab6(t, 2)
	l.serveTCP(8087)
	local := l.DirectorRealSide[1]
	l.apply(natConfig("fullnat", "wlc", l.vip(8087), "tcp", l.RealAddrs, []int{1, 3},
		fmt.Sprintf("    local_addresses: [\"%s\"]\n", local)))
	l.requireIP6Rules("ct status ! confirmed", "ct mark map", "snat ip6 to")
	got := map[string]int{}
	for range 4 {
		cc, err := l.dial(8087)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.c.Close()
		name, peer, err := cc.ask()
		if err != nil {
			t.Fatal(err)
		}
		if h := peerHost(t, peer); h != local {
			t.Fatalf("%s saw %v, want the local address %v", name, h, local)
		}
		got[name]++
	}
	if got["rs1"] != 1 || got["rs2"] != 3 {
		t.Fatalf("wlc spread %v, want rs1:1 rs2:3", got)
	}
}
