package netns

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// The IPv6 topology routes at once (no DAD wait): the client reaches a
// real server through the director, which sees the client's address.
func TestLVS6Routes(t *testing.T) {
	l := NewLVS6(t, 2)
	var ln net.Listener
	if err := l.Reals[1].Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(l.RealAddrs[1], 7000).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte(c.RemoteAddr().String()))
			c.Close()
		}
	}()
	var got string
	err := l.Client.Do(func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(l.RealAddrs[1], 7000).String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 100)
		n, _ := c.Read(b)
		got = string(b[:n])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := netip.ParseAddrPort(got)
	if err != nil || ap.Addr() != l.ClientAddr {
		t.Fatalf("real server saw %q, want the client %v", got, l.ClientAddr)
	}
}
