package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/govs-lb/govs/internal/api"
)

// goldenState is the state testdata/golden.c prints, here in the API's
// form and out of order: the listing sorts it.
func goldenState() []api.Service {
	st := func(v ...uint64) api.Stats {
		return api.Stats{Connections: v[0], InPackets: v[1], OutPackets: v[2], InBytes: v[3], OutBytes: v[4]}
	}
	rt := func(v ...uint64) api.Rates {
		return api.Rates{CPS: v[0], InPPS: v[1], OutPPS: v[2], InBPS: v[3], OutBPS: v[4]}
	}
	return []api.Service{
		{Name: "web", Address: "192.168.10.1:80", Protocol: "tcp", Scheduler: "wlc", Forwarding: "nat",
			Status: api.ServiceStatus{Stats: st(123456789, 0, 0, 98765432109, 123456789012345), Rates: rt(1234, 0, 0, 123456789, 4000000000)},
			RealServers: []api.RealServer{
				{Address: "10.0.0.2:8080", Weight: 1, Status: api.RealServerStatus{Weight: 1, ActiveConnections: 12, InactiveConnections: 34,
					Stats: st(100000000, 0, 0, 7, 8), Rates: rt(634, 0, 0, 73456789, 3940000000)}},
				{Address: "10.0.0.1:8080", Weight: 3, Status: api.RealServerStatus{Weight: 3,
					Stats: st(23456789, 0, 0, 5000000000, 6000000000), Rates: rt(600, 0, 0, 50000, 60000)}},
			}},
		{Name: "dns", Address: "192.168.10.1:53", Protocol: "udp", Scheduler: "rr", Forwarding: "proxy", OnePacket: true,
			Status: api.ServiceStatus{Stats: st(42, 40, 38, 4200, 3800)},
			RealServers: []api.RealServer{
				{Address: "10.0.0.3:53", Weight: 0, UpperThreshold: 100, LowerThreshold: 10,
					Status: api.RealServerStatus{Weight: 0, InactiveConnections: 2, Stats: st(42, 40, 38, 4200, 3800)}},
			}},
		{Name: "v6", Address: "[2001:db8::1]:80", Protocol: "tcp", Scheduler: "wlc", Forwarding: "proxy",
			PersistenceTimeout: "10m0s", PersistenceNetmask: "64",
			RealServers: []api.RealServer{
				{Address: "[2001:db8::10]:8080", Weight: 5, Status: api.RealServerStatus{Weight: 5, ActiveConnections: 1, PersistentConnections: 3}},
			}},
		{Name: "tls", Address: "10.1.1.1:443", Protocol: "tcp", Scheduler: "sh", Forwarding: "fullnat",
			SchedulerFlags: []string{"sh-port", "sh-fallback"}, PersistenceTimeout: "5m0s", PersistenceNetmask: "255.255.255.0",
			Status: api.ServiceStatus{Stats: st(99999999, 100000000, 999999999, 1000000000, 99999999999999), Rates: rt(1, 2, 3, 4, 5)},
			RealServers: []api.RealServer{
				{Address: "10.0.0.4:443", Weight: 65535, Status: api.RealServerStatus{Weight: 65535, ActiveConnections: 7,
					InactiveConnections: 8, PersistentConnections: 9, Stats: st(1, 2, 3, 4, 5)}},
			}},
		{Name: "dr", Address: "10.2.2.2:80", Protocol: "tcp", Scheduler: "wrr", Forwarding: "dr",
			Status: api.ServiceStatus{Stats: st(5000, 60000, 0, 4000000, 0), Rates: rt(50, 600, 0, 40000, 0)},
			RealServers: []api.RealServer{
				{Address: "10.0.0.6:80", Weight: 1, Status: api.RealServerStatus{Weight: 1, ActiveConnections: 2,
					Stats: st(2000, 20000, 0, 1000000, 0), Rates: rt(20, 200, 0, 10000, 0)}},
				{Address: "10.0.0.5:80", Weight: 2, Status: api.RealServerStatus{Weight: 2, ActiveConnections: 3, InactiveConnections: 1,
					Stats: st(3000, 40000, 0, 3000000, 0), Rates: rt(30, 400, 0, 30000, 0)}},
			}},
		{Name: "empty", Address: "10.1.1.1:80", Protocol: "tcp", Scheduler: "mh", Forwarding: "proxy", RealServers: []api.RealServer{}},
		// fwmark services: the API writes no address, and a real server
		// without a port (it keeps the packet's) as its address alone.
		{Name: "FWM 7", FWMark: 7, Protocol: "tcp", Scheduler: "wlc", Forwarding: "fullnat",
			RealServers: []api.RealServer{{Address: "10.0.0.9:443", Weight: 3, Status: api.RealServerStatus{Weight: 3}}}},
		{Name: "FWM 1 IPv6", FWMark: 1, Family: "ipv6", Protocol: "tcp", Scheduler: "wlc", Forwarding: "dr",
			RealServers: []api.RealServer{{Address: "2001:db8::20", Weight: 1, Status: api.RealServerStatus{Weight: 1, ActiveConnections: 1}}}},
		{Name: "FWM 1", FWMark: 1, Protocol: "tcp", Scheduler: "rr", Forwarding: "nat", PersistenceTimeout: "5m0s",
			Status: api.ServiceStatus{Stats: st(40, 400, 300, 40000, 300000), Rates: rt(4, 40, 30, 4000, 30000)},
			RealServers: []api.RealServer{
				{Address: "10.0.0.8", Weight: 2, Status: api.RealServerStatus{Weight: 2, ActiveConnections: 7, InactiveConnections: 8,
					PersistentConnections: 4, Stats: st(30, 300, 200, 30000, 200000), Rates: rt(3, 30, 20, 3000, 20000)}},
				{Address: "10.0.0.7", Weight: 1, Status: api.RealServerStatus{Weight: 1, ActiveConnections: 5, InactiveConnections: 6,
					PersistentConnections: 2, Stats: st(10, 100, 100, 10000, 100000), Rates: rt(1, 10, 10, 1000, 10000)}},
			}},
	}
}

