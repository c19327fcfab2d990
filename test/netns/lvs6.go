package netns

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// NewLVS6 builds the LVS-NAT topology of NewLVS over IPv6 only, with
// unique local addresses (fd00::/8) that exist only inside the namespaces:
//
//	client fd00:77::2 --- fd00:77::1 director fd00:77:N::1 --- fd00:77:N::2 real server N
//	                      (VIP fd00:77::100)
//
// Duplicate address detection is off in every namespace (and each address
// is added with nodad), so the addresses are usable at once; NewLVS6 waits
// until no address is tentative and every link has its carrier. IPv6
// forwarding and conntrack accounting are on in the director's namespace.
func NewLVS6(t testing.TB, n int) *LVS {
	t.Helper()
	Require6(t)
	if n < 1 || n > 8 {
		t.Fatalf("NewLVS6: %d real servers, want 1..8", n)
	}
	l := &LVS{
		Client:     New(t, "client6"),
		Director:   New(t, "dir6"),
		ClientAddr: netip.MustParseAddr("fd00:77::2"),
		VIP:        netip.MustParseAddr("fd00:77::100"),
	}
	noDAD(l.Client)
	noDAD(l.Director)
	link6(l.Director, "c0", "fd00:77::1/64", l.Client, "eth0", "fd00:77::2/64")
	l.Director.IP("-6", "addr", "add", l.VIP.String()+"/128", "dev", "c0", "nodad")
	l.Director.Sysctl("net.ipv6.conf.all.forwarding", "1")
	l.Director.Sysctl("net.netfilter.nf_conntrack_acct", "1")
	for i := 1; i <= n; i++ {
		rs := New(t, fmt.Sprintf("rs6-%d", i))
		noDAD(rs)
		link6(l.Director, fmt.Sprintf("r%d", i), fmt.Sprintf("fd00:77:%d::1/64", i), rs, "eth0", fmt.Sprintf("fd00:77:%d::2/64", i))
		l.Reals = append(l.Reals, rs)
		l.RealAddrs = append(l.RealAddrs, netip.MustParseAddr(fmt.Sprintf("fd00:77:%d::2", i)))
		l.DirectorRealSide = append(l.DirectorRealSide, netip.MustParseAddr(fmt.Sprintf("fd00:77:%d::1", i)))
	}
	for _, ns := range append([]*NS{l.Client, l.Director}, l.Reals...) {
		waitReady6(t, ns)
	}
	l.Client.IP("-6", "route", "add", "default", "via", "fd00:77::1", "dev", "eth0")
	for i, rs := range l.Reals {
		rs.IP("-6", "route", "add", "default", "via", l.DirectorRealSide[i].String(), "dev", "eth0")
	}
	return l
}

// noDAD turns IPv6 on (a host may default new namespaces to off) and
// duplicate address detection off for the namespace's interfaces, present
// and future.
func noDAD(ns *NS) {
	ns.t.Helper()
	for _, k := range []string{"all", "default"} {
		ns.Sysctl("net.ipv6.conf."+k+".disable_ipv6", "0")
		ns.Sysctl("net.ipv6.conf."+k+".accept_dad", "0")
	}
}

// link6 is Link for IPv6: both ends are brought up before their address is
// added, with nodad.
func link6(a *NS, nameA, addrA string, b *NS, nameB, addrB string) {
	a.t.Helper()
	Link(a, nameA, "", b, nameB, "")
	a.IP("-6", "addr", "add", addrA, "dev", nameA, "nodad")
	b.IP("-6", "addr", "add", addrB, "dev", nameB, "nodad")
}

// waitReady6 waits up to 5 s until the namespace has no tentative IPv6
// address and all its veth links have a carrier.
func waitReady6(t testing.TB, ns *NS) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tentative := strings.Contains(ns.IP("-6", "addr", "show", "tentative"), "inet6")
		down := strings.Contains(ns.IP("-o", "link", "show", "type", "veth"), "NO-CARRIER")
		if !tentative && !down {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: IPv6 not ready after 5 s (tentative addresses %v, links without carrier %v):\n%s",
				ns.Name, tentative, down, ns.IP("-6", "addr", "show"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Require6 skips t unless Require passes and the kernel has IPv6.
func Require6(t testing.TB) {
	t.Helper()
	Require(t)
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("needs a kernel with IPv6")
	}
}
