package director

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/govs-lb/govs/internal/config"
)

const discConfig = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    health_check: {type: tcp, interval: 1h}
    discovery: {type: file, path: /nonexistent.json}
    real_servers:
      - address: 127.0.0.1:9001
`

func discovered(addr string, weight int) *config.RealServer {
	ap := netip.MustParseAddrPort(addr)
	return &config.RealServer{Address: config.Endpoint{Addr: ap.Addr(), Port: ap.Port(), HasPort: true}, Weight: &weight, Origin: "file:/nonexistent.json"}
}

func newDiscDirector(t *testing.T) *Director {
	t.Helper()
	d := New(slog.New(slog.DiscardHandler), &adminDP{})
	cfg, err := config.Parse("govs.yaml", []byte(discConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(0) })
	return d
}

func addrs(d *Director, key string) string {
	var out []string
	for _, rs := range d.Service(key).RealServers() {
		out = append(out, rs.Addr.String())
	}
	return strings.Join(out, " ")
}

func TestDiscoveredJoinWrittenAndSurviveReloadAndEdits(t *testing.T) {
	d := newDiscDirector(t)
	key := "tcp/127.0.0.1:8080"
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9002", 3), discovered("127.0.0.1:9001", 5)}); err != nil {
		t.Fatal(err)
	}
	// 9001 is written: the written one stays, the discovered twin is left out.
	if got := addrs(d, key); got != "127.0.0.1:9001 127.0.0.1:9002" {
		t.Fatalf("real servers %q", got)
	}
	rs := d.Service(key).RealServers()[1]
	if rs.Config().Origin != "file:/nonexistent.json" || rs.Config().Check == nil {
		t.Fatalf("discovered server: origin %q, check %v (the service's health check must apply)", rs.Config().Origin, rs.Config().Check)
	}
	// A reload of the file keeps them.
	cfg, err := config.Parse("govs.yaml", []byte(discConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := addrs(d, key); got != "127.0.0.1:9001 127.0.0.1:9002" {
		t.Fatalf("after reload %q", got)
	}
	// An edit of the service keeps them; an edit of a discovered one is refused naming its source.
	if err := d.UpdateService(key, func(vs *config.VirtualServer) error { vs.RealServers = vs.RealServers[:1]; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := addrs(d, key); got != "127.0.0.1:9001 127.0.0.1:9002" {
		t.Fatalf("after service edit %q", got)
	}
	ap := netip.MustParseAddrPort("127.0.0.1:9002")
	for name, err := range map[string]error{
		"update": d.UpdateRealServer(key, ap, func(rs *config.RealServer) error { return nil }, nil),
		"delete": d.DeleteRealServer(key, ap),
		"add":    d.AddRealServer(key, discovered("127.0.0.1:9002", 1), nil),
	} {
		if !errors.Is(err, ErrDiscovered) || !strings.Contains(err.Error(), "file:/nonexistent.json") {
			t.Fatalf("%s of a discovered server: %v", name, err)
		}
	}
	// A new set replaces the old one atomically; nil removes them.
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9003", 1)}); err != nil {
		t.Fatal(err)
	}
	if got := addrs(d, key); got != "127.0.0.1:9001 127.0.0.1:9003" {
		t.Fatalf("after new set %q", got)
	}
	if err := d.SetDiscovered(key, nil); err != nil {
		t.Fatal(err)
	}
	if got := addrs(d, key); got != "127.0.0.1:9001" {
		t.Fatalf("after removal %q", got)
	}
}

func TestDiscoveredInvalidSetChangesNothing(t *testing.T) {
	d := newDiscDirector(t)
	key := "tcp/127.0.0.1:8080"
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9002", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9003", 70000)}); err == nil {
		t.Fatal("weight 70000 accepted")
	}
	if got := addrs(d, key); got != "127.0.0.1:9001 127.0.0.1:9002" {
		t.Fatalf("after refused set %q", got)
	}
}

func TestWrittenOriginRefused(t *testing.T) {
	_, err := config.Parse("govs.yaml", []byte(strings.Replace(discConfig, "- address: 127.0.0.1:9001", "- {address: 127.0.0.1:9001, origin: dns:x}", 1)))
	if err == nil || !strings.Contains(err.Error(), "origin is set by discovery") {
		t.Fatalf("err %v", err)
	}
}

func TestDiscoveryBlockNotChangedAtRuntime(t *testing.T) {
	d := newDiscDirector(t)
	key := "tcp/127.0.0.1:8080"
	err := d.UpdateService(key, func(vs *config.VirtualServer) error { vs.Discovery.Path = "/etc/shadow"; return nil })
	if !errors.Is(err, ErrDiscovered) || !strings.Contains(err.Error(), "configuration file only") {
		t.Fatalf("changed block: %v", err)
	}
	err = d.UpdateService(key, func(vs *config.VirtualServer) error { vs.Discovery = nil; return nil })
	if !errors.Is(err, ErrDiscovered) {
		t.Fatalf("removed block: %v", err)
	}
	add := &config.VirtualServer{Address: config.Endpoint{Addr: netip.MustParseAddr("127.0.0.1"), Port: 8081, HasPort: true},
		Discovery: &config.Discovery{Type: "file", Path: "/etc/shadow"}}
	if err := d.AddService(add); !errors.Is(err, ErrDiscovered) {
		t.Fatalf("added block: %v", err)
	}
	// An unchanged block (as an API client echoes it, defaults unset) passes.
	if err := d.UpdateService(key, func(vs *config.VirtualServer) error {
		vs.Discovery = &config.Discovery{Type: "file", Path: "/nonexistent.json"}
		vs.Scheduler = "rr"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSetDiscovered5000 measures handing a 5,000-server discovered
// set to the director (copy, validate, apply) when one server changes.
func BenchmarkSetDiscovered5000(b *testing.B) {
	d := New(slog.New(slog.DiscardHandler), &adminDP{})
	cfg, err := config.Parse("govs.yaml", []byte(discConfig))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	defer d.Shutdown(0)
	set := func(extra int) []*config.RealServer {
		out := make([]*config.RealServer, 0, 5000)
		for i := range 4999 {
			out = append(out, discovered(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80).String(), 1))
		}
		return append(out, discovered(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(extra >> 8), byte(extra)}), 80).String(), 1))
	}
	key := "tcp/127.0.0.1:8080"
	sets := [][]*config.RealServer{set(1), set(2)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.SetDiscovered(key, sets[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDiscoveredFirstSetStartsWarm: with slow_start, the set a source finds
// first after the service started (govs's start) starts at full weight as
// the written servers do, since those servers were serving before govs
// restarted; a server the source finds later, and any server of a block a
// reload adds to a running service, slow-starts. A first set that fails
// validation does not count as the first.
func TestDiscoveredFirstSetStartsWarm(t *testing.T) {
	slow := strings.Replace(discConfig, "    health_check:", "    slow_start: 1h\n    health_check:", 1)
	d := New(slog.New(slog.DiscardHandler), &adminDP{})
	t.Cleanup(func() { d.Shutdown(0) })
	cfg, err := config.Parse("govs.yaml", []byte(slow))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	key := "tcp/127.0.0.1:8080"
	vs := d.Service(key)
	weight := func(addr string) int {
		t.Helper()
		for _, rs := range vs.RealServers() {
			if rs.Addr.String() == addr {
				return rs.Dest.Weight()
			}
		}
		t.Fatalf("no real server %s", addr)
		return 0
	}
	if w := weight("127.0.0.1:9001"); w != 1 { // written, no weight key: 1, not ramping
		t.Fatalf("written server's weight %d", w)
	}
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9003", 70000)}); err == nil {
		t.Fatal("weight 70000 accepted")
	}
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9002", 40)}); err != nil {
		t.Fatal(err)
	}
	if w := weight("127.0.0.1:9002"); w != 40 {
		t.Fatalf("first set's server at weight %d, want 40 (full, as written servers start)", w)
	}
	if h := vs.RealServers()[1].Health(); !h.RampEnd.IsZero() {
		t.Fatalf("first set's server ramps until %v", h.RampEnd)
	}
	if err := d.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9002", 40), discovered("127.0.0.1:9004", 40)}); err != nil {
		t.Fatal(err)
	}
	if w := weight("127.0.0.1:9004"); w != 1 {
		t.Fatalf("a server found later at weight %d, want 1 (slow start)", w)
	}
	if w := weight("127.0.0.1:9002"); w != 40 {
		t.Fatalf("the first set's server went to weight %d", w)
	}

	// A block added by a reload to the running service: its first set is an
	// addition to a running service, so it slow-starts.
	plain := strings.Replace(slow, "    discovery: {type: file, path: /nonexistent.json}\n", "", 1)
	d2 := New(slog.New(slog.DiscardHandler), &adminDP{})
	t.Cleanup(func() { d2.Shutdown(0) })
	for _, text := range []string{plain, slow} {
		c, err := config.Parse("govs.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := d2.Reload(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := d2.SetDiscovered(key, []*config.RealServer{discovered("127.0.0.1:9002", 40)}); err != nil {
		t.Fatal(err)
	}
	vs = d2.Service(key)
	if w := weight("127.0.0.1:9002"); w != 1 {
		t.Fatalf("a block added to a running service: first set at weight %d, want 1 (slow start)", w)
	}
}
