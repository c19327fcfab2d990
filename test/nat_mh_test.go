package test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"maps"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/internal/sched"
	"github.com/govs-lb/govs/test/loopback"
)

// mh in the kernel and the sorry server in nat and fullnat, end to end in
// network namespaces (netns.NewLVS's topology, newNATLab's director).

// jhash is the kernel's jhash() (include/linux/jhash.h), which the nft
// hash expression runs over its registers: words read in the machine's
// byte order (little-endian here). Keys here are whole words.
func jhash(key []byte, seed uint32) uint32 {
	rol := bits.RotateLeft32
	a := 0xdeadbeef + uint32(len(key)) + seed
	b, c := a, a
	word := func(i int) uint32 { return binary.LittleEndian.Uint32(key[i:]) }
	for len(key) > 12 {
		a, b, c = a+word(0), b+word(4), c+word(8)
		a -= c
		a ^= rol(c, 4)
		c += b
		b -= a
		b ^= rol(a, 6)
		a += c
		c -= b
		c ^= rol(b, 8)
		b += a
		a -= c
		a ^= rol(c, 16)
		c += b
		b -= a
		b ^= rol(a, 19)
		a += c
		c -= b
		c ^= rol(b, 4)
		b += a
		key = key[12:]
	}
	if len(key) == 0 {
		return c
	}
	var k [12]byte
	copy(k[:], key)
	a += binary.LittleEndian.Uint32(k[0:])
	b += binary.LittleEndian.Uint32(k[4:])
	c += binary.LittleEndian.Uint32(k[8:])
	c ^= b
	c -= rol(b, 14)
	a ^= c
	a -= rol(c, 11)
	b ^= a
	b -= rol(a, 25)
	c ^= b
	c -= rol(b, 16)
	a ^= c
	a -= rol(c, 4)
	b ^= a
	b -= rol(a, 14)
	c ^= b
	c -= rol(b, 24)
	return c
}

// kernelSlot is the Maglev position the kernel's rule looks a client up
// at: "jhash ip saddr [. th sport] mod M seed 0x676f7673", the modulus
// applied as the kernel's reciprocal_scale.
func kernelSlot(client netip.AddrPort, port bool) int {
	key := client.Addr().AsSlice()
	if port {
		key = binary.BigEndian.AppendUint16(key, client.Port())
		key = append(key, 0, 0)
	}
	h := jhash(key, 0x676f7673)
	return int(uint64(h) * nft.MaglevTableSize >> 32)
}

// maglevOwners is, for each position of the kernel's table over servers
// (equal weights), the server's name ("rs1" for l.RealAddrs[0], ...).
func (l *natLab) maglevOwners(port int, servers ...int) []string {
	var ms []sched.MaglevServer
	for _, i := range servers {
		ms = append(ms, sched.MaglevServer{Addr: netip.AddrPortFrom(l.RealAddrs[i], uint16(port)), Weight: 1})
	}
	var out []string
	for _, i := range sched.MaglevTable(ms, nft.MaglevTableSize) {
		out = append(out, fmt.Sprintf("rs%d", servers[i]+1))
	}
	return out
}

// requireRules checks the ruleset holds every string of want and none of
// unwanted.
func (l *natLab) requireRules(want, unwanted []string) {
	l.t.Helper()
	out, err := l.Director.Exec("nft", "list", "table", "inet", "govs")
	if err != nil {
		l.t.Logf("nft list (not checked): %v: %s", err, out)
		return
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			l.t.Fatalf("ruleset lacks %q:\n%s", w, chainsOnly(out))
		}
	}
	for _, u := range unwanted {
		if strings.Contains(out, u) {
			l.t.Fatalf("ruleset has %q:\n%s", u, chainsOnly(out))
		}
	}
}

// askFrom opens a TCP connection from the client address src, asks once
// and closes it.
func (l *natLab) askFrom(src netip.Addr, port int) (name, peer string, err error) {
	var c net.Conn
	err = l.Client.Do(func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err = d.Dial("tcp", l.vip(port).String())
		return err
	})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return (&clientConn{c: c, r: bufio.NewReader(c)}).ask()
}

