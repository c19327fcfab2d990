package netns

import (
	"fmt"
	"net/netip"
	"testing"
)

// LVS is the classic LVS-NAT topology:
//
//	client 10.77.0.2 --- 10.77.0.1 director 10.77.N.1 --- 10.77.N.2 real server N
//	                     (VIP 10.77.0.100)
//
// The client's default route is the director; each real server is on its
// own link and routes through the director (its LVS-NAT gateway). IP
// forwarding and conntrack accounting are on in the director's namespace.
type LVS struct {
	Client, Director *NS
	Reals            []*NS
	ClientAddr       netip.Addr
	VIP              netip.Addr
	RealAddrs        []netip.Addr
	// DirectorRealSide are the director's addresses on each real server's
	// link (what fullnat may SNAT to).
	DirectorRealSide []netip.Addr
}

// NewLVS builds the topology with n real servers (1..8).
func NewLVS(t testing.TB, n int) *LVS {
	t.Helper()
	Require(t)
	if n < 1 || n > 8 {
		t.Fatalf("NewLVS: %d real servers, want 1..8", n)
	}
	l := &LVS{
		Client:     New(t, "client"),
		Director:   New(t, "dir"),
		ClientAddr: netip.MustParseAddr("10.77.0.2"),
		VIP:        netip.MustParseAddr("10.77.0.100"),
	}
	Link(l.Director, "c0", "10.77.0.1/24", l.Client, "eth0", "10.77.0.2/24")
	l.Director.IP("addr", "add", l.VIP.String()+"/32", "dev", "c0")
	l.Client.IP("route", "add", "default", "via", "10.77.0.1")
	l.Director.Sysctl("net.ipv4.ip_forward", "1")
	l.Director.Sysctl("net.netfilter.nf_conntrack_acct", "1")
	for i := 1; i <= n; i++ {
		rs := New(t, fmt.Sprintf("rs%d", i))
		Link(l.Director, fmt.Sprintf("r%d", i), fmt.Sprintf("10.77.%d.1/24", i), rs, "eth0", fmt.Sprintf("10.77.%d.2/24", i))
		rs.IP("route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", i))
		l.Reals = append(l.Reals, rs)
		l.RealAddrs = append(l.RealAddrs, netip.MustParseAddr(fmt.Sprintf("10.77.%d.2", i)))
		l.DirectorRealSide = append(l.DirectorRealSide, netip.MustParseAddr(fmt.Sprintf("10.77.%d.1", i)))
	}
	return l
}

// AddClientAddrs gives the client n more addresses on its link
// (10.77.0.10 upwards, n at most 200), for tests that need many client
// addresses (source hashing); the director reaches them on its link to the
// client. Bind a socket to one to use it.
func (l *LVS) AddClientAddrs(n int) []netip.Addr {
	l.Client.t.Helper()
	if n < 1 || n > 200 {
		l.Client.t.Fatalf("AddClientAddrs: %d addresses, want 1..200", n)
	}
	var out []netip.Addr
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)})
		l.Client.IP("addr", "add", a.String()+"/24", "dev", "eth0")
		out = append(out, a)
	}
	return out
}
