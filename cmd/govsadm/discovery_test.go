package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/discovery/status"
)

var updateDiscovery = flag.Bool("update-discovery", false, "rewrite testdata/discovery.golden")

// goldenDiscovery is one source in each state: answering, failing (the
// pool kept), holding a sudden drop, refused by the director, and not yet
// answered.
func goldenDiscovery(now time.Time) []status.Status {
	at := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	return []status.Status{
		{Service: "web", Key: "tcp/10.0.0.1:80", Type: "kubernetes", Origin: "kubernetes:shop/web", FailPolicy: "keep_last",
			OK: true, LastSuccess: at(2 * time.Second), Answers: 812, Found: 5000, Active: 4998, Draining: 2, Applies: 37,
			Message: "ok"},
		{Service: "api", Key: "tcp/10.0.0.2:443", Type: "etcd", Origin: "etcd:/govs/api/", FailPolicy: "keep_last",
			OK: false, LastSuccess: at(3*time.Minute + 12*time.Second), LastError: "etcd read of /govs/api/ at http://10.0.0.9:2379: context deadline exceeded",
			Errors: 14, Answers: 120, Found: 3, Active: 3, Applies: 4,
			Message: "source failing: keeping the last good set of 3 (fail_policy keep_last): etcd read of /govs/api/ at http://10.0.0.9:2379: context deadline exceeded"},
		{Service: "a-long-service-name", Key: "udp/[2001:db8::53]:53", Type: "dns", Origin: "dns:_dns._udp.example.com", FailPolicy: "set_empty",
			OK: true, LastSuccess: at(26 * time.Hour), Found: 0, Active: 4, HeldTotal: 1, Applies: 2,
			Held:    &status.Held{From: 4, To: 0, Answers: 2, Confirm: 3},
			Message: "drop from 4 to 0 servers held until 3 identical answers or 2026-12-03T14:00:00Z"},
		{Service: "nat6", Key: "tcp/10.0.0.3:80", Type: "file", Origin: "file:/etc/govs/servers.json", FailPolicy: "keep_last",
			OK: true, LastSuccess: at(2*time.Hour + 5*time.Minute), Found: 1, Applies: 0,
			ApplyError: "virtual service web: real server [2001:db8::5]:80: nat forwards within one address family", Message: "ok"},
		{Service: "docker", Key: "tcp/10.0.0.4:8080", Type: "docker", Origin: "docker:app=web", FailPolicy: "keep_last", OK: true,
			Message: "waiting for the first answer"},
	}
}

func TestListDiscoveryGolden(t *testing.T) {
	now := time.Date(2026, 12, 3, 13, 49, 13, 0, time.UTC)
	var got bytes.Buffer
	printDiscovery(&got, goldenDiscovery(now), now)
	file := filepath.Join("testdata", "discovery.golden")
	if *updateDiscovery {
		if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("-L --discovery differs from %s (-update-discovery rewrites it)\n got:\n%s\nwant:\n%s", file, got.Bytes(), want)
	}
}

func TestListDiscoveryCommand(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	out, errs, code := govsadm(t, sock, "", "-L", "--discovery")
	if code != 0 || !strings.HasPrefix(out, "Prot LocalAddress:Port") || strings.Count(out, "\n") != 2 {
		t.Errorf("-L --discovery with no source: exit %d %q %q", code, out, errs)
	}
	for _, args := range [][]string{{"-L", "--discovery", "--stats"}, {"-L", "--discovery", "-c"}, {"-A", "-t", "127.0.0.1:1", "--discovery"},
		{"-L", "--discovery", "-t", "127.0.0.1:8080"}} {
		if _, errs, code := govsadm(t, sock, "", args...); code == 0 || errs == "" {
			t.Errorf("%v accepted (exit %d)", args, code)
		}
	}
}
