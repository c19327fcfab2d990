package api

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/discovery"
)

const discoveryConfig = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    discovery: {type: file, path: /srv/web.json}
    real_servers:
      - address: 127.0.0.1:9001
`

type fakeDiscovery []discovery.Status

func (f fakeDiscovery) Status() []discovery.Status { return f }

func TestDiscoveredServersInTheAPI(t *testing.T) {
	h := newHarness(t, discoveryConfig)
	w := 2
	disc := &config.RealServer{Address: config.Endpoint{Addr: netip.MustParseAddr("127.0.0.1"), Port: 9002, HasPort: true},
		Weight: &w, Origin: "file:/srv/web.json", SourceName: "web-b", Node: "node-1"}
	if err := h.d.SetDiscovered("tcp/127.0.0.1:8080", []*config.RealServer{disc}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc, err := h.c.Service(ctx, "tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.RealServers) != 2 || svc.RealServers[0].Origin != "" || svc.RealServers[1].Origin != "file:/srv/web.json" {
		t.Fatalf("real servers %+v", svc.RealServers)
	}
	// The source's name for it and its node come along; a written one has neither.
	if d, w := svc.RealServers[1], svc.RealServers[0]; d.SourceName != "web-b" || d.Node != "node-1" || w.SourceName != "" || w.Node != "" {
		t.Fatalf("source names: discovered %q on %q, written %q on %q", d.SourceName, d.Node, w.SourceName, w.Node)
	}
	// A discovered server cannot be changed or deleted; the message names the source.
	for _, m := range []string{http.MethodPatch, http.MethodDelete} {
		body := ""
		if m == http.MethodPatch {
			body = `{"weight": 5}`
		}
		e := h.wantError(m, RealServerPath("tcp", "127.0.0.1:8080", "127.0.0.1:9002"), body, http.StatusConflict, "", "file:/srv/web.json")
		if e.Code != CodeForbidden {
			t.Fatalf("%s: code %q", m, e.Code)
		}
	}
	// A GET-edit-PUT of the service, echoing the discovered server and the
	// block, works and keeps the discovered server as the source has it.
	code, out := h.do(http.MethodGet, ServicePath("tcp", "127.0.0.1:8080"), "")
	if code != http.StatusOK {
		t.Fatal(out)
	}
	out = strings.Replace(strings.Replace(out, `"scheduler": "wlc"`, `"scheduler": "rr"`, 1), `"scheduler":"wlc"`, `"scheduler":"rr"`, 1)
	if code, body := h.do(http.MethodPut, ServicePath("tcp", "127.0.0.1:8080"), out); code != http.StatusOK {
		t.Fatalf("PUT of the echoed service: %d %s", code, body)
	}
	svc, _ = h.c.Service(ctx, "tcp", "127.0.0.1:8080")
	if svc.Scheduler != "rr" || len(svc.RealServers) != 2 || svc.RealServers[1].Weight != 2 || svc.RealServers[1].SourceName != "web-b" {
		t.Fatalf("after PUT: %+v", svc)
	}
	// The block cannot change through the API.
	h.wantError(http.MethodPatch, ServicePath("tcp", "127.0.0.1:8080"), `{"discovery": {"type": "file", "path": "/etc/shadow"}}`,
		http.StatusConflict, "", "configuration file only")

	// Status and metrics.
	now := time.Now()
	h.s.SetDiscovery(fakeDiscovery{{Service: "web", Key: "tcp/127.0.0.1:8080", Type: "file", Origin: "file:/srv/web.json",
		OK: false, LastError: "gone", LastSuccess: &now, Found: 1, Active: 1, Message: "source failing"}})
	rep, err := h.c.Discovery(ctx)
	if err != nil || len(rep.Sources) != 1 || rep.Sources[0].LastError != "gone" {
		t.Fatalf("discovery: %+v %v", rep, err)
	}
	_, metrics := h.do(http.MethodGet, "/metrics", "")
	for _, want := range []string{`govs_discovery_up{origin="file:/srv/web.json",service="web"} 0`,
		`govs_discovery_servers{origin="file:/srv/web.json",service="web",state="active"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
