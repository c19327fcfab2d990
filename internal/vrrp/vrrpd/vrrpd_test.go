//go:build linux

package vrrpd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/script"
)

func TestAnnouncePayloads(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	garp := garpPayload(mac, netip.MustParseAddr("10.0.0.100"))
	want := []byte{0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 100, 255, 255, 255, 255, 255, 255, 10, 0, 0, 100}
	if !slices.Equal(garp, want) {
		t.Errorf("garp % x", garp)
	}
	na := naPayload(mac, netip.MustParseAddr("fd00::100"))
	if len(na) != 32 || na[0] != 136 || na[4] != 0x20 || na[24] != 2 || na[25] != 1 || !slices.Equal(na[26:], []byte(mac)) ||
		netip.AddrFrom16([16]byte(na[8:24])) != netip.MustParseAddr("fd00::100") {
		t.Errorf("na % x", na)
	}
}

// asRoot runs the scripts of these tests, which use test directories only
// root may enter, as root.
var asRoot = script.Policy{User: "root"}

// A script that outlives its timeout is killed with its whole process
// group: the child it started in the background dies too.
func TestRunScriptTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	start := time.Now()
	_, err := runScript(context.Background(), asRoot, "/bin/sh -c 'sleep 30 & echo $! > "+pidFile+"; wait'", nil, 200*time.Millisecond)
	if !errors.Is(err, errScriptTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // a loaded machine ends a killed process late
	for {
		if _, err := os.Stat("/proc/" + strings.TrimSpace(string(b))); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the script's background child survived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, err := runScript(context.Background(), asRoot, "/bin/sh -c 'echo hello; exit 3'", nil, time.Second)
	if out != "hello" || err == nil {
		t.Fatalf("out %q err %v", out, err)
	}
}

// A track script goes down after fall failures and up after rise
// successes, starting up.
func TestTrackScriptRiseFall(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "ok")
	ts := &config.TrackScript{Name: "s", Interval: config.Duration(20 * time.Millisecond),
		Timeout: config.Duration(time.Second), Rise: 3, Fall: 2}
	var mu sync.Mutex
	var got []bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts.Script = "/usr/bin/test -e " + flag
	go runTrackScript(ctx, slog.Default(), ts, func() script.Policy { return asRoot }, func(up bool) {
		mu.Lock()
		got = append(got, up)
		mu.Unlock()
	})
	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second) // generous: a loaded machine
		for {
			mu.Lock()
			l := len(got)
			mu.Unlock()
			if l >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reports %v, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait(1) // the file is missing: down after 2 failures
	os.WriteFile(flag, nil, 0o644)
	wait(2)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []bool{false, true}) {
		t.Fatalf("reports %v", got)
	}
}

// A reload keeps the units whose configuration did not change.
func TestPlanFingerprints(t *testing.T) {
	parse := func(src string) *config.Config {
		t.Helper()
		c, err := config.Parse("v.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	const a = "vrrp_instances:\n  - {name: A, interface: eth0, virtual_router_id: 1, virtual_ipaddresses: [10.0.0.1]}\n"
	const b = "  - {name: B, interface: eth0, virtual_router_id: 2, virtual_ipaddresses: [10.0.0.2]}\n"
	p1 := plan(parse(a + b))
	p2 := plan(parse("# moved\n\n" + a + strings.Replace(b, "10.0.0.2", "10.0.0.3", 1)))
	if len(p1) != 2 || p1[0].key != "instance A" || p1[0].fp != p2[0].fp || p1[1].fp == p2[1].fp {
		t.Fatalf("plans %+v %+v", p1, p2)
	}
	g := plan(parse(a + b + "vrrp_sync_groups: [{name: G, instances: [B, A]}]\n"))
	if len(g) != 1 || g[0].key != "group G" || len(g[0].insts) != 2 || g[0].insts[0].Name != "B" {
		t.Fatalf("group plan %+v", g)
	}
}

// VRRP scripts run as the script user (nobody unless script_user says
// otherwise), split into words as keepalived does, and a script that cannot
// run is an error naming it.
func TestRunScriptAsScriptUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("scripts run as another user only when govs is root")
	}
	out, err := runScript(context.Background(), script.Policy{}, "/usr/bin/id -u", nil, 5*time.Second)
	if err != nil || out != "65534" {
		t.Fatalf("default user: %q %v", out, err)
	}
	out, err = runScript(context.Background(), script.Policy{User: "daemon"}, "/usr/bin/id", []string{"-un"}, 5*time.Second)
	if err != nil || out != "daemon" {
		t.Fatalf("script_user daemon: %q %v", out, err)
	}
	var ref *script.Refused
	if _, err := runScript(context.Background(), script.Policy{}, "/no/such/script arg", nil, time.Second); !errors.As(err, &ref) ||
		!strings.Contains(err.Error(), "/no/such/script: not found") {
		t.Fatalf("missing script: %v", err)
	}
}
