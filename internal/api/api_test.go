package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/vrrp"
	"github.com/govs-lb/govs/internal/vrrp/vrrpd"
	"github.com/govs-lb/govs/test/loopback"
)

// fakeDP is a dataplane that serves nothing and can be told to refuse.
type fakeDP struct {
	mu     sync.Mutex
	refuse error
	conns  []director.Connection
}

func (f *fakeDP) Connections(yield func(director.Connection) bool) error {
	f.mu.Lock()
	list := f.conns
	f.mu.Unlock()
	for _, c := range list {
		if !yield(c) {
			return nil
		}
	}
	return nil
}

func (f *fakeDP) Prepare(*director.Snapshot) (director.Transaction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return nil, f.refuse
	}
	return director.NullTransaction{}, nil
}
func (f *fakeDP) Apply(*director.Snapshot) error { return nil }
func (f *fakeDP) Shutdown(context.Context) error { return nil }
func (f *fakeDP) Close() error                   { return nil }

const baseConfig = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    scheduler: wlc
    real_servers:
      - address: 127.0.0.1:9001
        weight: 1
      - address: 127.0.0.1:9002
        weight: 2
  - address: 127.0.0.1:5353
    protocol: udp
    scheduler: rr
    real_servers:
      - address: 127.0.0.1:5301
