package api

import (
	"context"
	"strings"
	"testing"
)

// A fwmark service in the API: /services/fwm/MARK (fwm6 for IPv6), the
// fwmark and family keys instead of an address, real servers without a
// port named by their address alone, "FWM N" as the metrics' service.
func TestFWMarkService(t *testing.T) {
	h := newHarness(t, baseConfig+`  - fwmark: 7
    forwarding: nat
    scheduler: rr
    real_servers: [{address: 10.0.0.7}]
`)
	ctx := context.Background()
	svc, err := h.c.Service(ctx, "fwm", "7")
	if err != nil || svc.FWMark != 7 || svc.Address != "" || svc.Name != "FWM 7" || svc.Status.Key != "fwm/7" ||
		len(svc.RealServers) != 1 || svc.RealServers[0].Address != "10.0.0.7" {
		t.Fatalf("GET fwm/7: %+v %v", svc, err)
	}
	if _, err := h.c.CreateRealServer(ctx, "fwm", "7", map[string]any{"address": "10.0.0.8", "weight": 2}, ""); err != nil {
		t.Fatal(err)
	}
	if rs, err := h.c.PatchRealServer(ctx, "fwm", "7", "10.0.0.8", map[string]any{"weight": 3}, ""); err != nil || rs.Weight != 3 {
		t.Fatalf("patch 10.0.0.8: %+v %v", rs, err)
	}
	if _, err := h.c.PatchService(ctx, "fwm", "7", map[string]any{"scheduler": "wlc"}); err != nil {
		t.Fatal(err)
	}
	h.wantError("PATCH", "/api/v1/services/fwm/7", `{"fwmark": 8}`, 400, "fwmark", "differs from the path's 7")
	h.wantError("PATCH", "/api/v1/services/fwm/7", `{"forwarding": "proxy"}`, 400, "forwarding", "a fwmark service needs forwarding nat, fullnat or dr")
	h.wantError("GET", "/api/v1/services/fwm/0", "", 400, "fwmark", "invalid firewall mark")
	h.wantError("GET", "/api/v1/services/fwm6/7", "", 404, "", "")
	if err := h.c.DeleteRealServer(ctx, "fwm", "7", "10.0.0.8:0"); err != nil {
		t.Fatalf("delete 10.0.0.8:0 (port 0, as ipvsadm lists it): %v", err)
	}
	code, body := h.do("GET", "/metrics", "")
	if code != 200 || !strings.Contains(body, `govs_backend_weight{backend="10.0.0.7:0",service="FWM 7"} 1`) {
		t.Errorf("metrics lack FWM 7's real server:\n%s", grepLines(body, "FWM"))
	}
	if _, err := h.c.CreateService(ctx, map[string]any{"fwmark": 9, "family": "ipv6", "forwarding": "dr"}); err != nil {
		t.Fatal(err)
	}
	if svc, err := h.c.Service(ctx, "fwm6", "9"); err != nil || svc.Family != "ipv6" || svc.Name != "FWM 9 IPv6" {
		t.Errorf("fwm6/9: %+v %v", svc, err)
	}
	if err := h.c.DeleteService(ctx, "fwm", "7"); err != nil {
		t.Fatal(err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
