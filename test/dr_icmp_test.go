package test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

func TestDRPathMTUAndTTL(t *testing.T)  { testDRPathMTUAndTTL(t, false) }
func TestDRPathMTUAndTTL6(t *testing.T) { testDRPathMTUAndTTL(t, true) }

// testDRPathMTUAndTTL: path MTU discovery works through the DR director.
// The router's link to the client has an MTU of 1280 while the segment's is
// 1500, so a real server's full-size reply cannot pass the router: it sends
// "fragmentation needed" (IPv6: "packet too big") to the reply's source,
// the VIP, which it routes to the director. The director must pass the
// error on to the real server that owns the flow; only then does the real
// server lower its path MTU to the client (its route cache shows mtu 1280)
// and resend in segments that fit, and the client gets the whole reply.
// Without it the transfer stalls (no MTU probing by default): the read
// below times out.
//
// It also checks the TTL the real server sees: the client sends with 64,
// the router takes one, the director one more (nf_dup does, as IPVS's
// decrement_ttl does for DR), so every packet to the VIP arrives with 62.
func testDRPathMTUAndTTL(t *testing.T, v6 bool) {
	if _, err := exec.LookPath("nft"); err != nil && os.Getenv("CI") == "" {
		t.Skip("needs the nft command for the real servers' TTL counters")
	}
	l := newDRLab(t, 2, v6)
	const size = 256 << 10
	any := netip.IPv4Unspecified()
	if v6 {
		any = netip.IPv6Unspecified()
	}
	// Each real server sends size bytes on port 8080 to whoever connects.
	payload := []byte(strings.Repeat("0123456789abcdef", size/16))
	for _, rs := range l.Reals {
		var ln net.Listener
		if err := rs.Do(func() (err error) {
			ln, err = net.Listen("tcp", netip.AddrPortFrom(any, 8080).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		loopback.ServeOn(t, ln, func(c net.Conn) {
			c.SetDeadline(time.Now().Add(60 * time.Second))
			c.Write(payload)
		})
	}
	fam, ip, ttl, icmp := "ip", "ip", "ttl", "icmp type destination-unreachable"
	if v6 {
		fam, ip, ttl, icmp = "ip6", "ip6", "hoplimit", "icmpv6 type packet-too-big"
	}
	// Counters on each real server: the TCP packets to the VIP with TTL 62,
	// with another, and the ICMP errors about the VIP's replies.
	for _, rs := range l.Reals {
		rules := fmt.Sprintf("table %[1]s drttl { chain c { type filter hook prerouting priority -400; policy accept; "+
			"%[2]s daddr %[3]s tcp dport 8080 %[2]s %[4]s 62 counter; %[2]s daddr %[3]s tcp dport 8080 %[2]s %[4]s != 62 counter; "+
			"%[2]s daddr %[3]s %[5]s counter; }; }", fam, ip, l.VIP, ttl, icmp)
		if out, err := rs.Exec("nft", rules); err != nil {
			t.Fatalf("nft on the real server: %v: %s", err, out)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "virtual_servers:\n  - address: \"%s\"\n    forwarding: dr\n    scheduler: rr\n    real_servers:\n",
		netip.AddrPortFrom(l.VIP, 8080))
	for _, a := range l.RealAddrs {
		fmt.Fprintf(&b, "      - {address: \"%s\"}\n", netip.AddrPortFrom(a, 8080))
	}
	l.apply(b.String())
	l.Router.IP("link", "set", "c0", "mtu", "1280")

	// One transfer per real server (rr): each must learn the MTU.
	for i := range l.Reals {
		var c net.Conn
		err := l.Client.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.VIP, 8080).String(), 5*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("transfer %d: connect: %v", i+1, err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		n, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil || n != size {
			t.Fatalf("transfer %d: got %d of %d bytes (%v): the real server never learned the path MTU "+
				"(the director did not pass the ICMP error on)", i+1, n, size, err)
		}
	}
	client := "10.79.0.2"
	if v6 {
		client = "fd79:0::2"
	}
	for i, rs := range l.Reals {
		out := rs.IP("route", "get", client)
		if !strings.Contains(out, "mtu 1280") {
			t.Errorf("real server %d: route to the client without the learned mtu 1280: %s", i+1, out)
		}
	}

	// The TTL (hop limit) the real servers saw.
	re := regexp.MustCompile(`counter packets (\d+)`)
	for i, rs := range l.Reals {
		out, err := rs.Exec("nft", "list", "table", fam, "drttl")
		if err != nil {
			t.Fatalf("nft list: %v: %s", err, out)
		}
		m := re.FindAllStringSubmatch(out, -1)
		if len(m) != 3 {
			t.Fatalf("counters not found in %s", out)
		}
		good, _ := strconv.Atoi(m[0][1])
		bad, _ := strconv.Atoi(m[1][1])
		errs, _ := strconv.Atoi(m[2][1])
		t.Logf("real server %d: %d TCP packets to the VIP with %s 62, %d with another; %d ICMP errors passed on",
			i+1, good, ttl, bad, errs)
		if good == 0 || bad != 0 {
			t.Errorf("real server %d: %d packets with %s 62 and %d with another; want all with 62 (64, less the router and the director)",
				i+1, good, ttl, bad)
		}
		if errs == 0 {
			t.Errorf("real server %d: no ICMP error reached it", i+1)
		}
	}
}