// askUDPFrom sends one datagram from the client's src to the VIP's port
// and returns the answering real server.
func (l *natLab) askUDPFrom(src netip.AddrPort, port int) (string, error) {
	var pc *net.UDPConn
	if err := l.Client.Do(func() (err error) {
		pc, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(l.vip(port)))
		return err
	}); err != nil {
		return "", err
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := pc.Write([]byte("q")); err != nil {
		return "", err
	}
	b := make([]byte, 200)
	n, err := pc.Read(b)
	if err != nil {
		return "", err
	}
	name, _, _ := strings.Cut(string(b[:n]), " ")
	return name, nil
}

// flushConntrack empties the director's conntrack table, so the next
// packets of every flow are scheduled afresh.
func (l *natLab) flushConntrack() {
	l.t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: l.Director.FD()})
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Flush(); err != nil {
		l.t.Fatal(err)
	}
}

// checkMoves compares a mapping of clients to real servers before and
// after removing the real server gone: each of its clients moved to another
// server, and every other client moved exactly when the Maglev table moved
// its position (few: the Maglev bound), which with these addresses is none.
func checkMoves(t *testing.T, before, after, predicted map[string]string, gone string) {
	t.Helper()
	lost, extra := 0, 0
	for c, was := range before {
		now := after[c]
		switch {
		case now == gone:
			t.Errorf("client %s still on the removed %s", c, gone)
		case was == gone:
			lost++
		case now != was:
			extra++
			t.Errorf("client %s moved from %s to %s though its server stayed", c, was, now)
		}
		if predicted != nil && now != predicted[c] {
			t.Errorf("client %s on %s after the removal; the kernel's Maglev table says %s", c, now, predicted[c])
		}
	}
	if lost == 0 {
		t.Errorf("no client was on %s: the test proves nothing", gone)
	}
	t.Logf("removing %s moved its %d clients and %d others of %d", gone, lost, extra, len(before))
}

// mh runs in the kernel: no packet goes through NFQUEUE, clients are
// spread over the real servers by their address, each keeps its server,
// and removing a real server moves only its clients. The mapping is the
// one the Maglev table built by sched.MaglevTable gives at the position
// jhash(client address) mod 4093.
func TestNATMaglev(t *testing.T) {
	l := newNATLab(t, 3)
	l.serveTCP(8090)
	clients := l.AddClientAddrs(60)
	l.apply(natConfig("nat", "mh", l.vip(8090), "tcp", l.RealAddrs, nil, ""))
	l.requireRules([]string{"jhash @nh,96,32 mod 4093 seed 0x676f7673"}, []string{"queue num"})

	owners := l.maglevOwners(8090, 0, 1, 2)
	mapping := func(owners []string) (got, predicted map[string]string) {
		got, predicted = map[string]string{}, map[string]string{}
		for _, c := range clients {
			name, peer, err := l.askFrom(c, 8090)
			if err != nil {
				t.Fatalf("client %s: %v", c, err)
			}
			if h := peerHost(t, peer); h != c {
				t.Fatalf("real server saw %v, want the client %v (nat keeps the client address)", h, c)
			}
			got[c.String()] = name
			predicted[c.String()] = owners[kernelSlot(netip.AddrPortFrom(c, 0), false)]
		}
		return got, predicted
	}
	before, predicted := mapping(owners)
	spread := map[string]int{}
	for c, name := range before {
		spread[name]++
		if predicted[c] != name {
			t.Errorf("client %s went to %s; the kernel's Maglev table says %s", c, name, predicted[c])
		}
	}
	t.Logf("60 clients spread %v", spread)
	for _, n := range []string{"rs1", "rs2", "rs3"} {
		if spread[n] < 8 {
			t.Fatalf("mh spread %v: %s has too few clients", spread, n)
		}
	}
	// A client keeps its server, connection after connection.
	again, _ := mapping(owners)
	for c, name := range before {
		if again[c] != name {
			t.Fatalf("client %s went to %s, then to %s", c, name, again[c])
		}
	}

	// rs2 removed by a reload: its clients, and only they, move.
	l.apply(natConfig("nat", "mh", l.vip(8090), "tcp", []netip.Addr{l.RealAddrs[0], l.RealAddrs[2]}, nil, ""))
	after, predicted := mapping(l.maglevOwners(8090, 0, 2))
	checkMoves(t, before, after, predicted, "rs2")
	if n := l.dp.QueuedPackets(); n != 0 {
		t.Fatalf("%d packets went through NFQUEUE for a kernel mh service", n)
	}
}

