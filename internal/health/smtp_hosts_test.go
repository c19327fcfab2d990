package health

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/govs-lb/govs/internal/config"
)

// TestSMTPCheckHosts checks keepalived's SMTP_CHECK host blocks: each host is
// asked, on its own address and port and from its own bind address, and
// the real server is up only while every one answers.
func TestSMTPCheckHosts(t *testing.T) {
	type mta struct {
		s      *server
		greet  atomic.Value
		remote atomic.Value
	}
	var mtas [3]*mta
	for i := range mtas {
		m := &mta{}
		m.greet.Store("220 mx ESMTP\r\n")
		m.remote.Store("")
		m.s = startServer(t, func(c net.Conn) {
			m.remote.Store(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String())
			io.WriteString(c, m.greet.Load().(string))
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			io.WriteString(c, "250 mx\r\n")
			r.ReadString('\n') // QUIT
		})
		mtas[i] = m
	}
	// The real server is mtas[0]; the check asks it (no address: the real
	// server's), mtas[1] from 127.0.0.2 and mtas[2] on its own port.
	yaml := fmt.Sprintf(`virtual_servers:
  - address: 127.0.0.1:25
    forwarding: proxy
    real_servers:
      - address: %s
        health_check:
          type: smtp
          helo_name: lb.example.test
          hosts:
            - port: %d
            - address: 127.0.0.1
              port: %d
              bind: 127.0.0.2
            - address: 127.0.0.1
              port: %d
`, mtas[0].s.addr, mtas[0].s.addr.Port(), mtas[1].s.addr.Port(), mtas[2].s.addr.Port())
	file := filepath.Join(t.TempDir(), "govs.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	rs := c.VirtualServers[0].RealServers[0]
	spec := SpecFor(rs.Check, netip.AddrPortFrom(rs.Address.Addr, rs.Address.Port))
	wantPass(t, check(t, spec), "smtp: 3 hosts answer")
	if got := mtas[1].remote.Load(); got != "127.0.0.2" {
		t.Errorf("host 2 was asked from %q, want its bind address 127.0.0.2", got)
	}
	if got := mtas[0].remote.Load(); got != "127.0.0.1" {
		t.Errorf("host 1 was asked from %q", got)
	}
	mtas[2].greet.Store("421 busy\r\n")
	wantFail(t, check(t, spec), fmt.Sprintf("host %s: smtp greeting 421 busy", mtas[2].s.addr))
	mtas[2].greet.Store("220 mx ESMTP\r\n")
	wantPass(t, check(t, spec), "smtp: 3 hosts answer")
	mtas[1].s.stop()
	wantFail(t, check(t, spec), fmt.Sprintf("host %s: connect", mtas[1].s.addr))
}
