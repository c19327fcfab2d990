package proxy

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// startUDPBackend answers each datagram with "NAME:payload".
func startUDPBackend(t *testing.T, name string) string { return udpEcho(t, name+":") }

// udpEcho is a UDP real server that answers each datagram with prefix and
// the datagram.
func udpEcho(tb testing.TB, prefix string) string {
	tb.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if prefix == "" {
				c.WriteTo(buf[:n], from) // benchmarks: no allocation
				continue
			}
			c.WriteTo(append([]byte(prefix), buf[:n]...), from)
		}
	}()
	return c.LocalAddr().String()
}

// udpAsk sends msg on c and returns the reply. A lost datagram fails the
// test; the wait is generous (a loaded machine's -race proxy, thousands of
// flows in a row) so that only a loss does.
func udpAsk(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to %q: %v", msg, err)
	}
	return string(buf[:n])
}

func TestUDPFlows(t *testing.T) {
	a, b := startUDPBackend(t, "a"), startUDPBackend(t, "b")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    protocol: udp
    scheduler: rr
    idle_timeout: 2s
    real_servers: [{address: %s}, {address: %s}]
`, vip, a, b))
	// idle_timeout 2s, not 300 ms: a flow must outlive the pauses of a
	// loaded machine between a client's datagrams and until the counts are
	// read, or a second flow begins (the test's doing, not govs's).
	vs := d.Services()[0]
	// Two clients: each keeps its real server for all its datagrams, and
	// replies come from the VIP (the connected socket only accepts those).
	var owners []string
	for i := range 2 {
		c, err := net.Dial("udp", vip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		first := udpAsk(t, c.(*net.UDPConn), fmt.Sprint("m", i))
		owner, _, _ := strings.Cut(first, ":")
		for j := range 3 {
			if got := udpAsk(t, c.(*net.UDPConn), fmt.Sprint("n", j)); got != fmt.Sprintf("%s:n%d", owner, j) {
				t.Fatalf("client %d datagram %d: %q, want from %s", i, j, got, owner)
			}
		}
		owners = append(owners, owner)
	}
	if owners[0] == owners[1] {
		t.Errorf("rr put both clients on %s", owners[0])
	}
	s := vs.Stats.Snapshot()
	if s.Conns != 2 || s.InPkts != 8 || s.OutPkts != 8 {
		t.Errorf("stats = %+v, want 2 flows, 8 datagrams each way", s)
	}
	// UDP flows count as inactive, as in IPVS, and expire when idle.
	if n := vs.RealServers()[0].Dest.InactiveConns(); n != 1 {
		t.Errorf("inactive = %d, want 1", n)
	}
	loopback.WaitFor(t, "flows to expire", func() bool {
		for _, rs := range vs.RealServers() {
			if rs.Dest.InactiveConns() != 0 {
				return false
			}
		}
		return true
	})
}

func TestUDPMaxFlowsAndOnePacket(t *testing.T) {
	a, b := startUDPBackend(t, "a"), startUDPBackend(t, "b")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    protocol: udp
    scheduler: rr
    ops: true
    max_flows: 1
    real_servers: [{address: %s}, {address: %s}]
`, vip, a, b))
	c1, _ := net.Dial("udp", vip)
	defer c1.Close()
	// One-packet scheduling: successive datagrams of one client alternate.
	var got []string
	for i := range 4 {
		owner, _, _ := strings.Cut(udpAsk(t, c1.(*net.UDPConn), fmt.Sprint(i)), ":")
		got = append(got, owner)
	}
	if fmt.Sprint(got) != "[a b a b]" {
		t.Errorf("ops order = %v", got)
	}
	// The flow table holds one client: a second is dropped and counted.
	c2, _ := net.Dial("udp", vip)
	defer c2.Close()
	c2.Write([]byte("x"))
	loopback.WaitFor(t, "drop counted", func() bool { return d.Services()[0].Stats.Dropped.Load() == 1 })
	if s := d.Services()[0].Stats.Snapshot(); s.Conns != 4 || s.OutPkts != 4 {
		t.Errorf("stats = %+v, want 4 scheduled datagrams and 4 replies", s)
	}
	// The metrics tell a full table from other drops.
	if vs := d.Services()[0]; vs.Stats.FlowLimit.Load() != 1 || vs.Flows.Load() != 1 {
		t.Errorf("flow limit drops %d, flows %d; want 1, 1", vs.Stats.FlowLimit.Load(), vs.Flows.Load())
	}
}

// A UDP service removed by a reload keeps its flows during the grace period
// and comes back without rebinding when the next reload restores it.
func TestUDPReloadKeepsFlows(t *testing.T) {
	a := startUDPBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
	tcpVIP := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	withUDP := fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, real_servers: [{address: %s}]}, {address: %s, real_servers: [{address: %s}]}]", vip, a, tcpVIP, loopback.Addr(t, "tcp"))
	without := fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", tcpVIP, loopback.Addr(t, "tcp"))
	d := startDirector(t, withUDP)
	c, _ := net.Dial("udp", vip)
	defer c.Close()
	udpAsk(t, c.(*net.UDPConn), "before")
	if err := apply(t, d, without); err != nil {
		t.Fatal(err)
	}
	if got := udpAsk(t, c.(*net.UDPConn), "during"); got != "a:during" {
		t.Fatalf("flow during grace: %q", got)
	}
	if err := apply(t, d, withUDP); err != nil {
		t.Fatalf("restoring the service: %v", err)
	}
	if got := udpAsk(t, c.(*net.UDPConn), "after"); got != "a:after" {
		t.Fatalf("flow after restore: %q", got)
	}
}

func TestUDPRealServerUnreachable(t *testing.T) {
	a := startUDPBackend(t, "a")
	dead := loopback.Addr(t, "udp") // nothing listens there, nor will
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
	d := startDirector(t, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, scheduler: rr, real_servers: [{address: %s}, {address: %s}]}]", vip, dead, a))
	c, _ := net.Dial("udp", vip)
	defer c.Close()
	uc := c.(*net.UDPConn)
	// The first datagram goes to the dead real server and is lost (UDP); the
	// ICMP error ends the flow, so the retry is scheduled on a.
	uc.Write([]byte("lost"))
	loopback.WaitFor(t, "unreachable noticed", func() bool { return d.Services()[0].Stats.ConnectErrors.Load() == 1 })
	if got := udpAsk(t, uc, "retry"); got != "a:retry" {
		t.Fatalf("retry: %q", got)
	}
}