// mh-port hashes the client's port too: one client address spreads over
// the real servers by source port, a port keeps its server, and a real
// server that fails its health check (inhibit_on_failure: it stays at
// weight 0) loses its ports to the others with mh-fallback while every
// other port stays where it was; its ports come back when it does.
func TestNATMaglevPortFallback(t *testing.T) {
	l := newNATLab(t, 3)
	l.serveUDP(5390)
	dir := t.TempDir()
	for _, a := range l.RealAddrs {
		writeFile(t, filepath.Join(dir, "up-"+a.String()), "")
	}
	extra := "    scheduler_flags: [mh-port, mh-fallback]\n    inhibit_on_failure: true\n" +
		fmt.Sprintf("    health_check: {type: script, command: \"test -e %s/up-$GOVS_REAL_SERVER_ADDRESS\", interval: 100ms, timeout: 2s, rise: 1, fall: 2}\n", dir)
	// script_user root: the check tests files in a directory only root may enter.
	l.apply("script_user: root\n" + natConfig("nat", "mh", l.vip(5390), "udp", l.RealAddrs, nil, extra))
	l.requireRules([]string{"jhash @nh,96,32 . th sport mod 4093"}, []string{"queue num"})

	owners := l.maglevOwners(5390, 0, 1, 2)
	const ports = 90
	mapping := func() map[string]string {
		l.flushConntrack()
		got := map[string]string{}
		for i := range ports {
			src := netip.AddrPortFrom(l.ClientAddr, uint16(40000+i))
			name, err := l.askUDPFrom(src, 5390)
			if err != nil {
				t.Fatalf("port %d: %v", src.Port(), err)
			}
			got[src.String()] = name
		}
		return got
	}
	before := mapping()
	spread := map[string]int{}
	for c, name := range before {
		spread[name]++
		if want := owners[kernelSlot(netip.MustParseAddrPort(c), true)]; want != name {
			t.Errorf("client %s went to %s; the kernel's Maglev table says %s", c, name, want)
		}
	}
	t.Logf("%d ports spread %v", ports, spread)
	for _, n := range []string{"rs1", "rs2", "rs3"} {
		if spread[n] < 15 {
			t.Fatalf("mh-port spread %v: %s has too few ports", spread, n)
		}
	}
	if again := mapping(); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatalf("ports changed servers from one round to the next:\n%v\n%v", before, again)
	}

	// rs3 fails: inhibited at weight 0, it keeps its positions, which
	// mh-fallback hands to rs1 and rs2; no other port moves.
	vs := l.d.Services()[0]
	os.Remove(filepath.Join(dir, "up-"+l.RealAddrs[2].String()))
	loopback.WaitFor(t, "rs3 at weight 0", func() bool { return vs.RealServers()[2].Dest.Weight() == 0 })
	// The kernel map follows the weight after the health decision, not at
	// once: wait for it to take rs3's ports away (a loaded machine may
	// take longer than any fixed pause), then check no other port moved.
	var after map[string]string
	waitFor(t, "the kernel map to move rs3's ports", func() bool {
		after = mapping()
		return !slices.Contains(slices.Collect(maps.Values(after)), "rs3")
	})
	checkMoves(t, before, after, nil, "rs3")

	// rs3 is back: every port is where it was.
	writeFile(t, filepath.Join(dir, "up-"+l.RealAddrs[2].String()), "")
	loopback.WaitFor(t, "rs3 back", func() bool { return vs.RealServers()[2].Dest.Weight() == 1 })
	var back map[string]string
	deadline := time.Now().Add(time.Minute)
	for back = mapping(); fmt.Sprint(back) != fmt.Sprint(before) && time.Now().Before(deadline); back = mapping() {
		time.Sleep(100 * time.Millisecond) // the kernel map follows the weight
	}
	if fmt.Sprint(back) != fmt.Sprint(before) {
		t.Fatalf("ports did not come back to their servers:\n%v\n%v", before, back)
	}
	if n := l.dp.QueuedPackets(); n != 0 {
		t.Fatalf("%d packets went through NFQUEUE for a kernel mh service", n)
	}
}