`

type harness struct {
	t   *testing.T
	d   *director.Director
	dp  *fakeDP
	s   *Server
	url string
	c   *Client
}

func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	dp := &fakeDP{}
	d := director.New(log, dp)
	cfg, err := config.Parse("govs.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Director: d, Log: log, Version: "test", RateInterval: time.Hour})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close(context.Background())
		d.Shutdown(0)
	})
	return &harness{t: t, d: d, dp: dp, s: s, url: ts.URL, c: NewClient(ts.URL, "", ts.Client())}
}

// do sends a request with a raw body and returns the status and body.
func (h *harness) do(method, path, body string) (int, string) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) wantError(method, path, body string, status int, field, msg string) *Error {
	h.t.Helper()
	code, out := h.do(method, path, body)
	if code != status {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, status, out)
	}
	var e Error
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Message == "" {
		h.t.Fatalf("%s %s: error body %q is not {\"error\": ...}", method, path, out)
	}
	if e.Field != field {
		h.t.Errorf("%s %s: field %q, want %q (%s)", method, path, e.Field, field, e.Message)
	}
	if !strings.Contains(e.Message, msg) {
		h.t.Errorf("%s %s: error %q, want it to contain %q", method, path, e.Message, msg)
	}
	return &e
}

func TestListAndGet(t *testing.T) {
	h := newHarness(t, baseConfig)
	ctx := context.Background()
	list, err := h.c.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "web" || list[1].Name != "udp/127.0.0.1:5353" {
		t.Fatalf("services = %+v", list)
	}
	web := list[0]
	if web.Scheduler != "wlc" || web.Forwarding != "proxy" || web.Status.Key != "tcp/127.0.0.1:8080" || len(web.RealServers) != 2 {
		t.Errorf("web = %+v", web)
	}
	if rs := web.RealServers[1]; rs.Address != "127.0.0.1:9002" || rs.Weight != 2 || rs.Status.Weight != 2 || !rs.Status.Up {
		t.Errorf("real server = %+v", rs)
	}
	got, err := h.c.Service(ctx, "udp", "127.0.0.1:5353")
	if err != nil || got.Scheduler != "rr" || got.RealServers[0].Address != "127.0.0.1:5301" {
		t.Errorf("get udp = %+v, %v", got, err)
	}
	// The answer keeps the configuration's key order and defaults.
	_, body := h.do("GET", "/api/v1/services/tcp/127.0.0.1:8080", "")
	if !strings.HasPrefix(body, "{\n  \"name\": \"web\",\n  \"address\": \"127.0.0.1:8080\",\n  \"protocol\": \"tcp\"") ||
		!strings.Contains(body, `"connect_timeout": "5s"`) {
		t.Errorf("service body:\n%s", body)
	}
	h.wantError("GET", "/api/v1/services/tcp/127.0.0.1:9999", "", 404, "", "no such virtual service")
	h.wantError("GET", "/api/v1/services/sctp/127.0.0.1:80", "", 400, "protocol", "invalid protocol")
	h.wantError("GET", "/api/v1/services/tcp/nonsense", "", 400, "address", "invalid virtual service address")
	h.wantError("GET", "/api/v1/nothing", "", 404, "", "no such path")
	e := h.wantError("PATCH", "/api/v1/services", "", 405, "", "not allowed")
	if e.Code != CodeNotFound {
		t.Errorf("405 code = %q", e.Code)
	}
}

func TestCreateService(t *testing.T) {
	h := newHarness(t, baseConfig)
	code, body := h.do("POST", "/api/v1/services", `{"name": "api", "address": "127.0.0.2:80", "scheduler": "rr",
		"real_servers": [{"address": "127.0.0.3:8080", "weight": 3}, {"address": "127.0.0.4"}]}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var svc Service
	if err := json.Unmarshal([]byte(body), &svc); err != nil {
		t.Fatal(err)
	}
	if svc.Name != "api" || svc.Scheduler != "rr" || len(svc.RealServers) != 2 || svc.RealServers[1].Address != "127.0.0.4:80" {
		t.Errorf("created %+v", svc)
	}
	if vs := h.d.Service("tcp/127.0.0.2:80"); vs == nil || len(vs.RealServers()) != 2 {
		t.Fatalf("director does not run the new service")
	}
	e := h.wantError("POST", "/api/v1/services", `{"address": "127.0.0.2:80"}`, 409, "", "already exists")
	if e.Code != CodeServiceExists {
		t.Errorf("code = %q", e.Code)
	}
	// The running configuration file's services are untouched.
	if cfg := h.d.Config(); len(cfg.VirtualServers) != 3 || cfg.VirtualServers[0].Name != "web" {
		t.Errorf("config = %+v", cfg.VirtualServers)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	h := newHarness(t, baseConfig)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field, msg               string
	}{
		{"weight out of range", "POST", "/api/v1/services",
			`{"address": "127.0.0.2:80", "real_servers": [{"address": "127.0.0.3:80"}, {"address": "127.0.0.4:80", "weight": 70000}]}`,
			400, "real_servers[1].weight", "weight 70000 out of range (0..65535)"},
		{"unknown key", "POST", "/api/v1/services", `{"address": "127.0.0.2:80", "schedular": "rr"}`,
			400, "schedular", `unknown key "schedular" (did you mean "scheduler"?)`},
		{"unknown scheduler", "POST", "/api/v1/services", `{"address": "127.0.0.2:80", "scheduler": "nope"}`,
			400, "scheduler", `unknown scheduler "nope"`},
		{"bad address", "POST", "/api/v1/services", `{"address": "127.0.0.2"}`,
			400, "address", "needs a port"},
		{"bad duration", "POST", "/api/v1/services", `{"address": "127.0.0.2:80", "connect_timeout": "5"}`,
			400, "connect_timeout", `duration "5" needs a unit`},
		{"wrong type", "POST", "/api/v1/services", `{"address": "127.0.0.2:80", "real_servers": {"address": "x"}}`,
			400, "real_servers", "expected a list"},
		{"missing address", "POST", "/api/v1/services", `{"scheduler": "rr"}`,
			400, "", "virtual server needs an address"},
		{"duplicate name", "POST", "/api/v1/services", `{"name": "web", "address": "127.0.0.2:80"}`,
			400, "name", `duplicate virtual server name "web" (first used at govs.yaml:3:11)`},
		{"duplicate real server", "POST", "/api/v1/services",
			`{"address": "127.0.0.2:80", "real_servers": [{"address": "127.0.0.3:80"}, {"address": "127.0.0.3"}]}`,
			400, "real_servers[1].address", "duplicate real server 127.0.0.3:80"},
		{"health check type", "POST", "/api/v1/services", `{"address": "127.0.0.2:80", "health_check": {"type": "bogus"}}`,
			400, "health_check.type", "bogus"},
		{"real server health check", "POST", "/api/v1/services",
			`{"address": "127.0.0.2:80", "real_servers": [{"address": "127.0.0.3:80", "health_check": {"type": "http", "rise": -1}}]}`,
			400, "real_servers[0].health_check.rise", "rise"},
		{"not JSON", "POST", "/api/v1/services", `address: 1.2.3.4:80`, 400, "", "not valid JSON"},
		{"not an object", "POST", "/api/v1/services", `[1]`, 400, "", "must be a JSON object"},
		{"real server weight", "POST", "/api/v1/services/tcp/127.0.0.1:8080/servers", `{"address": "127.0.0.9:80", "weight": -1}`,
			400, "weight", "weight -1 out of range"},
		{"real server thresholds", "PATCH", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001",
			`{"upper_threshold": 5, "lower_threshold": 9}`, 400, "lower_threshold", "must be below upper_threshold"},
		{"patch scheduler", "PATCH", "/api/v1/services/tcp/127.0.0.1:8080", `{"scheduler": "nope"}`,
			400, "scheduler", `unknown scheduler "nope"`},
		{"patch identity", "PATCH", "/api/v1/services/tcp/127.0.0.1:8080", `{"address": "127.0.0.1:8081"}`,
			400, "address", "cannot change"},
		{"netmask without persistence", "PATCH", "/api/v1/services/tcp/127.0.0.1:8080", `{"persistence_netmask": "255.255.255.0"}`,
			400, "persistence_netmask", "needs persistence_timeout"},
		{"forwarding param", "POST", "/api/v1/services/tcp/127.0.0.1:8080/servers?forwarding=tun", `{"address": "127.0.0.9:80"}`,
			400, "forwarding", `invalid forwarding "tun"`},
		{"forwarding per service", "POST", "/api/v1/services/tcp/127.0.0.1:8080/servers?forwarding=nat", `{"address": "127.0.0.9:80"}`,
			400, "forwarding", "per virtual service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.d.Config()
			e := h.wantError(tc.method, tc.path, tc.body, tc.status, tc.field, tc.msg)
			if e.Code != CodeInvalid {
				t.Errorf("code = %q", e.Code)
			}
			if h.d.Config() != before {
				t.Errorf("a rejected change changed the configuration")
			}
		})
	}
}

