package connsync

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/netns"
)

// TestDaemonsOverTheWire runs two daemons in two namespaces joined by a
// veth pair, over IPv6 multicast and IPv4 unicast: a NAT flow created in
// the first one's conntrack (as its kernel NAT would) is installed in the
// second's, and its deletion follows.
func TestDaemonsOverTheWire(t *testing.T) {
	netns.Require(t)
	for _, tc := range []struct {
		name  string
		v6    bool
		peers bool
	}{{"ipv6 multicast", true, false}, {"ipv4 unicast", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := netns.New(t, "sa"), netns.New(t, "sb")
			for _, ns := range []*netns.NS{a, b} {
				ns.Sysctl("net.ipv6.conf.all.accept_dad", "0")
				ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
				if out, err := ns.Exec("nft", "add table ip t; add chain ip t c { type nat hook prerouting priority -100; }"); err != nil {
					t.Skipf("nft nat: %v %s", err, out)
				}
			}
			netns.Link(a, "s0", "10.60.0.1/24", b, "s0", "10.60.0.2/24")
			a.IP("addr", "add", "fd60::1/64", "dev", "s0")
			b.IP("addr", "add", "fd60::2/64", "dev", "s0")
			time.Sleep(100 * time.Millisecond) // link-local addresses for multicast
			vip := netip.MustParseAddrPort("10.61.0.100:80")
			opts := func(peer string) Options {
				o := Options{Log: slog.New(slog.DiscardHandler), Interface: "s0", SyncID: 9, Key: testKey,
					Services: []Service{{Proto: 6, Addr: vip}}}
				if tc.v6 {
					o.Group = netip.MustParseAddr("ff02::81")
				}
				if tc.peers {
					o.Peers = []netip.Addr{netip.MustParseAddr(peer)}
				}
				return o
			}
			var da, db *Daemon
			if err := a.Do(func() (err error) { da, err = Start(opts("10.60.0.2")); return err }); err != nil {
				t.Fatal(err)
			}
			defer da.Stop()
			if err := b.Do(func() (err error) { db, err = Start(opts("10.60.0.1")); return err }); err != nil {
				t.Fatal(err)
			}
			defer db.Stop()

			sa, err := dialSink(a.FD())
			if err != nil {
				t.Fatal(err)
			}
			defer sa.close()
			sb, err := dialSink(b.FD())
			if err != nil {
				t.Fatal(err)
			}
			defer sb.close()
			e := Entry{Proto: 6, State: 3, Orig: Tuple{netip.MustParseAddrPort("10.61.0.2:40000"), vip},
				Reply: Tuple{netip.MustParseAddrPort("10.62.0.21:8080"), netip.MustParseAddrPort("10.61.0.2:40000")}, Timeout: 600}
			if err := sa.apply(&e); err != nil {
				t.Fatal(err)
			}
			has := func() (Entry, bool) {
				flows, err := sb.ct.Dump(nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := range flows {
					if g := flowEntry(&flows[i]); g.Key() == e.Key() {
						return g, true
					}
				}
				return Entry{}, false
			}
			waitFor(t, "the flow on the peer", func() bool { g, ok := has(); return ok && g.Reply == e.Reply && g.State == 3 })
			del := e
			del.Delete = true
			if err := sa.apply(&del); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the deletion on the peer", func() bool { _, ok := has(); return !ok })
			// A forged message (another key) is counted
			// and change nothing.
			forger, _ := NewNode(Config{Node: 77, Key: []byte("not the shared key at all"), SyncID: 9, Epoch: uint64(time.Now().UnixMilli())})
			forged := e
			forged.Orig.Src = netip.MustParseAddrPort("10.61.0.9:1234")
			forger.Add(time.Now(), forged)
			forger.Flush(time.Now())
			peer := "10.60.0.2:8848"
			if tc.v6 {
				peer = "[ff02::81%s0]:8848"
			}
			if err := a.Do(func() error {
				c, err := net.Dial("udp", peer)
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write(forger.Ready()[0].Data)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the forged message counted", func() bool { return db.Status().Node.Stats.Drops[DropBadMAC] == 1 })
			st := db.Status()
			if st.Installed < 2 || len(st.Node.Peers) != 1 || st.Node.Stats.Drops[DropBadMAC] != 1 {
				t.Fatalf("peer status %+v", st)
			}
			// The peer did not send the flow back (echo suppression).
			if n := da.Status().Installed; n != 0 {
				t.Fatalf("the origin installed %d entries: its own flow came back", n)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // generous: a loaded machine
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A fwmark service's flows are told by their conntrack mark, both
// protocols, one family; an address service's by protocol and VIP:port.
func TestSyncedFlow(t *testing.T) {
	vip := netip.MustParseAddrPort("10.0.0.1:80")
	svcs := map[Service]bool{{Proto: 6, Addr: vip}: true, MarkService(7, false): true, MarkService(8, true): true}
	for _, tc := range []struct {
		proto uint8
		dst   string
		mark  uint32
		want  bool
	}{
		{6, "10.0.0.1:80", 0, true},
		{17, "10.0.0.1:80", 0, false},
		{6, "[::ffff:10.0.0.1]:80", 0, true},
		{6, "10.0.0.2:80", 7, true},
		{17, "10.0.0.2:53", 7, true},
		{1, "10.0.0.2:0", 7, false},
		{6, "10.0.0.2:80", 8, false},
		{6, "[2001:db8::1]:80", 8, true},
		{6, "[2001:db8::1]:80", 7, false},
		{6, "10.0.0.2:80", 0, false},
	} {
		if got := syncedFlow(svcs, tc.proto, netip.MustParseAddrPort(tc.dst), tc.mark); got != tc.want {
			t.Errorf("%d %s mark %d: %v, want %v", tc.proto, tc.dst, tc.mark, got, tc.want)
		}
	}
}
