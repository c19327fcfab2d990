package test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestVRRPVirtualRoutes checks keepalived's virtual_routes: a master
// installs its routes with its VIPs (one with a VIP as source, one
// blackhole, one in another table), and removes them when it stops; and
// static_routes and static_ipaddresses, there from the start until govs
// stops.
func TestVRRPVirtualRoutes(t *testing.T) {
	l := newVRRPLab(t, false)
	r1 := l.routers[0]
	d := r1.startGovs(vrrpOpts{version: 2, interval: time.Second, priority: 150, master: true,
		top: "static_routes: [10.96.0.0/24 via 10.88.0.2 dev eth0]\nstatic_ipaddresses: [10.95.0.1/24 dev eth0]\n" +
			"static_rules: [from 10.94.0.0/24 priority 1000 table 100]\nvirtual_servers: []\n", extra: `    virtual_routes:
      - 10.99.0.0/24 via 10.88.0.2
      - 10.97.0.0/24 dev eth0 src 10.88.0.100
      - blackhole 10.98.0.0/24
      - 0.0.0.0/0 via 10.88.0.2 dev eth0 table 100
    virtual_rules:
      - from 10.93.0.0/24 priority 1001 table 100
`})
	rules := func() string { out, _ := r1.ns.Exec("ip", "rule", "show"); return out }
	routes := func() string {
		main, _ := r1.ns.Exec("ip", "route", "show")
		t100, _ := r1.ns.Exec("ip", "route", "show", "table", "100") // absent until a route is in it
		return main + t100
	}
	want := []string{"10.99.0.0/24 via 10.88.0.2 dev eth0", "10.97.0.0/24 dev eth0", "src 10.88.0.100",
		"blackhole 10.98.0.0/24", "default via 10.88.0.2 dev eth0"}
	// The static route is there from the start, before the instance is
	// master; the virtual ones are not.
	addrs := func() string { out, _ := r1.ns.Exec("ip", "addr", "show", "dev", "eth0"); return out }
	loopback.WaitFor(t, "the static route", func() bool { return strings.Contains(routes(), "10.96.0.0/24 via 10.88.0.2 dev eth0") })
	loopback.WaitFor(t, "the static address", func() bool { return strings.Contains(addrs(), "inet 10.95.0.1/24") })
	loopback.WaitFor(t, "the static rule", func() bool { return strings.Contains(rules(), "1000:\tfrom 10.94.0.0/24 lookup 100") })
	if got := rules(); strings.Contains(got, "10.93.0.0") {
		t.Fatalf("virtual rule before the instance is master:\n%s", got)
	}
	if got := routes(); strings.Contains(got, "10.99.0.0") {
		t.Fatalf("routes before the instance is master:\n%s", got)
	}
	l.waitMaster(r1, 10*time.Second)
	loopback.WaitFor(t, "the virtual routes", func() bool {
		got := routes()
		for _, w := range want {
			if !strings.Contains(got, w) {
				return false
			}
		}
		return true
	})
	loopback.WaitFor(t, "the virtual rule", func() bool { return strings.Contains(rules(), "1001:\tfrom 10.93.0.0/24 lookup 100") })
	d.signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("govs did not stop")
	}
	if got := routes(); strings.Contains(got, "10.99.0.0") || strings.Contains(got, "10.98.0.0") || strings.Contains(got, "default") ||
		strings.Contains(got, "10.96.0.0") {
		t.Errorf("routes left after govs stopped:\n%s", got)
	}
	if got := rules(); strings.Contains(got, "10.93.0.0") || strings.Contains(got, "10.94.0.0") {
		t.Errorf("rules left after govs stopped:\n%s", got)
	}
	if got := addrs(); strings.Contains(got, "10.95.0.1") {
		t.Errorf("static address left after govs stopped:\n%s", got)
	}
}
