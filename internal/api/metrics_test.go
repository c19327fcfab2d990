package api

import (
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

// TestMetricsOperatorSignals checks the metrics the alert rules stand on:
// quorum and sorry server, the latency histograms, the UDP flow table, the
// configuration's reloads and the build.
func TestMetricsOperatorSignals(t *testing.T) {
	h := newHarness(t, baseConfig)
	web := h.d.Service("tcp/127.0.0.1:8080")
	rs := web.RealServers()[0]
	web.Observe(rs, sched.Signal{Kind: sched.ConnectTime, Latency: 3 * time.Millisecond})
	web.Observe(rs, sched.Signal{Kind: sched.Duration, Latency: 2 * time.Second})
	web.Observe(rs, sched.Signal{Kind: sched.FirstByte, Latency: time.Second}) // no histogram of its own
	udp := h.d.Service("udp/127.0.0.1:5353")
	udp.Flows.Add(2)
	udp.Stats.FlowLimit.Add(3)
	h.s.ConfigReloaded(true, time.Unix(1700000000, 0))
	h.s.ConfigReloaded(false, time.Unix(1700000100, 0))

	_, body := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`govs_service_quorum_up{service="web"} 1`,
		`govs_service_sorry_active{service="web"} 0`,
		`govs_backend_connect_duration_seconds_bucket{backend="127.0.0.1:9001",service="web",le="0.0025"} 0`,
		`govs_backend_connect_duration_seconds_bucket{backend="127.0.0.1:9001",service="web",le="0.005"} 1`,
		`govs_backend_connect_duration_seconds_count{backend="127.0.0.1:9001",service="web"} 1`,
		`govs_backend_connection_duration_seconds_bucket{backend="127.0.0.1:9001",service="web",le="5"} 1`,
		`govs_backend_connection_duration_seconds_sum{backend="127.0.0.1:9001",service="web"} 2`,
		`govs_backend_connect_duration_seconds_count{backend="127.0.0.1:5301",service="udp/127.0.0.1:5353"} 0`,
		`govs_service_udp_flows{service="udp/127.0.0.1:5353"} 2`,
		`govs_service_udp_max_flows{service="udp/127.0.0.1:5353"} 65536`,
		`govs_service_udp_flow_limit_drops_total{service="udp/127.0.0.1:5353"} 3`,
		`govs_config_last_reload_successful 0`,
		`govs_config_last_reload_success_timestamp_seconds 1.7e+09`,
		`govs_config_reloads_total{result="success"} 1`,
		`govs_config_reloads_total{result="failure"} 1`,
		`govs_build_info{commit="`,
		"# TYPE govs_backend_connect_duration_seconds histogram",
		"process_max_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, unwanted := range []string{
		// UDP has no connection lifetime, TCP no flow table.
		`govs_backend_connection_duration_seconds_count{backend="127.0.0.1:5301"`,
		`govs_service_udp_flows{service="web"}`,
	} {
		if strings.Contains(body, unwanted) {
			t.Errorf("metrics have %q", unwanted)
		}
	}
	if !strings.Contains(body, `version="test"`) {
		t.Error("govs_build_info lacks the version")
	}
}
