package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
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
// bursting. Each connection's latency runs from its scheduled time to the
// answer, so a client or proxy that falls behind is charged for it.
type pacedLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	samples    []pacedSample
	stop       chan struct{}
	wg         sync.WaitGroup
}

// pacedSample is one connection: when it was due, and how long it took
// (-1: it failed).
type pacedSample struct {
	at     time.Time
	lat    time.Duration
	server string // the real server that answered
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
			go func(due time.Time) {
				defer l.wg.Done()
				name, err := ask(vip)
				lat := time.Since(due)
				l.mu.Lock()
				defer l.mu.Unlock()
				if err != nil {
					l.failed.Add(1)
					l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
					lat = -1
				} else {
					l.ok.Add(1)
				}
				l.samples = append(l.samples, pacedSample{due, lat, name})
			}(next)
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

// window is the latencies of the connections due in [from, to), sorted,
// a failed one counting as the slowest (an hour), and how many each real
// server answered.
func (l *pacedLoad) window(from, to time.Time) ([]time.Duration, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lats []time.Duration
	by := map[string]int{}
	for _, s := range l.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			lat := s.lat
			if lat < 0 {
				lat = time.Hour
			}
			lats = append(lats, lat)
			by[s.server]++
		}
	}
	slices.Sort(lats)
	return lats, by
}

// quantile is the q-quantile of sorted latencies (0 if none).
func quantile(lats []time.Duration, q float64) time.Duration {
	if len(lats) == 0 {
		return 0
	}
	return lats[min(int(float64(len(lats))*q), len(lats)-1)]
}

// firstServed is a line server (loopback.LineServer's protocol) that
// records when it accepted its first connection.
func firstServed(t testing.TB, name string, first *atomic.Int64) string {
	return warmingServer(t, name, first, 0, 0, 0, 0)
}

