package api

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govs-lb/govs/internal/bgp"
)

// BGPSource gives the BGP speaker's state: *bgp.Daemon.
type BGPSource interface {
	Status(ctx context.Context) bgp.Status
}

// BGP is GET /api/v1/bgp: the speaker, its peers' sessions and each VIP's
// announcement (docs/bgp.md).
type BGP = bgp.Status

var (
	descBGPSessionUp = prometheus.NewDesc("govs_bgp_session_up",
		"1 while the BGP session with the peer is established.", []string{"peer"}, nil)
	descBGPSessionFlaps = prometheus.NewDesc("govs_bgp_session_flaps_total",
		"Times the BGP session with the peer went down.", []string{"peer"}, nil)
	descBGPAnnounced = prometheus.NewDesc("govs_bgp_announced",
		"1 while the VIP's prefix is announced to the peers.", []string{"prefix"}, nil)
	descBGPSuppressed = prometheus.NewDesc("govs_bgp_suppressed",
		"1 while the VIP is held back by flap damping.", []string{"prefix"}, nil)
	descBGPRouteFlaps = prometheus.NewDesc("govs_bgp_route_flaps_total",
		"Times the VIP was withdrawn because its services lost their quorum.", []string{"prefix"}, nil)
)

// SetBGP makes the server report b in /api/v1/bgp and /metrics.
func (s *Server) SetBGP(b BGPSource) {
	s.mu.Lock()
	first := s.bgp == nil
	s.bgp = b
	s.mu.Unlock()
	if first && b != nil {
		s.reg.MustRegister(bgpCollector{s})
	}
}

func (s *Server) bgpState(ctx context.Context) BGP {
	s.mu.Lock()
	b := s.bgp
	s.mu.Unlock()
	if b == nil {
		return BGP{Status: "bgp not configured", Peers: []bgp.PeerStatus{}, VIPs: []bgp.VIPReport{}}
	}
	return b.Status(ctx)
}

func (s *Server) getBGP(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.bgpState(r.Context()))
	return nil
}

// GetBGP returns the BGP speaker's state. It is not a Client method: its
// type is internal/bgp's, which a client (internal/apiclient) does not link.
func GetBGP(ctx context.Context, c *Client) (*BGP, error) {
	out := &BGP{}
	return out, c.Do(ctx, "GET", "/api/v1/bgp", nil, out)
}

type bgpCollector struct{ s *Server }

func (c bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBGPSessionUp, descBGPSessionFlaps, descBGPAnnounced, descBGPSuppressed, descBGPRouteFlaps} {
		ch <- d
	}
}

func (c bgpCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := c.s.bgpState(ctx)
	for _, p := range st.Peers {
		ch <- prometheus.MustNewConstMetric(descBGPSessionUp, prometheus.GaugeValue, b2f(p.Up), p.Address)
		ch <- prometheus.MustNewConstMetric(descBGPSessionFlaps, prometheus.CounterValue, float64(p.Flaps), p.Address)
	}
	for _, v := range st.VIPs {
		ch <- prometheus.MustNewConstMetric(descBGPAnnounced, prometheus.GaugeValue, b2f(v.Announced), v.Prefix)
		ch <- prometheus.MustNewConstMetric(descBGPSuppressed, prometheus.GaugeValue, b2f(v.Suppressed), v.Prefix)
		ch <- prometheus.MustNewConstMetric(descBGPRouteFlaps, prometheus.CounterValue, float64(v.Flaps), v.Prefix)
	}
}
