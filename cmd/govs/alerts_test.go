package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/alert"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

type nopDataplane struct{ director.NullDataplane }

// TestCapacityAlertWebhook runs the capacity alert end to end in process:
// a director whose service sees two days of traffic with a rush hour under
// its configured capacity and a third day whose rush exceeds it, the
// director's events through healthAlerts to an alert.Sender, and its
// webhook POST to a real HTTP receiver on loopback.
func TestCapacityAlertWebhook(t *testing.T) {
	got := make(chan alert.Event, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev alert.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got <- ev
	}))
	defer srv.Close()
	cfg, err := config.Parse("govs.yaml", []byte(`
alerts:
  router_id: lb1
  webhooks: [`+srv.URL+`/hook]
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    forecast: {capacity: 50, horizon: 15m}
    real_servers:
      - address: 127.0.0.1:9001
`))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := director.New(log, nopDataplane{})
	defer d.Shutdown(time.Second)
	sender := alert.New(log)
	defer sender.Close(time.Second)
	sender.Apply(cfg)
	d.SetEventHook(healthAlerts(sender))
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	vs := d.Service("tcp/127.0.0.1:8080")
	now := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	day := func(base, peak float64) {
		for range 1440 {
			now = now.Add(time.Minute)
			rate := base
			if m := now.Hour()*60 + now.Minute(); m >= 9*60 && m < 10*60 {
				rate = peak
			}
			vs.Stats.Conns.Add(uint64(rate * 60))
			d.SampleForecasts(now)
		}
	}
	day(20, 40)
	day(20, 40)
	select {
	case ev := <-got:
		t.Fatalf("an alert while the load stayed under the capacity: %+v", ev)
	default:
	}
	day(30, 60) // a busier day: the rush, 60/s, exceeds 50/s; raised before it, cleared after it
	rush := time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC)
	for _, want := range []string{"EXCEEDED", "OK"} {
		select {
		case ev := <-got:
			if ev.Kind != alert.KindCapacity || ev.State != want || ev.Service != "[127.0.0.1]:tcp:8080" ||
				ev.Subject != "[lb1] Virtualserver [127.0.0.1]:tcp:8080 - capacity "+want {
				t.Fatalf("webhook got %+v, want capacity %s", ev, want)
			}
			if want == "EXCEEDED" && (!ev.Time.Before(rush) || ev.Time.Before(rush.Add(-15*time.Minute))) {
				t.Fatalf("raised at %s, want in the 15 minutes before the rush hour", ev.Time.Format("15:04"))
			}
			t.Logf("%s: %s", ev.Subject, ev.Reason)
		case <-time.After(30 * time.Second):
			t.Fatalf("no capacity %s alert", want)
		}
	}
}
