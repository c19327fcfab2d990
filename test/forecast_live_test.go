package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/loopback"
)

// Pre-warming and the capacity alert, live (issue 17, docs/forecast.md):
// the real binary, proxy services on loopback, and a real connection rate
// that repeats a cycle with a rush. A day-long season cannot run in a
// test; a service whose load recurs every minute is what a user with a
// short cycle configures: forecast: {step: 2s, season: 1m}.

// liveCycle is the shape of the load, one cycle a minute (the season):
// base/s, a ramp from 30 s to 38 s up to 6 times base, held to 46 s, then
// base again. The phase is the time since the last whole UTC minute, as
// the model's season slots are.
func liveCycle(t time.Time, base float64) float64 {
	p := float64(t.UnixNano()%int64(time.Minute)) / 1e9
	switch {
	case p >= 30 && p < 38:
		return base * (1 + 5*(p-30)/8)
	case p >= 38 && p < 46:
		return base * 6
	}
	return base
}

// pacedLoad is an open-loop client: it opens connections at rate(now) per
// second (each asks once and closes), whatever the answers' pace; one that
// fell more than 250 ms behind drops the connections it owes rather than
// bursting.
type pacedLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startPacedLoad(vip string, rate func(time.Time) float64) *pacedLoad {
	l := &pacedLoad{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		next := time.Now()
		for {
			now := time.Now()
			if now.Sub(next) > 250*time.Millisecond {
				next = now
			}
			select {
			case <-l.stop:
				return
			case <-time.After(time.Until(next)):
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				if _, err := ask(vip); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
					l.mu.Unlock()
					return
				}
				l.ok.Add(1)
			}()
			next = next.Add(time.Duration(float64(time.Second) / max(rate(next), 0.1)))
		}
	}()
	return l
}

// end stops the load and waits for its connections.
func (l *pacedLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// firstServed is a line server (loopback.LineServer's protocol) that
// records when it accepted its first connection.
func firstServed(t *testing.T, name string, first *atomic.Int64) string {
	return loopback.Serve(t, func(c net.Conn) {
		first.CompareAndSwap(0, time.Now().UnixNano())
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", name, line)
		}
	})
}

