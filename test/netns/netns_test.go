package netns

import (
	"net"
	"testing"
	"time"
)

// The topology routes: the client reaches a real server through the
// director, and nothing of it is left after cleanup.
func TestLVSRoutes(t *testing.T) {
	l := NewLVS(t, 2)
	var ln net.Listener
	if err := l.Reals[1].Do(func() (err error) {
		ln, err = net.Listen("tcp", l.RealAddrs[1].String()+":7000")
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
		c, err := net.DialTimeout("tcp", l.RealAddrs[1].String()+":7000", 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 64)
		n, _ := c.Read(b)
		got = string(b[:n])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(got); host != l.ClientAddr.String() {
		t.Fatalf("real server saw %q, want the client %s", got, l.ClientAddr)
	}
}
