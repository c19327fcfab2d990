package test

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestVRRPStrictMode runs govs with strict_mode (keepalived's vrrp_strict)
// in the VRRP lab: while r1 is master its VIP drops what is not one of its
// virtual services, as keepalived's strict rules drop it (the lab's UDP
// echo on VIP:7000 and ping go unanswered), while the proxy service on
// VIP:8080 answers; the drop set in govs's own table holds the VIP while
// master; stopping govs removes the table and the echo answers again (from
// the address left behind on purpose).
func TestVRRPStrictMode(t *testing.T) { testStrictMode(t, false) }

// With IPv6 neighbour discovery still passes (the client resolves the VIP
// and the master's unsolicited NAs leave), the rest is dropped as for IPv4.
func TestVRRPStrictMode6(t *testing.T) { testStrictMode(t, true) }

func testStrictMode(t *testing.T, v6 bool) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft to read the ruleset (apt-get install nftables)")
	}
	l := newVRRPLab(t, v6)
	r1 := l.routers[0]
	var ln net.Listener
	if err := r1.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	loopback.ServeOn(t, ln, func(c net.Conn) { c.Write([]byte("r1-backend\n")) })
	top := fmt.Sprintf("virtual_servers: [{address: '%s', forwarding: proxy, real_servers: [{address: '%s'}]}]\n",
		netip.AddrPortFrom(l.vip, 8080), ln.Addr())
	d := r1.startGovs(vrrpOpts{version: 3, interval: 100 * time.Millisecond, priority: 150, top: top, extra: "    strict_mode: true\n"})
	l.waitMaster(r1, 5*time.Second)

	ruleset := func() string { out, _ := r1.ns.Exec("nft", "list", "ruleset"); return out }
	loopback.WaitFor(t, "the VIP in the strict drop set", func() bool {
		return strings.Contains(ruleset(), "elements = { "+l.vip.String()+" }")
	})
	if rs := ruleset(); !strings.Contains(rs, "table ip govs_vrrp") || !strings.Contains(rs, "table ip6 govs_vrrp") ||
		!strings.Contains(rs, "hook input priority filter - 1") || !strings.Contains(rs, l.vip.String()+" . 8080") {
		t.Fatalf("strict tables:\n%s", rs)
	}
	got, err := l.tcpAsk(netip.AddrPortFrom(l.vip, 8080))
	if err != nil || got != "r1-backend\n" {
		t.Fatalf("the virtual service on the VIP under strict_mode: %q, %v", got, err)
	}
	p := l.probe()
	t0 := time.Now()
	time.Sleep(500 * time.Millisecond)
	if by := p.answeredBy(t0, time.Now()); len(by) != 0 {
		t.Fatalf("traffic to the VIP that is no virtual service was answered under strict_mode: %v", by)
	}
	if out, err := l.client.Exec("ping", "-c", "1", "-W", "1", l.vip.String()); err == nil {
		t.Errorf("ping to the VIP answered under strict_mode:\n%s", out)
	}

	d.signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("govs did not stop on SIGTERM")
	}
	if rs := ruleset(); strings.Contains(rs, "govs_vrrp") {
		t.Fatalf("strict tables left after govs stopped:\n%s", rs)
	}
	// The VIP is gone with govs; put it back by hand: nothing drops now.
	r1.ns.IP("addr", "add", l.vipCIDR(), "dev", "eth0")
	p.firstFrom(t, r1.name, time.Now(), 5*time.Second)

	// A table left by a govs that crashed while master is removed by the
	// next one, strict or not: it would drop what that one serves.
	if out, err := r1.ns.Exec("nft", "add table ip6 govs_vrrp; add set ip6 govs_vrrp vips { type ipv6_addr; }"); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	r1.ns.IP("addr", "del", l.vipCIDR(), "dev", "eth0")
	r1.startGovs(vrrpOpts{version: 3, interval: 100 * time.Millisecond, priority: 150, top: top})
	if rs := ruleset(); strings.Contains(rs, "govs_vrrp") {
		t.Fatalf("a strict table of an earlier run survives the next start:\n%s", rs)
	}
}