// promGauge is the value of the sample of metric whose labels include
// every label given ("k=\"v\""), and whether /metrics has it.
func promGauge(metrics, metric string, labels ...string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + `\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(metrics, -1) {
		all := true
		for _, l := range labels {
			all = all && strings.Contains(m[1], l)
		}
		if all {
			v, err := strconv.ParseFloat(m[2], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestPrewarmLive runs the real daemon with two proxy services under the
// same recurring load, each with a real server in service and a standby
// one, a configured capacity of 2 connections/s a unit of weight (20/s a
// server of weight 10: 18/s is 90%) and a one-minute season of 2 s steps.
// One whole minute at base 2/s (a rush of 12/s, which the server in
// service carries), then every minute 4 times busier: 8/s, a ramp from
// 30 s that needs the standby server from 32 s (18/s), 48/s at the rush.
//
// It shows, with what a user sees (GET /api/v1/forecasts, the log,
// /metrics) and where the connections went:
//   - prewarm: the standby server is called, and serves connections, before
//     the busier minute's ramp begins;
//   - forecast-only: the standby server waits through the quiet part of
//     the busier minute and is called once the ramp is under way;
//   - the capacity alert (40/s with both servers up) is raised before the
//     busier rush and cleared after it, in /metrics and the API; the
//     govs_service_forecast_* gauges are there and move;
//   - no client connection fails.
func TestPrewarmLive(t *testing.T) {
	if testing.Short() {
		t.Skip("waits up to 3 minutes for the load's cycles")
	}
	type svc struct {
		name, mode, vip string
		active, standby atomic.Int64 // first connection served, Unix ns
		calledAt        time.Time    // first seen called in the API
		alertAt         time.Time    // first seen alerting in the API
		clearedAt       time.Time    // first seen clear after alertAt
	}
	svcs := []*svc{{name: "pre", mode: "prewarm"}, {name: "cold", mode: "forecast-only"}}
	conf := "virtual_servers:\n"
	for _, s := range svcs {
		s.vip = loopback.Addr(t, "tcp")
		conf += fmt.Sprintf(`  - name: %s
    address: %s
    scheduler: wrr
    slow_start: 10s
    forecast: {mode: %s, capacity: 2, step: 2s, season: 1m, horizon: 20s}
    real_servers:
      - address: %s
        weight: 10
      - address: %s
        weight: 10
        standby: true
`, s.name, s.vip, s.mode, firstServed(t, s.name+"-active", &s.active), firstServed(t, s.name+"-standby", &s.standby))
	}
	d := startAbuse(t, conf, 0)
	t0 := time.Now()
	// The busier minutes begin at the first whole minute that leaves the
	// model a whole quiet minute before it (its first sample comes 2 s
	// after the start, and its first step is a part of one).
	earliest := t0.Add(70 * time.Second)
	busy := earliest.Truncate(time.Minute)
	if busy.Before(earliest) {
		busy = busy.Add(time.Minute)
	}
	rampAt, needAt, rushEnd := busy.Add(30*time.Second), busy.Add(32*time.Second), busy.Add(46*time.Second)
	rate := func(now time.Time) float64 {
		if now.Before(busy) {
			return liveCycle(now, 2)
		}
		return liveCycle(now, 8)
	}
	t.Logf("started %s; busier from %s, its ramp from %s, needing the standby server from %s",
		t0.Format("15:04:05"), busy.Format("15:04:05"), rampAt.Format("15:04:05"), needAt.Format("15:04:05"))
	var loads []*pacedLoad
	for _, s := range svcs {
		l := startPacedLoad(s.vip, rate)
		loads = append(loads, l)
		t.Cleanup(l.end)
	}

	forecasts := func() map[string]api.ServiceForecast {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var fs []api.ServiceForecast
		if err := d.client().Do(ctx, "GET", "/api/v1/forecasts", nil, &fs); err != nil {
			t.Fatalf("GET /api/v1/forecasts: %v", err)
		}
		out := map[string]api.ServiceForecast{}
		for _, f := range fs {
			out[f.Service] = f
		}
		return out
	}
	// Watch the API every 250 ms until both services' alerts cleared
	// after the busier rush (or a generous deadline), noting when each
	// standby server is called and each alert raised and cleared.
	var quiet, alerting string // /metrics before the busier minute, and while alerting
	deadline := rushEnd.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		now := time.Now()
		fs := forecasts()
		done := true
		for _, s := range svcs {
			f := fs[s.name]
			if f.Standby.Called > 0 && s.calledAt.IsZero() {
				s.calledAt = now
				t.Logf("%s: standby server called by %s (phase %s of its minute); forecast %+v", s.name,
					now.Format("15:04:05.000"), now.Sub(now.Truncate(time.Minute)).Round(100*time.Millisecond), f.Capacity)
			}
			if f.Capacity.Alert && s.alertAt.IsZero() {
				s.alertAt = now
			}
			if !f.Capacity.Alert && !s.alertAt.IsZero() && s.clearedAt.IsZero() {
				s.clearedAt = now
			}
			done = done && !s.clearedAt.IsZero() && now.After(rushEnd)
		}
		if quiet == "" && now.After(busy.Add(-2*time.Second)) {
			quiet = d.metrics(t)
			if f := fs["pre"]; !f.Ready || f.Step != "2s" || f.Mode != "prewarm" || f.Capacity.Source != "configured" ||
				f.Capacity.CPS != 40 || f.Standby.Waiting != 1 || f.Standby.Called != 0 || f.Capacity.Alert {
				t.Fatalf("before the busier minute: %+v", f)
			}
		}
		if alerting == "" && !svcs[0].alertAt.IsZero() && svcs[0].clearedAt.IsZero() {
			alerting = d.metrics(t)
		}
		if done {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	cleared := d.metrics(t)
	for _, l := range loads {
		l.end()
	}

	for _, s := range svcs {
		first := time.Unix(0, s.standby.Load())
		t.Logf("%s: called %s, first connection on the standby server %s, alert %s to %s",
			s.name, s.calledAt.Format("15:04:05.000"), first.Format("15:04:05.000"),
			s.alertAt.Format("15:04:05.000"), s.clearedAt.Format("15:04:05.000"))
		if s.calledAt.IsZero() || s.standby.Load() == 0 {
			t.Errorf("%s: the standby server was not called (or served nothing) by %s", s.name, deadline.Format("15:04:05"))
			continue
		}
		if s.active.Load() == 0 || time.Unix(0, s.active.Load()).After(busy) {
			t.Errorf("%s: the server in service served nothing before the busier minute", s.name)
		}
		if first.Before(busy) {
			t.Errorf("%s: the standby server served a connection at %s, before the busier minute", s.name, first.Format("15:04:05.000"))
		}
		if s.alertAt.IsZero() || s.clearedAt.IsZero() || !s.alertAt.Before(rushEnd) || !s.clearedAt.After(s.alertAt) {
			t.Errorf("%s: the capacity alert was not raised before the busier rush and cleared after it", s.name)
		}
	}
	pre, cold := svcs[0], svcs[1]
	// The proof: prewarm calls the standby server before the ramp, and
	// it serves before the load needs it; forecast-only waits for the load.
	if first := time.Unix(0, pre.standby.Load()); !pre.calledAt.Before(rampAt) || !first.Before(needAt) {
		t.Errorf("prewarm: called at %s and first served at %s: want before the ramp at %s and the need at %s",
			pre.calledAt.Format("15:04:05.000"), first.Format("15:04:05.000"), rampAt.Format("15:04:05"), needAt.Format("15:04:05"))
	}
	if first := time.Unix(0, cold.standby.Load()); cold.calledAt.Before(rampAt) || first.Before(rampAt) {
		t.Errorf("forecast-only: called at %s and first served at %s: want after the ramp began at %s",
			cold.calledAt.Format("15:04:05.000"), first.Format("15:04:05.000"), rampAt.Format("15:04:05"))
	}
	log := d.log()
	for _, want := range []string{"standby real server called: the forecast", "standby real server called: the load now",
		"capacity alert: the forecast exceeds the service's capacity", "capacity alert cleared"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}

	// /metrics: the forecasts at each horizon, the capacity, the alert
	// raised and cleared, the standby servers waiting and called.
	for _, s := range svcs {
		sv := `service="` + s.name + `"`
		if v, ok := promGauge(quiet, "govs_service_forecast_ready", sv); !ok || v != 1 {
			t.Errorf("%s: govs_service_forecast_ready %v before the busier minute, want 1", s.name, v)
		}
		if v, ok := promGauge(quiet, "govs_service_standby_real_servers", sv, `state="waiting"`); !ok || v != 1 {
			t.Errorf("%s: %v standby servers waiting before the busier minute, want 1", s.name, v)
		}
		if v, ok := promGauge(cleared, "govs_service_standby_real_servers", sv, `state="called"`); !ok || v != 1 {
			t.Errorf("%s: %v standby servers called at the end, want 1", s.name, v)
		}
		if v, ok := promGauge(quiet, "govs_service_capacity_connections_per_second", sv, `source="configured"`); !ok || v != 40 {
			t.Errorf("%s: capacity %v, want 40", s.name, v)
		}
		if v, ok := promGauge(cleared, "govs_service_capacity_alert", sv); !ok || v != 0 {
			t.Errorf("%s: govs_service_capacity_alert %v at the end, want 0", s.name, v)
		}
		for _, h := range []string{"5m", "15m", "1h"} {
			for _, m := range []string{"govs_service_forecast_connections_per_second", "govs_service_forecast_connections_per_second_lower",
				"govs_service_forecast_connections_per_second_upper"} {
				if _, ok := promGauge(quiet, m, sv, `horizon="`+h+`"`); !ok {
					t.Errorf("%s: /metrics lacks %s{horizon=%q}", s.name, m, h)
				}
			}
		}
		a, _ := promGauge(quiet, "govs_service_forecast_connections_per_second", sv, `horizon="5m"`)
		b, _ := promGauge(cleared, "govs_service_forecast_connections_per_second", sv, `horizon="5m"`)
		t.Logf("%s: 5m forecast %.1f/s before the busier minute, %.1f/s after its rush", s.name, a, b)
		if a == b {
			t.Errorf("%s: the 5m forecast did not move (%v)", s.name, a)
		}
	}
	if v, ok := promGauge(alerting, "govs_service_capacity_alert", `service="pre"`); !ok || v != 1 {
		t.Errorf("govs_service_capacity_alert{service=\"pre\"} %v while the API said alerting, want 1", v)
	}

	for i, l := range loads {
		l.mu.Lock()
		errs := l.errs
		l.mu.Unlock()
		t.Logf("%s: %d connections answered, %d failed", svcs[i].name, l.ok.Load(), l.failed.Load())
		if l.failed.Load() != 0 {
			t.Errorf("%s: %d connections failed: %v", svcs[i].name, l.failed.Load(), errs[:min(len(errs), 5)])
		}
	}
}
