package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/test/loopback"
)

// services is a director stand-in: each service's quorum, set by the test.
type services struct {
	mu sync.Mutex
	up map[string]bool
}

func (s *services) ServiceUp(name string) (bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	up, ok := s.up[name]
	return up, ok
}

func (s *services) set(name string, up bool) {
	s.mu.Lock()
	s.up[name] = up
	s.mu.Unlock()
}

// freePort is a port for a peer to listen on later: below the kernel's
// ephemeral range, so that no connect() of a test run in parallel takes it
// meanwhile (loopback.FreePort).
func freePort(t *testing.T) int {
	t.Helper()
	return loopback.FreePort(t, "tcp")
}

// routerPeer is a second, independent gobgp server on 127.0.0.1 standing
// in for a router: it accepts the speaker (127.0.0.2) and keeps what it
// learns, which the test reads.
func routerPeer(t *testing.T, port int) *server.BgpServer {
	t.Helper()
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelError)
	s := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), lvl))
	go s.Serve()
	t.Cleanup(s.Stop)
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: 65000, RouterId: "127.0.0.1", ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.2", PeerAsn: 65001},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// learnt describes the router's path for prefix: "" when it has none.
func learnt(t *testing.T, s *server.BgpServer, prefix string) string {
	t.Helper()
	var out string
	err := s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgppkt.RF_IPv4_UC},
		func(nlri bgppkt.NLRI, paths []*apiutil.Path) {
			if nlri.String() != prefix || len(paths) == 0 {
				return
			}
			var parts []string
			for _, a := range paths[0].Attrs {
				switch a := a.(type) {
				case *bgppkt.PathAttributeAsPath:
					parts = append(parts, "as_path="+a.String())
				case *bgppkt.PathAttributeMultiExitDisc:
					parts = append(parts, fmt.Sprintf("med=%d", a.Value))
				case *bgppkt.PathAttributeCommunities:
					parts = append(parts, fmt.Sprintf("communities=%x", a.Value))
				case *bgppkt.PathAttributeNextHop:
					parts = append(parts, "nexthop="+a.Value.String())
				}
			}
			out = strings.Join(parts, " ")
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonAnnouncesToAPeer runs the daemon's real speaker against a real
// BGP peer over loopback: the VIP arrives with its attributes, leaves at
// quorum loss, returns after announce_delay, and leaves on Withdraw.
func TestDaemonAnnouncesToAPeer(t *testing.T) {
	port := freePort(t)
	router := routerPeer(t, port)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("unused\n"), 0o600)
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`
bgp:
  asn: 65001
  router_id: 127.0.0.2
  announce_delay: 300ms
  peers: [{address: 127.0.0.1, asn: 65000, port: %d, local_address: 127.0.0.2, hold_time: 3s, keepalive: 1s}]
virtual_servers:
  - name: web
    address: 127.0.0.100:80
    bgp: {as_path_prepend: 1, med: 5, communities: ["65000:100"]}
    real_servers: [{address: 127.0.0.1:8080}]
  - name: quiet
    address: 127.0.0.101:80
    announce: false
    real_servers: [{address: 127.0.0.1:8080}]
`, port)))
	if err != nil {
		t.Fatal(err)
	}
	svc := &services{up: map[string]bool{"web": true, "quiet": true}}
	d := New(slog.New(slog.DiscardHandler), Options{Services: svc, ShutdownDelay: time.Millisecond})
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	const vip = "127.0.0.100/32"
	waitFor(t, "the VIP at the peer", func() bool { return learnt(t, router, vip) != "" })
	if got, want := learnt(t, router, vip), "as_path={AsPath: 65001 65001} med=5 communities=[fde80064] nexthop=127.0.0.2"; got != want {
		t.Errorf("path: %s, want %s", got, want)
	}
	if got := learnt(t, router, "127.0.0.101/32"); got != "" {
		t.Errorf("announce: false was announced: %s", got)
	}
	st := d.Status(context.Background())
	if len(st.Peers) != 1 || !st.Peers[0].Up || st.Peers[0].Advertised != 1 || len(st.VIPs) != 1 || !st.VIPs[0].Announced {
		t.Fatalf("status: %+v", st)
	}

	svc.set("web", false)
	waitFor(t, "the withdraw at quorum loss", func() bool { return learnt(t, router, vip) == "" })
	t0 := time.Now()
	svc.set("web", true)
	waitFor(t, "the VIP back", func() bool { return learnt(t, router, vip) != "" })
	if back := time.Since(t0); back < 300*time.Millisecond {
		t.Errorf("re-announced after %v, before announce_delay", back)
	}
	if st := d.Status(context.Background()); st.VIPs[0].Flaps != 1 {
		t.Errorf("flaps: %+v", st.VIPs[0])
	}

	// An unknown service (a fault) withdraws too.
	svc.mu.Lock()
	delete(svc.up, "web")
	svc.mu.Unlock()
	waitFor(t, "the withdraw on fault", func() bool { return learnt(t, router, vip) == "" })
	svc.set("web", true)
	waitFor(t, "the VIP back", func() bool { return learnt(t, router, vip) != "" })

	d.Withdraw()
	waitFor(t, "the withdraw on shutdown", func() bool { return learnt(t, router, vip) == "" })
	if st := d.Status(context.Background()); !st.Peers[0].Up {
		t.Errorf("the session closed on Withdraw: it must stay up while draining: %+v", st.Peers[0])
	}
	// Applying again while stopping announces nothing.
	d.Apply(cfg)
	time.Sleep(400 * time.Millisecond)
	if got := learnt(t, router, vip); got != "" {
		t.Errorf("announced after Withdraw: %s", got)
	}
}

func TestSpeakerPathIPv6(t *testing.T) {
	sp := &Speaker{asn: 65001}
	p, err := sp.path(Route{Prefix: netip.MustParsePrefix("2001:db8::10/128")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Family != bgppkt.RF_IPv6_UC {
		t.Errorf("family %v", p.Family)
	}
	var mp *bgppkt.PathAttributeMpReachNLRI
	for _, a := range p.Attrs {
		if m, ok := a.(*bgppkt.PathAttributeMpReachNLRI); ok {
			mp = m
		}
	}
	if mp == nil || !mp.Nexthop.IsUnspecified() || !mp.Nexthop.Is6() {
		t.Errorf("MP_REACH: %+v", mp)
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{"s3cret\nrest\n": "s3cret", "s3cret\r\n": "s3cret", "\n": "", strings.Repeat("x", 81): ""} {
		f := filepath.Join(dir, "pw")
		os.WriteFile(f, []byte(content), 0o600)
		got, err := readPassword(f)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: %q %v", content, got, err)
		}
	}
	if _, err := readPassword(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("missing file: %v", err)
	}
}
