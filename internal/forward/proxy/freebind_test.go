package proxy

import (
	"fmt"
	"net"
	"testing"

	"github.com/govs-lb/govs/test/loopback"
)

// A virtual service binds a VIP this host does not hold (a VRRP backup's),
// for TCP and UDP alike.
func TestListenOnAddressNotHeld(t *testing.T) {
	// 127.0.0.0/8 is all local on Linux; TEST-NET-1 is held by nobody here.
	const vip = "192.0.2.77"
	if addrs, _ := net.InterfaceAddrs(); func() bool {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.String() == vip {
				return true
			}
		}
		return false
	}() {
		t.Skipf("%s is held by this host", vip)
	}
	port := loopback.FreePort(t, "tcp")
	startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s:%d
    real_servers: [{address: 127.0.0.1:1}]
  - address: %s:%d
    protocol: udp
    real_servers: [{address: 127.0.0.1:1}]
`, vip, port, vip, port))
}