func TestUpdateService(t *testing.T) {
	h := newHarness(t, baseConfig)
	ctx := context.Background()
	svc, err := h.c.PatchService(ctx, "tcp", "127.0.0.1:8080", map[string]any{"scheduler": "rr", "persistence_timeout": "300s"})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Scheduler != "rr" || svc.PersistenceTimeout != "5m0s" || len(svc.RealServers) != 2 || svc.Name != "web" {
		t.Errorf("patched: %+v", svc)
	}
	if st := h.d.Service("tcp/127.0.0.1:8080").Settings(); st.SchedulerName != "rr" {
		t.Errorf("director scheduler = %s", st.SchedulerName)
	}
	svc, err = h.c.PatchService(ctx, "tcp", "127.0.0.1:8080", map[string]any{"persistence_timeout": nil})
	if err != nil || svc.PersistenceTimeout != "" || svc.Scheduler != "rr" {
		t.Errorf("null removes: %+v %v", svc, err)
	}
	// PUT replaces; without real_servers it keeps them.
	code, body := h.do("PUT", "/api/v1/services/tcp/127.0.0.1:8080", `{"name": "www", "scheduler": "lc"}`)
	if code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	svc, _ = h.c.Service(ctx, "tcp", "127.0.0.1:8080")
	if svc.Name != "www" || svc.Scheduler != "lc" || len(svc.RealServers) != 2 {
		t.Errorf("put: %+v", svc)
	}
	code, body = h.do("PUT", "/api/v1/services/tcp/127.0.0.1:8080", `{"real_servers": [{"address": "127.0.0.1:9003"}]}`)
	if code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	svc, _ = h.c.Service(ctx, "tcp", "127.0.0.1:8080")
	if svc.Scheduler != "wlc" || len(svc.RealServers) != 1 || svc.Name != "tcp/127.0.0.1:8080" {
		t.Errorf("put replaces everything: %+v", svc)
	}
	// A GET's answer can be sent back as is.
	_, body = h.do("GET", "/api/v1/services/tcp/127.0.0.1:8080", "")
	if code, out := h.do("PUT", "/api/v1/services/tcp/127.0.0.1:8080", body); code != 200 {
		t.Errorf("put of a get: %d %s", code, out)
	}
	if err := h.c.DeleteService(ctx, "tcp", "127.0.0.1:8080"); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := h.c.DeleteService(ctx, "tcp", "127.0.0.1:8080"); !errors.As(err, &e) || e.Code != CodeNoService || e.Status != 404 {
		t.Errorf("second delete: %v", err)
	}
	if err := h.c.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _ := h.c.Services(ctx); len(list) != 0 {
		t.Errorf("after clear: %+v", list)
	}
}

