package director

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/govs-lb/govs/internal/config"
)

// adminDP is a dataplane that serves nothing and refuses on demand.
type adminDP struct {
	NullDataplane
	mu     sync.Mutex
	refuse error
}

func (a *adminDP) Prepare(*Snapshot) (Transaction, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuse != nil {
		return nil, a.refuse
	}
	return NullTransaction{}, nil
}

const adminConfig = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    persistence_timeout: 60s
    real_servers:
      - address: 127.0.0.1:9001
        weight: 2
  - address: 127.0.0.1:53
    protocol: udp
    real_servers:
      - address: 127.0.0.1:5301
`

func newAdminDirector(t *testing.T) (*Director, *adminDP) {
	t.Helper()
	dp := &adminDP{}
	d := New(slog.New(slog.DiscardHandler), dp)
	cfg, err := config.Parse("govs.yaml", []byte(adminConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(0) })
	return d, dp
}

func TestCopyConfigIsDeep(t *testing.T) {
	cfg, err := config.Parse("govs.yaml", []byte(adminConfig))
	if err != nil {
		t.Fatal(err)
	}
	cp := CopyConfig(cfg)
	*cp.VirtualServers[0].RealServers[0].Weight = 9
	cp.VirtualServers[0].RealServers = append(cp.VirtualServers[0].RealServers, &config.RealServer{})
	cp.VirtualServers[1].Name = "changed"
	if *cfg.VirtualServers[0].RealServers[0].Weight != 2 || len(cfg.VirtualServers[0].RealServers) != 1 ||
		cfg.VirtualServers[1].Name == "changed" {
		t.Errorf("changing the copy changed the original")
	}
	// Positions survive, so errors about untouched parts name the file.
	if got := cp.VirtualServers[0].At("address").String(); got != "govs.yaml:4:14" {
		t.Errorf("position in the copy: %s", got)
	}
	// Validation is idempotent: a validated model validates again.
	if err := CopyConfig(cfg).Validate(); err != nil {
		t.Errorf("validating a validated configuration again: %v", err)
	}
}

func TestChangesAreAllOrNothing(t *testing.T) {
	d, dp := newAdminDirector(t)
	before := d.Config()
	// Invalid: nothing changes, the error is the configuration's.
	err := d.UpdateRealServer("tcp/127.0.0.1:8080", netip.MustParseAddrPort("127.0.0.1:9001"), func(rs *config.RealServer) error {
		w := 70000
		rs.Weight = &w
		return nil
	}, nil)
	var list config.ErrorList
	if !errors.As(err, &list) || d.Config() != before {
		t.Fatalf("invalid change: %v", err)
	}
	// Refused by the dataplane: nothing changes.
	dp.mu.Lock()
	dp.refuse = errors.New("bind: address already in use")
	dp.mu.Unlock()
	vs := &config.VirtualServer{Address: config.Endpoint{Addr: netip.MustParseAddr("127.0.0.2"), Port: 80, HasPort: true}}
	var ce *ChangeError
	if err := d.AddService(vs); !errors.As(err, &ce) || d.Config() != before || d.Service("tcp/127.0.0.2:80") != nil {
		t.Fatalf("refused change: %v", err)
	}
	dp.mu.Lock()
	dp.refuse = nil
	dp.mu.Unlock()
	// The running configuration is never changed in place.
	if err := d.AddService(vs); err != nil {
		t.Fatal(err)
	}
	if len(before.VirtualServers) != 2 || len(d.Config().VirtualServers) != 3 {
		t.Errorf("before %d, after %d services", len(before.VirtualServers), len(d.Config().VirtualServers))
	}
	if err := d.AddService(vs); !errors.Is(err, ErrServiceExists) {
		t.Errorf("second add: %v", err)
	}
	addr := func(s string) config.Endpoint {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return config.Endpoint{Addr: ap.Addr(), Port: ap.Port(), HasPort: true}
		}
		return config.Endpoint{Addr: netip.MustParseAddr(s)}
	}
	for i, tc := range []struct {
		err  error
		want error // nil: success
	}{
		{d.DeleteService("tcp/127.0.0.9:1"), ErrNoService},
		{d.AddRealServer("tcp/127.0.0.9:1", &config.RealServer{Address: addr("127.0.0.1:1")}, nil), ErrNoService},
		{d.AddRealServer("tcp/127.0.0.1:8080", &config.RealServer{Address: addr("127.0.0.1:9001")}, nil), ErrDestExists},
		// No port: the service's (127.0.0.1 itself would be the VIP, refused).
		{d.AddRealServer("tcp/127.0.0.1:8080", &config.RealServer{Address: addr("127.0.0.3")}, nil), nil},
		{d.AddRealServer("tcp/127.0.0.1:8080", &config.RealServer{Address: addr("127.0.0.3:8080")}, nil), ErrDestExists},
		{d.DeleteRealServer("tcp/127.0.0.1:8080", netip.MustParseAddrPort("127.0.0.1:9999")), ErrNoDest},
		{d.DeleteRealServer("tcp/127.0.0.1:8080", netip.MustParseAddrPort("127.0.0.3:8080")), nil},
	} {
		if (tc.want == nil) != (tc.err == nil) || !errors.Is(tc.err, tc.want) {
			t.Errorf("case %d: got %v, want %v", i, tc.err, tc.want)
		}
	}
	// A real server that is the service's own VIP:port would loop.
	if err := d.AddRealServer("tcp/127.0.0.1:8080", &config.RealServer{Address: addr("127.0.0.1")}, nil); err == nil || !strings.Contains(err.Error(), "own address") {
		t.Errorf("a real server equal to the VIP: %v", err)
	}
	err = d.UpdateService("tcp/127.0.0.1:8080", func(vs *config.VirtualServer) error { vs.Address.Port = 1; return nil })
	if err == nil || d.Service("tcp/127.0.0.1:1") != nil {
		t.Errorf("changing a service's identity: %v", err)
	}
}

// TestConcurrentChangesAndReloads runs changes while reloads happen: every
// change lands on the configuration in force when it runs, none is lost.
func TestConcurrentChangesAndReloads(t *testing.T) {
	d, _ := newAdminDirector(t)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := &config.RealServer{Address: config.Endpoint{Addr: netip.MustParseAddr(fmt.Sprintf("127.0.3.%d", i)), Port: 80, HasPort: true}}
			if err := d.AddRealServer("udp/127.0.0.1:53", rs, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := len(d.Service("udp/127.0.0.1:53").RealServers()); got != n+1 {
		t.Errorf("%d real servers, want %d", got, n+1)
	}
	cfg, _ := config.Parse("govs.yaml", []byte(adminConfig))
	if err := d.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := len(d.Service("udp/127.0.0.1:53").RealServers()); got != 1 {
		t.Errorf("after reload: %d real servers, want the file's 1", got)
	}
}