// warmingServer is firstServed with finite capacity: slots workers, each
// answer taking warm (0: none and no limit), or cold for the first coldFor
// after the first connection (caches filling, a JIT compiling: a real
// server slow for its first seconds). Waiting answers queue for a worker.
func warmingServer(t testing.TB, name string, first *atomic.Int64, slots int, warm, cold, coldFor time.Duration) string {
	var workers chan struct{}
	if warm > 0 {
		workers = make(chan struct{}, slots)
	}
	return loopback.Serve(t, func(c net.Conn) {
		first.CompareAndSwap(0, time.Now().UnixNano())
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if workers != nil {
				workers <- struct{}{}
				d := warm
				if time.Since(time.Unix(0, first.Load())) < coldFor {
					d = cold
				}
				time.Sleep(d)
				<-workers
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

// prewarmLab is the daemon with two proxy services under the same load,
// "pre" (forecast mode prewarm) and "cold" (forecast-only), each with a
// real server in service and a standby one, both of weight 10, the
// configured capacity, and a one-minute season of 2 s steps with a 20 s
// horizon. The load is liveCycle at base/s for at least a whole minute,
// then mult times busier from the minute busy.
type prewarmLab struct {
	d    *abuseDaemon
	svcs []*prewarmSvc
	// busy is the first busier minute, rampAt its ramp's start, needAt
	// when its driven rate first exceeds 90% of what the server in service
	// carries, rushEnd the end of its rush.
	t0, busy, rampAt, needAt, rushEnd time.Time
}

type prewarmSvc struct {
	name, mode, vip string
	active, standby atomic.Int64 // first connection served, Unix ns
	load            *pacedLoad
	calledAt        time.Time // first seen called in the API
	alertAt         time.Time // first seen alerting in the API
	clearedAt       time.Time // first seen clear after alertAt
}

// serveFunc starts a real server named name that notes its first
// connection in first, and returns its address.
type serveFunc func(tb testing.TB, name string, first *atomic.Int64) string

func startPrewarmLab(tb testing.TB, scheduler string, capacity int, base, mult float64, serve serveFunc) *prewarmLab {
	lab := &prewarmLab{svcs: []*prewarmSvc{{name: "pre", mode: "prewarm"}, {name: "cold", mode: "forecast-only"}}}
	conf := "virtual_servers:\n"
	for _, s := range lab.svcs {
		s.vip = loopback.Addr(tb, "tcp")
		conf += fmt.Sprintf(`  - name: %s
    address: %s
    scheduler: %s
    slow_start: 10s
    forecast: {mode: %s, capacity: %d, step: 2s, season: 1m, horizon: 20s}
    real_servers:
      - address: %s
        weight: 10
      - address: %s
        weight: 10
        standby: true
`, s.name, s.vip, scheduler, s.mode, capacity, serve(tb, s.name+"-active", &s.active), serve(tb, s.name+"-standby", &s.standby))
	}
	lab.d = startAbuse(tb, conf, 0)
	lab.t0 = time.Now()
	// The busier minutes begin at the first whole minute that leaves the
	// model a whole quiet minute before it (its first sample comes 2 s
	// after the start, and its first step is a part of one).
	earliest := lab.t0.Add(70 * time.Second)
	lab.busy = earliest.Truncate(time.Minute)
	if lab.busy.Before(earliest) {
		lab.busy = lab.busy.Add(time.Minute)
	}
	need := 0.9 * float64(capacity*10)
	lab.rampAt, lab.rushEnd = lab.busy.Add(30*time.Second), lab.busy.Add(46*time.Second)
	lab.needAt = lab.rampAt.Add(time.Duration(8 * (need/(base*mult) - 1) / 5 * float64(time.Second)))
	rate := func(now time.Time) float64 {
		if now.Before(lab.busy) {
			return liveCycle(now, base)
		}
		return liveCycle(now, base*mult)
	}
	tb.Logf("started %s (load average %s); busier from %s, its ramp from %s, needing the standby server from %s",
		lab.t0.Format("15:04:05"), loadAverage(), lab.busy.Format("15:04:05"), lab.rampAt.Format("15:04:05"), lab.needAt.Format("15:04:05.0"))
	for _, s := range lab.svcs {
		s.load = startPacedLoad(s.vip, rate)
		tb.Cleanup(s.load.end)
	}
	return lab
}

// forecasts is GET /api/v1/forecasts by service name.
func (lab *prewarmLab) forecasts(tb testing.TB) map[string]api.ServiceForecast {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var fs []api.ServiceForecast
	if err := lab.d.client().Do(ctx, "GET", "/api/v1/forecasts", nil, &fs); err != nil {
		tb.Fatalf("GET /api/v1/forecasts: %v", err)
	}
	out := map[string]api.ServiceForecast{}
	for _, f := range fs {
		out[f.Service] = f
	}
	return out
}

// watch reads the API every 250 ms until until(now) or deadline, noting
// when each standby server is called and each alert raised and cleared;
// each is given every answer.
func (lab *prewarmLab) watch(tb testing.TB, deadline time.Time, until func(now time.Time) bool, each func(now time.Time, fs map[string]api.ServiceForecast)) {
	for time.Now().Before(deadline) {
		now := time.Now()
		fs := lab.forecasts(tb)
		for _, s := range lab.svcs {
			f := fs[s.name]
			if f.Standby.Called > 0 && s.calledAt.IsZero() {
				s.calledAt = now
				tb.Logf("%s: standby server called by %s (phase %s of its minute); capacity %+v", s.name,
					now.Format("15:04:05.000"), now.Sub(now.Truncate(time.Minute)).Round(100*time.Millisecond), f.Capacity)
			}
			if f.Capacity.Alert && s.alertAt.IsZero() {
				s.alertAt = now
			}
			if !f.Capacity.Alert && !s.alertAt.IsZero() && s.clearedAt.IsZero() {
				s.clearedAt = now
			}
		}
		if each != nil {
			each(now, fs)
		}
		if until(now) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestPrewarmLive runs the real daemon with two proxy services under the
// same recurring load (prewarmLab): a configured capacity of 2
// connections/s a unit of weight (20/s a server of weight 10: 18/s is
// 90%). One whole minute at base 2/s (a rush of 12/s, which the server in
// service carries), then every minute 4 times busier: 8/s, a ramp from 30
// s that needs the standby server from 32 s (18/s), 48/s at the rush.
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
	lab := startPrewarmLab(t, "wrr", 2, 2, 4, firstServed)
	svcs := lab.svcs
	var quiet, alerting string // /metrics before the busier minute, and while alerting
	deadline := lab.rushEnd.Add(60 * time.Second)
	lab.watch(t, deadline, func(now time.Time) bool {
		return now.After(lab.rushEnd) && !svcs[0].clearedAt.IsZero() && !svcs[1].clearedAt.IsZero()
	}, func(now time.Time, fs map[string]api.ServiceForecast) {
		if quiet == "" && now.After(lab.busy.Add(-2*time.Second)) {
			quiet = lab.d.metrics(t)
			if f := fs["pre"]; !f.Ready || f.Step != "2s" || f.Mode != "prewarm" || f.Capacity.Source != "configured" ||
				f.Capacity.CPS != 40 || f.Standby.Waiting != 1 || f.Standby.Called != 0 || f.Capacity.Alert {
				t.Fatalf("before the busier minute: %+v", f)
			}
		}
		if alerting == "" && !svcs[0].alertAt.IsZero() && svcs[0].clearedAt.IsZero() {
			alerting = lab.d.metrics(t)
		}
	})
	cleared := lab.d.metrics(t)
	for _, s := range svcs {
		s.load.end()
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
		if s.active.Load() == 0 || time.Unix(0, s.active.Load()).After(lab.busy) {
			t.Errorf("%s: the server in service served nothing before the busier minute", s.name)
		}
		if first.Before(lab.busy) {
			t.Errorf("%s: the standby server served a connection at %s, before the busier minute", s.name, first.Format("15:04:05.000"))
		}
		if s.alertAt.Before(lab.busy) {
			t.Errorf("%s: the capacity alert raised at %s, in a minute the servers carry", s.name, s.alertAt.Format("15:04:05.000"))
		}
		if s.alertAt.IsZero() || s.clearedAt.IsZero() || !s.alertAt.Before(lab.rushEnd) || !s.clearedAt.After(s.alertAt) {
			t.Errorf("%s: the capacity alert was not raised before the busier rush and cleared after it", s.name)
		}
	}
	pre, cold := svcs[0], svcs[1]
	// The proof: prewarm calls the standby server before the ramp, and
	// it serves before the load needs it; forecast-only waits for the load.
	if first := time.Unix(0, pre.standby.Load()); !pre.calledAt.Before(lab.rampAt) || !first.Before(lab.needAt) {
		t.Errorf("prewarm: called at %s and first served at %s: want before the ramp at %s and the need at %s",
			pre.calledAt.Format("15:04:05.000"), first.Format("15:04:05.000"), lab.rampAt.Format("15:04:05"), lab.needAt.Format("15:04:05"))
	}
	if first := time.Unix(0, cold.standby.Load()); cold.calledAt.Before(lab.rampAt) || first.Before(lab.rampAt) {
		t.Errorf("forecast-only: called at %s and first served at %s: want after the ramp began at %s",
			cold.calledAt.Format("15:04:05.000"), first.Format("15:04:05.000"), lab.rampAt.Format("15:04:05"))
	}
	log := lab.d.log()
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

	for _, s := range svcs {
		s.load.mu.Lock()
		errs := s.load.errs
		s.load.mu.Unlock()
		t.Logf("%s: %d connections answered, %d failed", s.name, s.load.ok.Load(), s.load.failed.Load())
		if s.load.failed.Load() != 0 {
			t.Errorf("%s: %d connections failed: %v", s.name, s.load.failed.Load(), errs[:min(len(errs), 5)])
		}
	}
}

// BenchmarkPrewarmLive measures what pre-warming buys live: prewarmLab
// (wlc, then wrr) with real servers of finite capacity, slow for their first
// seconds. Each real server has 2 workers taking 40 ms an answer (50/s),
// 200 ms (10/s) for the first 10 s after its first connection. The
// configured capacity is 3/s a unit of weight (30/s a server, 27/s its
// 90%); the load one minute at 4/s (a rush of 24/s), then 12/s with a
// ramp to a rush of 72/s: more than one warm server carries, less than
// two. Both services run at the same time under the same load, so a
// hiccup of the machine hits both. Each iteration is one round (a fresh
// daemon, up to 3 minutes): run it with -benchtime 1x -count N. It
// reports the p99 latency (from each connection's due time to its answer,
// a failure counting as the slowest) of the connections due during the
// busier minute's ramp and rush (30 s to 46 s), pre-warmed and cold.
//
// Under wlc (and lc) a called server may take nothing until the rush:
// ties go to the first real server in configuration order, and at 12/s of
// 40 ms answers the server in service mostly has no connection in flight,
// so the called one warms up during the rush instead of before it. wrr
// gives it its share from the call. Hence two sub-benchmarks.
func BenchmarkPrewarmLive(b *testing.B) {
	for _, sched := range []string{"wlc", "wrr"} {
		b.Run(sched, func(b *testing.B) { benchPrewarmLive(b, sched) })
	}
}

func benchPrewarmLive(b *testing.B, scheduler string) {
	for range b.N {
		lab := startPrewarmLab(b, scheduler, 3, 4, 3, func(tb testing.TB, name string, first *atomic.Int64) string {
			return warmingServer(tb, name, first, 2, 40*time.Millisecond, 200*time.Millisecond, 10*time.Second)
		})
		lab.watch(b, lab.rushEnd.Add(30*time.Second), func(now time.Time) bool { return now.After(lab.rushEnd.Add(6 * time.Second)) }, nil)
		for _, s := range lab.svcs {
			s.load.end()
		}
		pre, cold := lab.svcs[0], lab.svcs[1]
		pl, pby := pre.load.window(lab.rampAt, lab.rushEnd)
		cl, cby := cold.load.window(lab.rampAt, lab.rushEnd)
		pp, cp := quantile(pl, 0.99), quantile(cl, 0.99)
		phase := func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.Sub(lab.busy).Round(100 * time.Millisecond).String()
		}
		ms := func(l []time.Duration) string {
			return fmt.Sprintf("p50 %v p90 %v p99 %v max %v", quantile(l, 0.5).Round(time.Millisecond), quantile(l, 0.9).Round(time.Millisecond),
				quantile(l, 0.99).Round(time.Millisecond), quantile(l, 1).Round(time.Millisecond))
		}
		b.Logf("ramp and rush: prewarm %s, %d connections %v, standby called at %s of the busier minute; cold %s, %d connections %v, called at %s; failed %d, %d; load average at the end %s",
			ms(pl), len(pl), pby, phase(pre.calledAt), ms(cl), len(cl), cby, phase(cold.calledAt), pre.load.failed.Load(), cold.load.failed.Load(), loadAverage())
		for _, s := range lab.svcs {
			var buckets []string
			for at := lab.rampAt.Add(-4 * time.Second); at.Before(lab.rushEnd.Add(2 * time.Second)); at = at.Add(2 * time.Second) {
				l, by := s.load.window(at, at.Add(2*time.Second))
				buckets = append(buckets, fmt.Sprintf("%s:%v/%v%v", at.Sub(lab.busy), quantile(l, 0.5).Round(time.Millisecond), quantile(l, 0.99).Round(time.Millisecond), by))
			}
			b.Logf("%s by 2 s (p50/p99 and servers): %s", s.name, strings.Join(buckets, " "))
		}
		b.ReportMetric(float64(pp)/1e6, "p99-prewarm-ms")
		b.ReportMetric(float64(quantile(pl, 0.9))/1e6, "p90-prewarm-ms")
		b.ReportMetric(float64(quantile(cl, 0.9))/1e6, "p90-cold-ms")
		b.ReportMetric(float64(cp)/1e6, "p99-cold-ms")
		if pp > 0 {
			b.ReportMetric(float64(cp)/float64(pp), "cold/prewarm")
		}
	}
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
