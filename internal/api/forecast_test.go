package api

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestForecasts feeds a service's counter at 10 connections a second for an
// hour and reads the forecasts back from the API and /metrics.
func TestForecasts(t *testing.T) {
	h := newHarness(t, baseConfig)
	vs := h.d.Service("tcp/127.0.0.1:8080")
	t0 := time.Unix(1_800_000_000, 0)
	if code, body := h.do("GET", "/api/v1/forecasts", ""); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Fatalf("before any sample: %d %s", code, body)
	}
	for k := range 1800 {
		h.d.SampleForecasts(t0.Add(time.Duration(k) * 2 * time.Second))
		vs.Stats.Conns.Add(20)
	}
	code, body := h.do("GET", "/api/v1/forecasts", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/forecasts: %d %s", code, body)
	}
	var fs []ServiceForecast
	if err := json.Unmarshal([]byte(body), &fs); err != nil {
		t.Fatal(err)
	}
	// Both services have a model; the UDP one saw no connection.
	if len(fs) != 2 || fs[0].Key != "tcp/127.0.0.1:8080" || fs[0].Ready || fs[0].Observations < 58 || len(fs[0].Forecasts) != 3 ||
		fs[1].Forecasts[0].CPS != 0 {
		t.Fatalf("forecasts: %s", body)
	}
	// Nothing configured, nothing learned (no latencies): no capacity.
	if c := fs[0].Capacity; c.CPS != 0 || c.Source != "" || c.Alert || c.Horizon != "15m0s" || fs[0].Mode != "forecast-only" {
		t.Errorf("capacity %+v, mode %q", c, fs[0].Mode)
	}
	for _, f := range fs[0].Forecasts {
		if math.Abs(f.CPS-10) > 0.01 || f.Lower > f.CPS || f.Upper < f.CPS {
			t.Errorf("horizon %s: %.3f [%.3f, %.3f], want 10", f.Horizon, f.CPS, f.Lower, f.Upper)
		}
	}
	_, metrics := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`govs_service_forecast_connections_per_second{horizon="5m",service="web"} 10`,
		`govs_service_forecast_connections_per_second_lower{horizon="1h",service="web"}`,
		`govs_service_forecast_connections_per_second_upper{horizon="15m",service="web"}`,
		`govs_service_forecast_ready{service="web"} 0`,
		`govs_service_capacity_alert{service="web"} 0`,
		`govs_service_standby_real_servers{service="web",state="waiting"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