func TestRealServers(t *testing.T) {
	h := newHarness(t, baseConfig)
	ctx := context.Background()
	rs, err := h.c.CreateRealServer(ctx, "tcp", "127.0.0.1:8080", map[string]any{"address": "127.0.0.1:9003", "weight": 5}, "")
	if err != nil || rs.Address != "127.0.0.1:9003" || rs.Weight != 5 || rs.Status.Weight != 5 {
		t.Fatalf("create: %+v %v", rs, err)
	}
	var e *Error
	_, err = h.c.CreateRealServer(ctx, "tcp", "127.0.0.1:8080", map[string]any{"address": "127.0.0.1:9003"}, "")
	if !errors.As(err, &e) || e.Code != CodeDestExists || e.Status != 409 {
		t.Errorf("duplicate: %v", err)
	}
	_, err = h.c.CreateRealServer(ctx, "tcp", "127.0.0.1:1", map[string]any{"address": "127.0.0.1:9003"}, "")
	if !errors.As(err, &e) || e.Code != CodeNoService {
		t.Errorf("no service: %v", err)
	}
	rs, err = h.c.PatchRealServer(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:9003", map[string]any{"weight": 7, "upper_threshold": 100}, "proxy")
	if err != nil || rs.Weight != 7 || rs.UpperThreshold != 100 {
		t.Errorf("patch: %+v %v", rs, err)
	}
	_, err = h.c.PatchRealServer(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:9999", map[string]any{"weight": 7}, "")
	if !errors.As(err, &e) || e.Code != CodeNoDest || e.Status != 404 {
		t.Errorf("patch missing: %v", err)
	}
	if err := h.c.DeleteRealServer(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:9003"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.DeleteRealServer(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:9003"); !errors.As(err, &e) || e.Code != CodeNoDest {
		t.Errorf("second delete: %v", err)
	}
	code, body := h.do("GET", "/api/v1/services/tcp/127.0.0.1:8080/servers", "")
	if code != 200 || strings.Count(body, `"address"`) != 2 {
		t.Errorf("list: %d %s", code, body)
	}
	// An empty service takes the forwarding method of its first real server.
	if _, err := h.c.CreateService(ctx, map[string]any{"address": "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.c.CreateRealServer(ctx, "tcp", "127.0.0.1:7000", map[string]any{"address": "127.0.0.1:7001"}, "fullnat")
	svc, _ := h.c.Service(ctx, "tcp", "127.0.0.1:7000")
	if err == nil && svc.Forwarding != "fullnat" {
		t.Errorf("forwarding after first -a: %+v", svc)
	}
}

func TestDrain(t *testing.T) {
	h := newHarness(t, baseConfig)
	ctx := context.Background()
	rs, err := h.c.Drain(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:9002", true)
	if err != nil {
		t.Fatal(err)
	}
	if !rs.Status.Drained || rs.Status.Weight != 0 {
		t.Errorf("drained: %+v", rs)
	}
	if d := h.d.Service("tcp/127.0.0.1:8080").RealServers()[1].Dest; d.Weight() != 0 || d.Available() {
		t.Errorf("director still schedules to a drained real server")
	}
	hl, _ := h.c.Health(ctx)
	if len(hl) != 3 || hl[1].Backend != "127.0.0.1:9002" || !hl[1].Drained {
		t.Errorf("health: %+v", hl)
	}
	rs, err = h.c.Drain(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:9002", false)
	if err != nil || rs.Status.Drained || rs.Status.Weight != 2 || rs.Weight != 2 {
		t.Errorf("undrained: %+v %v", rs, err)
	}
	var e *Error
	if _, err := h.c.Drain(ctx, "tcp", "127.0.0.1:8080", "127.0.0.1:1", true); !errors.As(err, &e) || e.Code != CodeNoDest {
		t.Errorf("drain of a missing real server: %v", err)
	}
}

func TestRefusedChangeChangesNothing(t *testing.T) {
	h := newHarness(t, baseConfig)
	before := h.d.Config()
	h.dp.mu.Lock()
	h.dp.refuse = errors.New("listen tcp 127.0.0.2:80: bind: address already in use")
	h.dp.mu.Unlock()
	e := h.wantError("POST", "/api/v1/services", `{"address": "127.0.0.2:80"}`, 409, "", "address already in use")
	if e.Code != CodeRefused {
		t.Errorf("code = %q", e.Code)
	}
	if h.d.Config() != before || h.d.Service("tcp/127.0.0.2:80") != nil {
		t.Errorf("a refused change changed the director")
	}
}

// TestConcurrentChanges sends changes in parallel; every one must be in
// the result.
func TestConcurrentChanges(t *testing.T) {
	h := newHarness(t, baseConfig)
	ctx := context.Background()
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(3)
		go func() {
			defer wg.Done()
			_, err := h.c.CreateRealServer(ctx, "tcp", "127.0.0.1:8080", map[string]any{"address": fmt.Sprintf("127.0.1.%d:80", i), "weight": i}, "")
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := h.c.CreateService(ctx, map[string]any{"address": fmt.Sprintf("127.0.2.%d:80", i)})
			errs <- err
		}()
		go func() {
			defer wg.Done()
			// Merge patches on the same service, each adding its own key's
			// worth: alternate the two real servers' weights.
			_, err := h.c.PatchRealServer(ctx, "udp", "127.0.0.1:5353", "127.0.0.1:5301", map[string]any{"weight": 100 + i}, "")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	web, err := h.c.Service(ctx, "tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if len(web.RealServers) != 2+n {
		t.Errorf("web has %d real servers, want %d: a change was lost", len(web.RealServers), 2+n)
	}
	list, _ := h.c.Services(ctx)
	if len(list) != 2+n {
		t.Errorf("%d services, want %d: a change was lost", len(list), 2+n)
	}
	if got := len(h.d.Service("tcp/127.0.0.1:8080").RealServers()); got != 2+n {
		t.Errorf("director runs %d real servers", got)
	}
}

func TestVRRPAndVersion(t *testing.T) {
	h := newHarness(t, baseConfig)
	v, err := h.c.VRRP(context.Background())
	if err != nil || len(v.Instances) != 0 || v.Status != "vrrp not configured" {
		t.Errorf("vrrp: %+v %v", v, err)
	}
	_, body := h.do("GET", "/api/v1/vrrp", "")
	if !strings.Contains(body, `"instances": []`) {
		t.Errorf("vrrp body %s", body)
	}
	ver, err := h.c.Version(context.Background())
	if err != nil || ver.Version != "test" || ver.API != "v1" {
		t.Errorf("version: %+v %v", ver, err)
	}
}

func TestStatsZeroAndRates(t *testing.T) {
	h := newHarness(t, baseConfig)
	ctx := context.Background()
	vs := h.d.Service("tcp/127.0.0.1:8080")
	rs := vs.RealServers()[0]
	t0 := time.Unix(1000, 0)
	h.s.stats.sample(h.d, t0)
	vs.Stats.Conns.Add(40)
	vs.Stats.InBytes.Add(4000)
	rs.Stats.Conns.Add(40)
	h.s.stats.sample(h.d, t0.Add(2*time.Second))
	rep, err := h.c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	web := rep.Services[0]
	if web.Stats.Connections != 40 || web.Stats.InBytes != 4000 || web.RealServers[0].Stats.Connections != 40 {
		t.Errorf("stats: %+v", web)
	}
	// 20/s over the interval moves the average a quarter of the way.
	if web.Rates.CPS != 5 || web.Rates.InBPS != 500 {
		t.Errorf("rates: %+v", web.Rates)
	}
	if err := h.c.Zero(ctx, "tcp", "127.0.0.1:8080"); err != nil {
		t.Fatal(err)
	}
	vs.Stats.Conns.Add(2)
	svc, _ := h.c.Service(ctx, "tcp", "127.0.0.1:8080")
	if svc.Status.Stats.Connections != 2 || svc.RealServers[0].Status.Stats.Connections != 0 {
		t.Errorf("after zero: %+v", svc.Status.Stats)
	}
	if vs.Stats.Conns.Load() != 42 {
		t.Errorf("zero changed the director's counters")
	}
	var e *Error
	if err := h.c.Zero(ctx, "tcp", "127.0.0.1:1"); !errors.As(err, &e) || e.Code != CodeNoService {
		t.Errorf("zero of a missing service: %v", err)
	}
	if err := h.c.Zero(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, baseConfig)
	vs := h.d.Service("tcp/127.0.0.1:8080")
	vs.Stats.Conns.Add(7)
	vs.Stats.InBytes.Add(100)
	vs.Stats.OutBytes.Add(900)
	vs.RealServers()[1].Stats.Conns.Add(7)
	scrape := func() string {
		code, body := h.do("GET", "/metrics", "")
		if code != 200 {
			t.Fatalf("metrics: %d", code)
		}
		return body
	}
	body := scrape()
	for _, want := range []string{
		`govs_service_connections_total{service="web"} 7`,
		`govs_service_bytes_total{direction="in",service="web"} 100`,
		`govs_service_bytes_total{direction="out",service="web"} 900`,
		`govs_backend_connections_total{backend="127.0.0.1:9002",service="web"} 7`,
		`govs_backend_connections_active{backend="127.0.0.1:9001",service="web"} 0`,
		`govs_backend_connections_inactive{backend="127.0.0.1:9001",service="web"} 0`,
		`govs_backend_weight{backend="127.0.0.1:9002",service="web"} 2`,
		`govs_backend_up{backend="127.0.0.1:5301",service="udp/127.0.0.1:5353"} 1`,
		"# TYPE govs_service_connections_total counter",
		"# TYPE govs_backend_weight gauge",
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// A change (here through the API) keeps the counters of what it keeps.
	if _, err := h.c.PatchService(context.Background(), "tcp", "127.0.0.1:8080", map[string]any{"scheduler": "rr"}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Parse("govs.yaml", []byte(strings.Replace(baseConfig, "weight: 2", "weight: 4", 1)))
	if err := h.d.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.c.Zero(context.Background(), "", ""); err != nil {
		t.Fatal(err)
	}
	body = scrape()
	for _, want := range []string{
		`govs_service_connections_total{service="web"} 7`,
		`govs_backend_connections_total{backend="127.0.0.1:9002",service="web"} 7`,
		`govs_backend_weight{backend="127.0.0.1:9002",service="web"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("after reload and zero, metrics lack %q", want)
		}
	}
}

func TestTCPListenerNeedsToken(t *testing.T) {
	h := newHarness(t, baseConfig)
	if _, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("without a token file: %v", err)
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0", TokenFile: empty}); err == nil {
		t.Fatal("an empty token file was accepted")
	}
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	addr, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0", TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/api/v1/services", "", 401},
		{"/api/v1/services", "Bearer wrong", 401},
		{"/api/v1/services", "Bearer s3cret", 200},
		{"/metrics", "", 401},
		{"/metrics", "Bearer s3cret", 200},
		{"/api/v1/services", "Basic czNjcmV0", 401},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s with %q: %d, want %d", tc.path, tc.auth, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && !strings.Contains(string(b), `"error"`) {
			t.Errorf("401 body %q", b)
		}
	}
	c := NewClient(base, "s3cret", nil)
	if list, err := c.Services(context.Background()); err != nil || len(list) != 2 {
		t.Errorf("client with token: %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	h := newHarness(t, baseConfig)
	path := filepath.Join(t.TempDir(), "run", "govs.sock")
	if err := h.s.ServeUnix(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
	c := NewUnixClient(path)
	if list, err := c.Services(context.Background()); err != nil || len(list) != 2 {
		t.Errorf("over the socket: %v", err)
	}
	// A second server refuses a socket that is in use.
	s2 := New(Options{Director: h.d})
	defer s2.Close(context.Background())
	if err := s2.ServeUnix(path); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second server: %v", err)
	}
	h.s.Close(context.Background())
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	// A path that is not a socket is never removed.
	file := filepath.Join(t.TempDir(), "govs.yaml")
	os.WriteFile(file, []byte("keep me"), 0o600)
	s3 := New(Options{Director: h.d})
	defer s3.Close(context.Background())
	if err := s3.ServeUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("serving on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("the file was replaced")
	}
}

// fakeVRRP reports one master instance.
type fakeVRRP struct{}

func (fakeVRRP) Nodes() []vrrpd.Node {
	return []vrrpd.Node{{Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, State: vrrp.StateMaster,
		Priority: 150, BasePriority: 150, MasterPriority: 150, Master: netip.MustParseAddr("192.0.2.1"),
		VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/32")}}}
}

func TestVRRPState(t *testing.T) {
	h := newHarness(t, baseConfig)
	h.s.SetVRRP(fakeVRRP{})
	v, err := h.c.VRRP(context.Background())
	if err != nil || v.Status != "" || len(v.Instances) != 1 {
		t.Fatalf("vrrp: %+v %v", v, err)
	}
	in := v.Instances[0]
	if in.Name != "VI_1" || in.State != "MASTER" || in.VRID != 51 || in.Master != "192.0.2.1" || in.VIPs[0] != "192.0.2.100/32" {
		t.Errorf("instance: %+v", in)
	}
	_, body := h.do("GET", "/metrics", "")
	for _, want := range []string{
		`govs_vrrp_state{instance="VI_1",interface="eth0",vrid="51"} 2`,
		`govs_vrrp_priority{instance="VI_1",interface="eth0",vrid="51"} 150`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestHealthState runs a real TCP health check against a listener on
// loopback and one against a closed port.
func TestHealthState(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closedAddr := loopback.Addr(t, "tcp") // not a port the kernel hands out meanwhile
	h := newHarness(t, fmt.Sprintf(`
virtual_servers:
  - name: checked
    address: 127.0.0.1:8080
    health_check: {type: tcp, interval: 50ms, rise: 1, fall: 1}
    real_servers:
      - address: %s
      - address: %s
`, ln.Addr(), closedAddr))
	ctx := context.Background()
	var hl []BackendHealth
	deadline := time.Now().Add(10 * time.Second)
	for {
		hl, err = h.c.Health(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hl) == 2 && hl[0].Last != nil && hl[1].Last != nil && hl[0].Up && !hl[1].Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never settled: %+v", hl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hl[0].State != "up" || !hl[0].Checked || hl[0].Check != "tcp" || !hl[0].Last.OK {
		t.Errorf("up server: %+v", hl[0])
	}
	if hl[1].State != "down" || hl[1].Last.OK || hl[1].InService {
		t.Errorf("down server: %+v", hl[1])
	}
	_, body := h.do("GET", "/metrics", "")
	for _, want := range []string{
		fmt.Sprintf(`govs_backend_up{backend="%s",service="checked"} 1`, ln.Addr()),
		fmt.Sprintf(`govs_backend_up{backend="%s",service="checked"} 0`, closedAddr),
		fmt.Sprintf(`govs_healthcheck_duration_seconds{backend="%s",check="tcp",service="checked"}`, ln.Addr()),
		fmt.Sprintf(`govs_healthcheck_success{backend="%s",check="tcp",service="checked"} 0`, closedAddr),
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestConnections(t *testing.T) {
	h := newHarness(t, baseConfig)
	ap := netip.MustParseAddrPort
	h.dp.mu.Lock()
	h.dp.conns = []director.Connection{
		{Service: "tcp/127.0.0.1:8080", Protocol: config.TCP, State: "ESTABLISHED", Expires: 899500 * time.Millisecond,
			Client: ap("192.0.2.1:40000"), Virtual: ap("127.0.0.1:8080"), RealServer: ap("127.0.0.1:9002"), InBytes: 10, OutBytes: 20},
		{Service: "udp/127.0.0.1:5353", Protocol: config.UDP, State: "UDP", Expires: 30 * time.Second,
			Client: ap("[2001:db8::1]:5000"), Virtual: ap("127.0.0.1:5353"), RealServer: ap("127.0.0.1:5301"), InPackets: 1},
	}
	h.dp.mu.Unlock()
	got, err := h.c.Connections(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Connection{
		{Service: "tcp/127.0.0.1:8080", Protocol: "tcp", State: "ESTABLISHED", ExpiresSeconds: 899, Client: "192.0.2.1:40000",
			Virtual: "127.0.0.1:8080", RealServer: "127.0.0.1:9002", InBytes: 10, OutBytes: 20},
		{Service: "udp/127.0.0.1:5353", Protocol: "udp", State: "UDP", ExpiresSeconds: 30, Client: "[2001:db8::1]:5000",
			Virtual: "127.0.0.1:5353", RealServer: "127.0.0.1:5301", InPackets: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("connections = %+v\nwant %+v", got, want)
	}
	if code, body := h.do("GET", "/api/v1/connections?service=udp/127.0.0.1:5353", ""); code != 200 ||
		strings.Contains(body, "tcp/") || !strings.Contains(body, `"state": "UDP"`) {
		t.Errorf("one service: %d %s", code, body)
	}
	if code, body := h.do("GET", "/api/v1/connections?limit=1", ""); code != 200 || strings.Count(body, `"service"`) != 1 {
		t.Errorf("limit=1: %d %s", code, body)
	}
	h.wantError("GET", "/api/v1/connections?limit=-1", "", 400, "limit", "not a count")
	h.wantError("GET", "/api/v1/connections?service=tcp/127.0.0.1:1", "", 404, "service", "no virtual service")
}
