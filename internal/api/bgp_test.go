package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/bgp"
)

type fakeBGP struct{}

func (fakeBGP) Status(context.Context) bgp.Status {
	return bgp.Status{ASN: 65001, RouterID: "10.0.0.11",
		Peers: []bgp.PeerStatus{{Address: "10.0.0.1", ASN: 65000, State: "established", Up: true, Since: time.Unix(1e9, 0), Flaps: 2, Advertised: 1, HoldTime: 9}},
		VIPs:  []bgp.VIPReport{{Prefix: "10.0.9.100/32", Services: []string{"web"}, Healthy: true, Announced: true, Flaps: 3}}}
}

func TestBGPState(t *testing.T) {
	h := newHarness(t, baseConfig)
	v, err := GetBGP(context.Background(), h.c)
	if err != nil || v.Status != "bgp not configured" || v.Peers == nil || v.VIPs == nil {
		t.Fatalf("without bgp: %+v %v", v, err)
	}
	h.s.SetBGP(fakeBGP{})
	h.s.SetBGP(fakeBGP{}) // a second call must not register the metrics twice
	v, err = GetBGP(context.Background(), h.c)
	if err != nil || v.Status != "" || v.ASN != 65001 || len(v.Peers) != 1 || !v.Peers[0].Up || v.VIPs[0].Prefix != "10.0.9.100/32" {
		t.Fatalf("bgp: %+v %v", v, err)
	}
	_, body := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`govs_bgp_session_up{peer="10.0.0.1"} 1`,
		`govs_bgp_session_flaps_total{peer="10.0.0.1"} 2`,
		`govs_bgp_announced{prefix="10.0.9.100/32"} 1`,
		`govs_bgp_suppressed{prefix="10.0.9.100/32"} 0`,
		`govs_bgp_route_flaps_total{prefix="10.0.9.100/32"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
