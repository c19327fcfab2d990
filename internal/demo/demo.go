// Package demo shows govs working with no setup and no root: real servers of
// different speeds on loopback, a director in front of them, a light bounded
// load, and a live per-backend summary.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward/proxy"
)

// Options configure the demo.
type Options struct {
	Listen    string        // the VIP; a free port is used if it is taken
	Scheduler string        // IPVS scheduler name
	Rate      int           // requests per second
	Duration  time.Duration // 0: until ctx ends
	Interval  time.Duration // summary period
	Live      bool          // redraw the summary in place (a terminal)
	Dashboard string        // the dashboard's address; a free port is used if it is taken
	Log       *slog.Logger
}

// speed is a real server's simulated service time.
type speed struct {
	name string
	mean time.Duration
}

var speeds = []speed{{"fast", 10 * time.Millisecond}, {"medium", 30 * time.Millisecond}, {"slow", 90 * time.Millisecond}}

type realServer struct {
	speed
	addr string
	srv  *http.Server
	lat  latencies
}

// latencies keeps recent request latencies for percentiles.
type latencies struct {
	mu  sync.Mutex
	buf []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.buf = append(l.buf, d)
	l.mu.Unlock()
}

// take returns and clears the latencies seen since the last call.
func (l *latencies) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.buf
	l.buf = nil
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Run runs the demo until ctx ends or the duration passes, writing the
// summary to w.
func Run(ctx context.Context, w io.Writer, o Options) error {
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	reals, err := startRealServers()
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range reals {
			r.srv.Close()
		}
	}()
	vip, err := pickVIP(o.Listen)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "grace_period: 2s\nvirtual_servers:\n  - name: demo\n    address: %s\n    scheduler: %s\n    real_servers:\n", vip, o.Scheduler)
	for _, r := range reals {
		fmt.Fprintf(&b, "      - name: %s\n        address: %s\n", r.name, r.addr)
	}
	cfg, err := config.Parse("demo", []byte(b.String()))
	if err != nil {
		return err
	}
	d := director.New(o.Log, proxy.New(o.Log))
	if err := d.Apply(cfg); err != nil {
		return err
	}
	defer d.Shutdown(2 * time.Second)
	vs := d.Services()[0]
	dash, stopDash, err := serveDashboard(d, o)
	if err != nil {
		return err
	}
	defer stopDash()

	fmt.Fprintf(w, "govs demo: virtual service http://%s/ (%s over %d real servers of different speeds)\n", vip, o.Scheduler, len(reals))
	fmt.Fprintf(w, "dashboard: http://%s/\n", dash)
	fmt.Fprintf(w, "try it:    curl -i http://%s/\n", vip)
	fmt.Fprintf(w, "load:      %d requests/s, one new connection each; Ctrl-C stops\n\n", o.Rate)

	var failed atomic.Int64
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		generateLoad(ctx, vip, o.Rate, reals, &failed)
	}()

	start := time.Now()
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var lines int
	for {
		select {
		case <-ctx.Done():
			<-loadDone
			fmt.Fprintln(w)
			fmt.Fprint(w, summary(vs, reals, time.Since(start), failed.Load(), o))
			return nil
		case <-tick.C:
			s := summary(vs, reals, time.Since(start), failed.Load(), o)
			if o.Live && lines > 0 {
				fmt.Fprintf(w, "\x1b[%dA\x1b[J", lines) // redraw in place
			}
			fmt.Fprint(w, s)
			lines = strings.Count(s, "\n")
		}
	}
}

func startRealServers() ([]*realServer, error) {
	var out []*realServer
	for _, sp := range speeds {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		r := &realServer{speed: sp, addr: ln.Addr().String()}
		mean := sp.mean
		r.srv = &http.Server{
			Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				// Service time around the mean, as a real server's varies.
				time.Sleep(time.Duration(float64(mean) * (0.5 + rand.Float64())))
				rw.Header().Set("X-Real-Server", r.addr)
				fmt.Fprintf(rw, "served by %s (%s)\n", r.addr, r.name)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go r.srv.Serve(ln)
		out = append(out, r)
	}
	return out, nil
}

// serveDashboard serves the dashboard and the API it reads on loopback.
// There is no token in a demo, so that listener is read-only: nobody else
// on the machine can change the demo director through it.
func serveDashboard(d *director.Director, o Options) (addr string, stop func(), err error) {
	if o.Dashboard == "" {
		o.Dashboard = "127.0.0.1:0"
	}
	addr, err = pickVIP(o.Dashboard)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := api.New(api.Options{Director: d, Log: o.Log, Version: "demo"})
	h := srv.Handler()
	hs := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(rw, "the demo's dashboard listener is read-only", http.StatusMethodNotAllowed)
				return
			}
			h.ServeHTTP(rw, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go hs.Serve(ln)
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		srv.Close(ctx)
	}, nil
}

// pickVIP returns addr if it is free, otherwise a free loopback port.
func pickVIP(addr string) (string, error) {
	if ln, err := net.Listen("tcp", addr); err == nil {
		addr = ln.Addr().String() // a port of 0 becomes a real one
		ln.Close()
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// generateLoad sends rate requests per second, each on a new connection so
// that each is a scheduling decision, with at most 64 in flight.
func generateLoad(ctx context.Context, vip string, rate int, reals []*realServer, failed *atomic.Int64) {
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
	byAddr := map[string]*realServer{}
	for _, r := range reals {
		byAddr[r.addr] = r
	}
	slots := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	every := time.Second / time.Duration(max(rate, 1))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			failed.Add(1) // the director could not keep up: count it
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+vip+"/", nil)
			resp, err := client.Do(req)
			if err != nil {
				if !errors.Is(ctx.Err(), context.Canceled) && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					failed.Add(1)
				}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if r := byAddr[resp.Header.Get("X-Real-Server")]; r != nil {
				r.lat.add(time.Since(t0))
			}
		}()
	}
}

func summary(vs *director.VirtualService, reals []*realServer, elapsed time.Duration, failed int64, o Options) string {
	var b strings.Builder
	st := vs.Stats.Snapshot()
	fmt.Fprintf(&b, "%-8s %6.0fs  connections %-8d failed %-5d bytes in %-10d out %d\n",
		"elapsed", elapsed.Seconds(), st.Conns, failed, st.InBytes, st.OutBytes)
	fmt.Fprintf(&b, "%-21s %-7s %6s %10s %9s %8s %6s %9s %9s\n",
		"RemoteAddress:Port", "Speed", "Weight", "ActiveConn", "InActConn", "Conns", "Share", "p50", "p99")
	byAddr := map[string]*director.RealServer{}
	for _, rs := range vs.RealServers() {
		byAddr[rs.Addr.String()] = rs
	}
	for _, r := range reals {
		rs := byAddr[r.addr]
		if rs == nil {
			continue
		}
		lat := r.lat.take()
		slices.Sort(lat)
		conns := rs.Stats.Conns.Load()
		share := 0.0
		if st.Conns > 0 {
			share = 100 * float64(conns) / float64(st.Conns)
		}
		p50, p99 := "-", "-" // no request finished since the last summary
		if len(lat) > 0 {
			p50 = percentile(lat, 0.5).Round(100 * time.Microsecond).String()
			p99 = percentile(lat, 0.99).Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(&b, "%-21s %-7s %6d %10d %9d %8d %5.1f%% %9s %9s\n",
			r.addr, r.name, rs.Dest.Weight(), rs.Dest.ActiveConns(), rs.Dest.InactiveConns(), conns, share, p50, p99)
	}
	return b.String()
}
