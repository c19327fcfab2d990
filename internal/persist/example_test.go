package persist_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/persist"
	"github.com/govs-lb/govs/internal/sched"
)

// A persistent service: clients of one /24 stick to one real server for
// five minutes after their last connection.
func Example() {
	mask, _ := persist.ParseNetmask("255.255.255.0")
	tab, _ := persist.New[netip.AddrPort](persist.Config{Timeout: 5 * time.Minute, Netmask: mask})
	vip := netip.MustParseAddrPort("192.0.2.10:443")

	servers := []*sched.Dest{
		sched.NewDest(netip.MustParseAddrPort("10.0.0.1:443"), 1),
		sched.NewDest(netip.MustParseAddrPort("10.0.0.2:443"), 1),
	}
	rr, _ := sched.New("rr", sched.Options{})
	rr.Update(servers)

	connect := func(client string) *persist.Template {
		c := netip.MustParseAddr(client)
		if tp := tab.Lookup(vip, c); tp != nil {
			return tp
		}
		tp, _ := tab.Bind(vip, c, rr.Pick(&sched.Key{Client: netip.AddrPortFrom(c, 40000), VIP: vip}))
		return tp
	}
	for _, client := range []string{"198.51.100.7", "198.51.100.99", "203.0.113.5", "198.51.100.7"} {
		tp := connect(client)
		fmt.Println(client, "->", tp.Dest().Addr)
		tab.Release(tp) // when the connection ends
	}
	// Output:
	// 198.51.100.7 -> 10.0.0.1:443
	// 198.51.100.99 -> 10.0.0.1:443
	// 203.0.113.5 -> 10.0.0.2:443
	// 198.51.100.7 -> 10.0.0.1:443
}
