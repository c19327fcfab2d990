package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

func listenIPv6(t *testing.T) {
	t.Helper()
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here (%v)", err)
	}
	c.Close()
}

// TCP and UDP services on an IPv6 VIP, with PROXY protocol v1 carrying the
// IPv6 client address.
func TestIPv6(t *testing.T) {
	listenIPv6(t)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				hdr, _ := r.ReadString('\n')
				line, _ := r.ReadString('\n')
				fmt.Fprintf(c, "%s%s", hdr, line)
			}()
		}
	}()
	up, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := up.ReadFrom(buf)
			if err != nil {
				return
			}
			up.WriteTo(append([]byte("v6:"), buf[:n]...), from)
		}
	}()
	// Below the ephemeral range, so that no connect() takes it meanwhile.
	vipPort := loopback.FreePort(t, "tcp")
	vip := fmt.Sprintf("[::1]:%d", vipPort)
	startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: "%s"
    send_proxy: v1
    real_servers: [{address: "%s"}]
  - address: "%s"
    protocol: udp
    real_servers: [{address: "%s"}]
`, vip, ln.Addr(), vip, up.LocalAddr()))

	c, err := net.Dial("tcp6", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hi\n")
	got, _ := io.ReadAll(c)
	want := fmt.Sprintf("PROXY TCP6 ::1 ::1 %d %d\r\nhi\n", c.LocalAddr().(*net.TCPAddr).Port, vipPort)
	if string(got) != want {
		t.Errorf("tcp over IPv6: got %q, want %q", got, want)
	}

	u, err := net.Dial("udp6", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if reply := udpAsk(t, u.(*net.UDPConn), "ping"); reply != "v6:ping" {
		t.Errorf("udp over IPv6: %q", reply)
	}
}
