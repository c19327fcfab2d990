package test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/director"
)

// The connection table of the kernel dataplane (ipvsadm -L -c) comes from
// conntrack: each connection held open through the VIP is listed once,
// with the client's own address and port, the VIP, the real server that
// answered it and IPVS's state name; a UDP flow as UDP; the persistence
// templates of a queue-scheduled persistent service as NONE entries.
func TestNATConnectionList(t *testing.T) {
	l := newNATLab(t, 2)
	l.serveTCP(8090)
	l.serveUDP(8091)
	cfg := natConfig("nat", "rr", l.vip(8090), "tcp", l.RealAddrs, nil, "")
	cfg += "  - name: dns\n    address: \"" + l.vip(8091).String() + "\"\n    protocol: udp\n    forwarding: nat\n    scheduler: rr\n    real_servers:\n"
	for _, a := range l.RealAddrs {
		cfg += "      - address: \"" + netip.AddrPortFrom(a, 8091).String() + "\"\n"
	}
	cfg += "  - name: sticky\n    address: \"" + l.vip(8092).String() + "\"\n    forwarding: nat\n    scheduler: wlc\n    persistence_timeout: 60s\n    real_servers:\n"
	for _, a := range l.RealAddrs {
		cfg += "      - address: \"" + netip.AddrPortFrom(a, 8092).String() + "\"\n"
	}
	l.serveTCP(8092)
	l.apply(cfg)

	// Three TCP connections held open, two to the kernel-scheduled service
	// and one to the persistent one.
	want := map[netip.AddrPort]bool{} // clients
	for _, port := range []int{8090, 8090, 8092} {
		cc, err := l.dial(port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.c.Close() })
		if _, _, err := cc.ask(); err != nil {
			t.Fatal(err)
		}
		want[cc.c.LocalAddr().(*net.TCPAddr).AddrPort()] = true
	}
	var udp *net.UDPConn
	if err := l.Client.Do(func() (err error) {
		udp, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.vip(8091)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	udp.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := udp.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if _, err := udp.Read(make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	udpClient := udp.LocalAddr().(*net.UDPAddr).AddrPort()

	var list []director.Connection
	if err := l.d.Connections(func(c director.Connection) bool {
		list = append(list, c)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	reals := map[netip.Addr]bool{}
	for _, a := range l.RealAddrs {
		reals[a] = true
	}
	tcp, flows, templates := 0, 0, 0
	for _, c := range list {
		switch {
		case c.Template:
			templates++
			if c.State != "NONE" || c.Client != netip.AddrPortFrom(l.ClientAddr, 0) || c.Virtual != l.vip(8092) ||
				!reals[c.RealServer.Addr()] || c.Expires <= 50*time.Second {
				t.Errorf("template %+v", c)
			}
		case c.Protocol == "udp":
			flows++
			if c.State != "UDP" || c.Client != udpClient || c.Virtual != l.vip(8091) || !reals[c.RealServer.Addr()] ||
				c.RealServer.Port() != 8091 || c.Expires <= 0 || c.InPackets != 1 || c.OutPackets != 1 {
				t.Errorf("udp flow %+v", c)
			}
		default:
			if _, ok := want[c.Client]; !ok {
				continue // an earlier connection closing, say
			}
			tcp++
			delete(want, c.Client)
			if c.State != "ESTABLISHED" || !reals[c.RealServer.Addr()] || c.RealServer.Port() != c.Virtual.Port() ||
				c.Expires <= time.Hour || c.InBytes == 0 || c.OutBytes == 0 {
				t.Errorf("tcp connection %+v", c)
			}
		}
	}
	if tcp != 3 || flows != 1 || templates != 1 || len(want) != 0 {
		t.Errorf("listed %d tcp connections (missing %v), %d udp flows, %d templates; want 3, 1, 1:\n%+v",
			tcp, want, flows, templates, list)
	}
}