// chainsOnly is a ruleset listing without the maps' elements.
func chainsOnly(ruleset string) string {
	var b strings.Builder
	skip := false
	for _, line := range strings.Split(ruleset, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "elements = {"):
			skip = !strings.HasSuffix(t, "}")
			b.WriteString(line[:strings.Index(line, "elements")] + "elements = { ... }\n")
			continue
		case skip:
			skip = !strings.HasSuffix(t, "}")
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// sorryLab is a newNATLab with rs1 and rs2 as real servers, health checked
// by a script that tests for a file each (up-ADDRESS in dir), and rs3 as
// the sorry server.
type sorryLab struct {
	*natLab
	dir  string
	port int
}

func newSorryLab(t *testing.T, fwd, schedName string, port int, extra string) *sorryLab {
	l := &sorryLab{natLab: newNATLab(t, 3), dir: t.TempDir(), port: port}
	l.serveTCP(port)
	l.setUp(0, true)
	l.setUp(1, true)
	extra += fmt.Sprintf("    sorry_server: \"%s\"\n", netip.AddrPortFrom(l.RealAddrs[2], uint16(port))) +
		fmt.Sprintf("    health_check: {type: script, command: \"test -e %s/up-$GOVS_REAL_SERVER_ADDRESS\", interval: 100ms, timeout: 2s, rise: 1, fall: 2}\n", l.dir)
	if fwd == "fullnat" {
		extra += fmt.Sprintf("    local_addresses: [%s]\n", l.DirectorRealSide[0])
	}
	// script_user root: the check tests files in a directory only root may enter.
	l.apply("script_user: root\n" + natConfig(fwd, schedName, l.vip(port), "tcp", l.RealAddrs[:2], nil, extra))
	return l
}

// setUp makes real server i pass (up) or fail its health check.
func (l *sorryLab) setUp(i int, up bool) {
	f := filepath.Join(l.dir, "up-"+l.RealAddrs[i].String())
	if up {
		writeFile(l.t, f, "")
	} else {
		os.Remove(f)
	}
}

// waitNewConns waits until new connections go to one of want, then checks
// that the next few all do.
func (l *sorryLab) waitNewConns(what string, want ...string) {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		name, _, err := l.askOnce(l.port)
		if err == nil && strings.Contains(strings.Join(want, " "), name) {
			break
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: new connections go to %q (%v), want %v", what, name, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 6 {
		name, _, err := l.askOnce(l.port)
		if err != nil {
			l.t.Fatalf("%s: %v", what, err)
		}
		if !strings.Contains(strings.Join(want, " "), name) {
			l.t.Fatalf("%s: a new connection went to %s, want %v", what, name, want)
		}
	}
}

// The sorry server takes the new connections while the service has no
// real server available (the quorum is lost), in the kernel dataplane as
// in proxy forwarding, whatever the scheduler (the kernel's rr and mh, the
// queue's wlc): nat DNATs to it, fullnat also SNATs. When a real server
// comes back, new connections go to it again while the sorry server's
// established ones keep running.
func TestNATSorryServer(t *testing.T) {
	for _, tc := range []struct{ fwd, sched string }{
		{"nat", "rr"}, {"nat", "mh"}, {"nat", "wlc"}, {"fullnat", "wlc"}, {"fullnat", "mh"},
	} {
		t.Run(tc.fwd+"/"+tc.sched, func(t *testing.T) {
			l := newSorryLab(t, tc.fwd, tc.sched, 8091, "")
			l.waitNewConns("both real servers up", "rs1", "rs2")
			queuedBefore := l.dp.QueuedPackets()
			if (tc.sched == "wlc") != (queuedBefore > 0) {
				t.Fatalf("%d packets went through NFQUEUE for %s", queuedBefore, tc.sched)
			}

			l.setUp(0, false)
			l.setUp(1, false)
			l.waitNewConns("every real server down", "rs3")
			// The kernel alone sends to the sorry server, whatever the
			// scheduler: nothing goes through NFQUEUE any more.
			queuedSorry := l.dp.QueuedPackets()
			cc, err := l.dial(l.port)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.c.Close()
			name, peer, err := cc.ask()
			if err != nil || name != "rs3" {
				t.Fatalf("connection to the sorry server: %s, %v", name, err)
			}
			wantPeer := l.ClientAddr
			if tc.fwd == "fullnat" {
				wantPeer = l.DirectorRealSide[0]
			}
			if h := peerHost(t, peer); h != wantPeer {
				t.Fatalf("the sorry server saw %v, want %v", h, wantPeer)
			}

			if n := l.dp.QueuedPackets(); n != queuedSorry {
				t.Fatalf("%d packets went through NFQUEUE while the sorry server stood in", n-queuedSorry)
			}

			l.setUp(0, true)
			l.waitNewConns("rs1 back", "rs1")
			if name, _, err := cc.ask(); err != nil || name != "rs3" {
				t.Fatalf("established connection to the sorry server after the quorum came back: %s, %v", name, err)
			}
			if tc.sched != "wlc" {
				if n := l.dp.QueuedPackets(); n != queuedBefore {
					t.Fatalf("%d packets went through NFQUEUE for a kernel-scheduled service", n-queuedBefore)
				}
			}
		})
	}
}

// With a quorum of 2, losing one of two real servers already hands the new
// connections to the sorry server, though the other one is available; with
// expire_nodest_conn the sorry server's flows end when the quorum is back,
// as IPVS ends a removed destination's.
func TestNATSorryServerQuorum(t *testing.T) {
	l := newSorryLab(t, "nat", "rr", 8092, "    quorum: 2\n    expire_nodest_conn: true\n")
	l.waitNewConns("quorum up", "rs1", "rs2")
	l.setUp(1, false)
	l.waitNewConns("quorum lost", "rs3")
	cc, err := l.dial(l.port)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.c.Close()
	if name, _, err := cc.ask(); err != nil || name != "rs3" {
		t.Fatalf("connection to the sorry server: %s, %v", name, err)
	}
	l.setUp(1, true)
	l.waitNewConns("quorum back", "rs1", "rs2")
	// The flows end right after the rules change (the next conntrack
	// dump): the connection stops answering.
	deadline := time.Now().Add(3 * time.Second)
	for {
		name, _, err := cc.ask()
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection to the sorry server still answered by %s with expire_nodest_conn", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mh over IPv6 in the kernel, with mh-port: the hash covers the 16-byte
// address and the port; ports spread over the real servers exactly as the
// Maglev table says, with nothing through NFQUEUE.
func TestNAT6MaglevPort(t *testing.T) {
	l := newNATLab6(t, 3)
	l.serveUDP(5391)
	l.apply(natConfig("nat", "mh", l.vip(5391), "udp", l.RealAddrs, nil, "    scheduler_flags: [mh-port]\n"))
	l.requireIP6Rules("jhash @nh,64,128 . th sport mod 4093")
	owners := l.maglevOwners(5391, 0, 1, 2)
	spread := map[string]int{}
	for i := range 60 {
		src := netip.AddrPortFrom(l.ClientAddr, uint16(41000+i))
		name, err := l.askUDPFrom(src, 5391)
		if err != nil {
			t.Fatalf("port %d: %v", src.Port(), err)
		}
		if want := owners[kernelSlot(src, true)]; name != want {
			t.Errorf("client %s went to %s; the kernel's Maglev table says %s", src, name, want)
		}
		spread[name]++
	}
	if len(spread) != 3 {
		t.Fatalf("mh-port spread %v, want all three real servers", spread)
	}
	if n := l.dp.QueuedPackets(); n != 0 {
		t.Fatalf("%d packets went through NFQUEUE for a kernel mh service", n)
	}
}
