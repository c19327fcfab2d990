package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/loopback"
)

// listed returns the director's entry for client, if any.
func listed(t *testing.T, d *director.Director, client netip.AddrPort) (director.Connection, bool) {
	t.Helper()
	var found director.Connection
	ok := false
	if err := d.Connections(func(c director.Connection) bool {
		if c.Client == client && !c.Template {
			found, ok = c, true
			return false
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return found, ok
}

// The proxy lists its connections as IPVS would: ESTABLISHED, FIN_WAIT
// once the client has closed its side, CLOSE_WAIT once the real server
// has, with bytes each way and what is left of the idle timeout; a UDP
// flow as UDP; nothing once a connection has ended.
func TestConnectionList(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			accepted <- c
		}
	}()
	udpBackend := startUDPBackend(t, "u")
	vip := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp")))
	uvip := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp")))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - {address: %s, idle_timeout: 60s, real_servers: [{address: %s}]}
  - {address: %s, protocol: udp, idle_timeout: 30s, real_servers: [{address: %s}]}
`, vip, ln.Addr(), uvip, udpBackend))
	rs := netip.MustParseAddrPort(ln.Addr().String())

	dial := func() (*net.TCPConn, net.Conn) {
		c, err := net.Dial("tcp", vip.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		return c.(*net.TCPConn), <-accepted
	}
	a, aServer := dial()
	defer aServer.Close()
	b, bServer := dial()
	aClient := a.LocalAddr().(*net.TCPAddr).AddrPort()
	bClient := b.LocalAddr().(*net.TCPAddr).AddrPort()

	// The proxy counts the bytes after its write returns: the client may
	// read them first.
	loopback.WaitFor(t, "the 5 bytes counted", func() bool { c, _ := listed(t, d, aClient); return c.OutBytes == 5 })
	c, ok := listed(t, d, aClient)
	if !ok || c.State != "ESTABLISHED" || c.Virtual != vip || c.RealServer != rs || c.Protocol != "tcp" ||
		c.Service != "tcp/"+vip.String() || c.OutBytes != 5 || c.Expires <= 55*time.Second || c.Expires > 60*time.Second {
		t.Fatalf("established connection listed as %+v (found %v)", c, ok)
	}
	a.CloseWrite()
	loopback.WaitFor(t, "FIN_WAIT", func() bool { c, _ := listed(t, d, aClient); return c.State == "FIN_WAIT" })
	bServer.(*net.TCPConn).CloseWrite()
	loopback.WaitFor(t, "CLOSE_WAIT", func() bool { c, _ := listed(t, d, bClient); return c.State == "CLOSE_WAIT" })
	bServer.Close()
	b.Close()
	loopback.WaitFor(t, "the ended connection to leave the list", func() bool { _, ok := listed(t, d, bClient); return !ok })

	u, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(uvip))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	udpAsk(t, u, "q")
	f, ok := listed(t, d, u.LocalAddr().(*net.UDPAddr).AddrPort())
	if !ok || f.State != "UDP" || f.Protocol != "udp" || f.Virtual != uvip || f.RealServer.String() != udpBackend ||
		f.InBytes != 1 || f.OutBytes != 3 || f.Expires <= 25*time.Second {
		t.Fatalf("udp flow listed as %+v (found %v)", f, ok)
	}
}