// TestListingsMatchIpvsadm compares each listing, the connection table
// (print_conn) included, with the output of ipvsadm's printf formats for
// the same state (testdata/golden.c).
func TestListingsMatchIpvsadm(t *testing.T) {
	all := func(p *printer) { p.all(goldenState()) }
	conns := func(p *printer) { p.conns(goldenConns()) }
	for _, tc := range []struct {
		file   string
		format uint
		print  func(*printer)
	}{
		{"list.golden", fmtNumeric, all},
		{"stats.golden", fmtNumeric | fmtStats, all},
		{"stats-exact.golden", fmtNumeric | fmtStats | fmtExact, all},
		{"rate.golden", fmtNumeric | fmtRate, all},
		{"thresholds.golden", fmtNumeric | fmtThresholds, all},
		{"persistent.golden", fmtNumeric | fmtPersistentConn, all},
		{"save.golden", fmtNumeric | fmtRule, all},
		{"conn.golden", fmtNumeric, conns},
		{"conn-persistent.golden", fmtNumeric | fmtPersistentConn, conns},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			tc.print(&printer{w: &got, format: tc.format})
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from ipvsadm's layout\n got:\n%s\nwant:\n%s", tc.file, got.Bytes(), want)
			}
		})
	}
}

// testNames resolves as a host with long names would.
type testNames struct{}

func (testNames) host(a netip.Addr) string {
	return map[string]string{
		"192.168.10.1": "a-rather-long-host-name.example.com",
		"10.0.0.2":     "a-very-long-backend-name.example.com",
	}[a.String()]
}

func (testNames) service(port uint16, proto string) string {
	return map[string]string{"80/tcp": "http", "8080/tcp": "http-alt"}[fmt.Sprintf("%d/%s", port, proto)]
}

// TestListingWithNames checks that names are cut as ipvsadm cuts them: the
// service column at 33 characters, the real server column at 28.
func TestListingWithNames(t *testing.T) {
	var got bytes.Buffer
	p := &printer{w: &got, names: testNames{}}
	p.one(&goldenState()[0])
	want := "Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  a-rather-long-host-name.exam wlc\n" +
		"  -> 10.0.0.1:http-alt            Masq    3      0          0         \n" +
		"  -> a-very-long-backend-name.exa Masq    1      12         34        \n"
	if got.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", got.String(), want)
	}
}

// goldenConns is the connection table testdata/golden.c prints, out of
// order: the listing sorts it.
func goldenConns() []api.Connection {
	c := func(proto, state, client, vip, rs string, exp int64) api.Connection {
		return api.Connection{Protocol: proto, State: state, Client: client, Virtual: vip, RealServer: rs,
			ExpiresSeconds: exp, Template: state == "NONE"}
	}
	return []api.Connection{
		c("tcp", "SYN_RECV", "[2001:db8:1::2]:33000", "[2001:db8::1]:80", "[2001:db8::10]:8080", 60),
		c("tcp", "CLOSE_WAIT", "203.0.113.200:65535", "192.168.10.1:80", "10.0.0.2:8080", -3),
		c("tcp", "NONE", "192.0.2.0:0", "10.1.1.1:443", "10.0.0.4:443", 3725),
		c("udp", "UDP", "198.51.100.7:5353", "192.168.10.1:53", "10.0.0.3:53", 59),
		c("tcp", "FIN_WAIT", "192.0.2.10:40000", "192.168.10.1:80", "10.0.0.1:8080", 120),
		c("tcp", "ESTABLISHED", "192.0.2.10:51234", "10.1.1.1:443", "10.0.0.4:443", 899),
	}
}
