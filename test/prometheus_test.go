package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/test/netns"
)

// TestPrometheusEndToEnd proves the monitoring of docs/monitoring.md with
// the real thing. The VRRP lab (vrrp_helpers_test.go) holds two directors;
// r1 (master) runs a TCP proxy service (two real servers, quorum 2, a sorry
// server, health checks) and a UDP proxy service, with the real servers and
// a light client load on r1's loopback, and a kernel nat service on the
// VRRP VIP (two real servers in namespaces routed through r1, quorum 1,
// health checks) that the lab's client loads over the segment; r2 is its
// VRRP backup. Both serve the API on TCP with a bearer token file, and
// Debian's prometheus, in r1's namespace, scrapes them every second with
// the shipped rules (their for: shortened). Through Prometheus's HTTP API
// the test checks that every query of every Grafana panel (variables
// substituted), every variable and every recording rule returns data; that
// the nat service has its series (connections, bytes, backends up and
// weighted, quorum); that killing a real server of each service makes
// GovsRealServerDown fire for both and GovsServiceQuorumLost for the proxy
// service only, and bringing them back clears them; that a rejected reload
// shows; and that the pair never looked split-brained.
//
// With GOVS_PROMETHEUS_SCREENSHOT=FILE.png it holds each phase longer and
// saves headless Chromium's view of Prometheus's graph page there.
func TestPrometheusEndToEnd(t *testing.T) {
	prom := requireTool(t, "prometheus", "prometheus")
	netns.Require(t)
	shot := os.Getenv("GOVS_PROMETHEUS_SCREENSHOT")
	hold := time.Duration(0)
	if shot != "" {
		hold = 40 * time.Second
	}

	l := newVRRPLab(t, false)
	r1, r2 := l.routers[0], l.routers[1]
	dir := l.dir
	token := filepath.Join(dir, "api.token")
	if err := os.WriteFile(token, []byte("prom-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Real servers and the sorry server on r1's loopback.
	startNSLineServer(t, r1.ns, "127.0.0.1:9001", "a")
	b := startNSLineServer(t, r1.ns, "127.0.0.1:9002", "b")
	startNSLineServer(t, r1.ns, "127.0.0.1:9009", "sorry")
	startNSUDPEcho(t, r1.ns, "127.0.0.1:5301")

	// The nat service's real servers: each in its namespace on its own
	// link to r1, their gateway (LVS-NAT), as netns.NewLVS builds them.
	if rep := nft.ProbeKernel(r1.ns.FD()); rep.Err() != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("kernel dataplane not available here: %v", rep.Err())
		}
		t.Fatalf("CI: kernel dataplane not available: %v", rep.Err())
	}
	r1.ns.Sysctl("net.ipv4.ip_forward", "1")
	r1.ns.Sysctl("net.netfilter.nf_conntrack_acct", "1")
	var natReals []*nsLineServer
	for i := 1; i <= 2; i++ {
		rs := netns.New(t, fmt.Sprintf("prs%d", i))
		netns.Link(r1.ns, fmt.Sprintf("rs%d", i), fmt.Sprintf("10.89.%d.1/24", i), rs, "eth0", fmt.Sprintf("10.89.%d.2/24", i))
		rs.IP("route", "add", "default", "via", fmt.Sprintf("10.89.%d.1", i))
		natReals = append(natReals, startNSLineServer(t, rs, fmt.Sprintf("10.89.%d.2:80", i), fmt.Sprintf("n%d", i)))
	}
	natVIP := netip.AddrPortFrom(l.vip, 80).String()

	// advert_int 1s: the backup declares the master down after about 3.6 s
	// without adverts, not 0.96 s, which a stall of two loaded cores could
	// reach; one scrape of two masters would show as a pending split-brain
	// alert, which the test forbids.
	vrrp := func(prio int, state string) string {
		return fmt.Sprintf(`vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    version: 3
    priority: %d
    advert_int: 1s
    state: %s
    virtual_ipaddresses: [%s]
`, prio, state, l.vipCIDR())
	}
	// A killed real server refuses at once, so its checks fail fast; the
	// checks' 1s timeout and fall 2 keep a slow answer on a loaded machine
	// from taking a live one out (and firing an alert the test forbids).
	r1Config := fmt.Sprintf(`api: {socket: %s, http: "127.0.0.1:8081", token_file: %s}
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    scheduler: rr
    quorum: 2
    sorry_server: 127.0.0.1:9009
    health_check: {type: tcp, interval: 200ms, timeout: 1s, rise: 1, fall: 2}
    real_servers:
      - address: 127.0.0.1:9001
      - address: 127.0.0.1:9002
  - name: dns
    address: 127.0.0.1:5353
    protocol: udp
    scheduler: rr
    max_flows: 64
    idle_timeout: 2s
    real_servers:
      - address: 127.0.0.1:5301
  - name: nat
    address: %s
    forwarding: nat
    scheduler: rr
    quorum: 1
    health_check: {type: tcp, interval: 200ms, timeout: 1s, rise: 1, fall: 2}
    real_servers:
      - address: 10.89.1.2:80
      - address: 10.89.2.2:80
%s`, filepath.Join(dir, "r1.sock"), token, natVIP, vrrp(150, "MASTER"))
	r1File := filepath.Join(dir, "r1-prom.yaml")
	writeFile(t, r1File, r1Config)
	g1 := startGovsIn(t, r1.ns, r1File, filepath.Join(dir, "r1.sock"))
	writeFile(t, filepath.Join(dir, "r2-prom.yaml"), fmt.Sprintf(`api: {socket: %s, http: "%s:8081", token_file: %s}
virtual_servers: []
%s`, filepath.Join(dir, "r2.sock"), r2.addr, token, vrrp(100, "BACKUP")))
	startGovsIn(t, r2.ns, filepath.Join(dir, "r2-prom.yaml"), filepath.Join(dir, "r2.sock"))

	// Prometheus with a copy of the rules whose for: are short enough for a
	// test; everything else (expressions, windows, labels) as shipped.
	rules, err := os.ReadFile("../docs/prometheus/govs-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules = regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("$1 2s"))
	writeFile(t, filepath.Join(dir, "rules.yaml"), string(rules))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: govs
    authorization:
      credentials_file: %s
    static_configs:
      - targets: ['127.0.0.1:8081', '%s:8081']
`, filepath.Join(dir, "rules.yaml"), token, r2.addr))
	pcmd := exec.Command("ip", "netns", "exec", r1.ns.Name, prom,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address=127.0.0.1:9090", "--log.level=warn")
	runDaemon(t, "prometheus", pcmd, 5*time.Second)
	api := &promAPI{t: t, base: "http://127.0.0.1:9090", c: &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: dialIn(r1.ns)}}}
	waitUntil(t, "prometheus to be ready", 30*time.Second, func() bool { return api.ready() })

	// A light load: a TCP request and a UDP datagram every 20ms to the
	// proxy services, and a TCP request every 20ms from the client to the
	// nat service on the VIP (once r1 holds it).
	l.waitMaster(r1, 30*time.Second)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	var served, failed, natServed, natFailed atomic.Int64
	wg.Add(3)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := askIn(l.client, natVIP); err != nil {
				natFailed.Add(1)
			} else {
				natServed.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := askIn(r1.ns, "127.0.0.1:8080"); err != nil {
				failed.Add(1)
			} else {
				served.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		udpLoad(ctx, t, r1.ns, "127.0.0.1:5353")
	}()

	waitUntil(t, "both directors scraped", 30*time.Second, func() bool {
		return len(api.query(`up{job="govs"} == 1`)) == 2
	})
	time.Sleep(hold)

	// Every query of the dashboard answers, and so does every recording
	// rule. Rates need two samples in their window: poll until all answer.
	queries := dashboardQueries(t)
	for _, r := range regexp.MustCompile(`(?m)^\s+- record: (\S+)$`).FindAllSubmatch(rules, -1) {
		queries = append(queries, string(r[1]))
	}
	var missing []string
	waitUntil(t, "every dashboard query and recording rule to return data", 45*time.Second, func() bool {
		missing = missing[:0]
		for _, q := range queries {
			if !hasNumber(api.query(q)) {
				missing = append(missing, q)
			}
		}
		return len(missing) == 0
	}, func() { t.Logf("queries without data: %q", missing) })
	for _, v := range []string{"job", "instance", "service"} {
		if vals := api.labelValues(v, "govs_service_connections_total"); len(vals) == 0 {
			t.Errorf("dashboard variable %s: no values", v)
		}
	}
	t.Logf("%d dashboard queries and recording rules return data", len(queries))

	// The kernel nat service has its series: traffic counted from
	// conntrack (both real servers took connections), its real servers up
	// and weighted, its quorum held.
	natSeries := []string{
		`govs_service_connections_total{service="nat"} > 0`,
		`govs_service_bytes_total{service="nat",direction="in"} > 0`,
		`govs_service_bytes_total{service="nat",direction="out"} > 0`,
		`count(govs_backend_connections_total{service="nat"} > 0) == 2`,
		`count(govs_backend_up{service="nat"} == 1) == 2`,
		`count(govs_backend_weight{service="nat"} > 0) == 2`,
		`govs_service_quorum_up{service="nat"} == 1`,
		`govs:service_connections:rate5m{service="nat"} > 0`,
	}
	waitUntil(t, "the nat service's series", 45*time.Second, func() bool {
		missing = missing[:0]
		for _, q := range natSeries {
			if !hasNumber(api.query(q)) {
				missing = append(missing, q)
			}
		}
		return len(missing) == 0
	}, func() {
		t.Logf("nat queries without data: %q (served %d, failed %d)", missing, natServed.Load(), natFailed.Load())
	})

	// A real server of each service dies: both down, the proxy service's
	// quorum lost and its sorry server on; the nat service keeps its
	// quorum (1) and serves from the other.
	b.stop()
	natReals[1].stop()
	killed := time.Now()
	type alertKey struct{ name, service, backend string }
	firing := map[alertKey]bool{}
	wantFiring := []alertKey{
		{"GovsRealServerDown", "web", "127.0.0.1:9002"},
		{"GovsRealServerDown", "nat", "10.89.2.2:80"},
		{"GovsServiceQuorumLost", "web", ""},
	}
	waitUntil(t, "GovsRealServerDown (web, nat) and GovsServiceQuorumLost (web) to fire", 60*time.Second, func() bool {
		clear(firing)
		for _, a := range api.alerts() {
			if a.State == "firing" {
				firing[alertKey{a.Labels["alertname"], a.Labels["service"], a.Labels["backend"]}] = true
			}
		}
		for _, k := range wantFiring {
			if !firing[k] {
				return false
			}
		}
		return true
	}, func() { t.Logf("alerts firing: %v", firing) })
	t.Logf("alerts firing %v after the kills: %v", time.Since(killed).Round(time.Second), firing)
	for k := range firing {
		if (k.name == "GovsRealServerDown" || k.name == "GovsServiceQuorumLost") && !slices.Contains(wantFiring, k) {
			t.Errorf("%s fires for %s %s, want only %v", k.name, k.service, k.backend, wantFiring)
		}
	}
	if !hasNumber(api.query(`govs_service_sorry_active{service="web"} == 1`)) {
		t.Error("the sorry server is not active while the quorum is lost")
	}
	if !hasNumber(api.query(`govs_service_quorum_up{service="nat"} == 1`)) {
		t.Error("the nat service lost its quorum (1) with one of its two real servers down")
	}
	if !hasNumber(api.query(`govs_backend_up{service="nat",backend="10.89.1.2:80"} == 1`)) {
		t.Error("the nat service's live real server is not up")
	}
	// New nat connections go on to the live real server.
	before := natServed.Load()
	waitUntil(t, "nat connections served with a real server down", 30*time.Second, func() bool {
		return natServed.Load() >= before+10
	})
	time.Sleep(hold)

	// They come back: the alerts clear.
	b.start()
	natReals[1].start()
	waitUntil(t, "the alerts to clear", 60*time.Second, func() bool {
		for _, a := range api.alerts() {
			if n := a.Labels["alertname"]; n == "GovsRealServerDown" || n == "GovsServiceQuorumLost" {
				return false
			}
		}
		return true
	})
	time.Sleep(hold)

	// A rejected reload shows, and a good one clears it.
	writeFile(t, r1File, r1Config+"bogus_key: 1\n")
	g1.signal(t, syscall.SIGHUP)
	waitUntil(t, "the rejected reload to show", 30*time.Second, func() bool {
		return hasNumber(api.query(`govs_config_last_reload_successful{instance="127.0.0.1:8081"} == 0`))
	})
	writeFile(t, r1File, r1Config)
	g1.signal(t, syscall.SIGHUP)
	waitUntil(t, "the good reload to show", 30*time.Second, func() bool {
		return hasNumber(api.query(`govs_config_last_reload_successful{instance="127.0.0.1:8081"} == 1 and on (instance) govs_config_reloads_total{result="success"} == 1`))
	})

	// One master all along.
	if r := api.query(`max_over_time(ALERTS{alertname="GovsVRRPSplitBrain"}[10m])`); len(r) != 0 {
		t.Errorf("GovsVRRPSplitBrain fired: %v", r)
	}
	if r := api.query(`count(govs_vrrp_state == 2)`); !hasNumber(r) || r[0].value() != 1 {
		t.Errorf("masters: %v, want 1", r)
	}
	if shot != "" {
		screenshot(t, r1.ns, shot)
	}
	t.Logf("client requests: proxy %d served, %d failed; nat %d served, %d failed "+
		"(a kill fails what is scheduled to the killed server before its health check takes it out)",
		served.Load(), failed.Load(), natServed.Load(), natFailed.Load())
}

// requireTool finds a binary, skipping outside CI when it is missing.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("needs %s (apt-get install %s)", name, pkg)
		}
		t.Fatalf("CI: %s is missing (apt-get install %s)", name, pkg)
	}
	return p
}

// startGovsIn runs govs run -c file in the namespace.
func startGovsIn(t *testing.T, ns *netns.NS, file, sock string) *daemon {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, govsBin, "--socket", sock, "run", "-c", file)
	d := runDaemon(t, "govs in "+ns.Name, cmd, 10*time.Second)
	waitUntil(t, "govs to start in "+ns.Name, 20*time.Second, func() bool {
		select {
		case <-d.done:
			t.Fatalf("govs in %s exited: %v\n%s", ns.Name, d.err, d.log())
		default:
		}
		return strings.Contains(d.log(), "govs running")
	})
	return d
}

// waitUntil polls cond every 100ms until it holds, failing the test after
// within (after running the optional explain).
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool, explain ...func()) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range explain {
				f()
			}
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dialIn dials from inside the namespace (the socket lives there).
func dialIn(ns *netns.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// askIn sends a line to a line server (through govs) in the namespace.
func askIn(ns *netns.NS, addr string) error {
	c, err := dialIn(ns)(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "hi\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasSuffix(line, " hi\n") {
		return fmt.Errorf("bad answer %q", line)
	}
	return nil
}

// nsLineServer is a line server (loopback.LineServer's protocol) in a
// namespace that can be stopped and started again on the same address.
type nsLineServer struct {
	t          *testing.T
	ns         *netns.NS
	addr, name string
	mu         sync.Mutex
	ln         net.Listener
}

func startNSLineServer(t *testing.T, ns *netns.NS, addr, name string) *nsLineServer {
	s := &nsLineServer{t: t, ns: ns, addr: addr, name: name}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *nsLineServer) start() {
	s.t.Helper()
	var ln net.Listener
	if err := s.ns.Do(func() (err error) { ln, err = net.Listen("tcp", s.addr); return err }); err != nil {
		s.t.Fatalf("real server %s: %v", s.name, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s %s", s.name, line)
				}
			}()
		}
	}()
}

// stop closes the listener: new connections and health checks are refused.
func (s *nsLineServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// startNSUDPEcho serves a UDP echo in the namespace until the test ends.
func startNSUDPEcho(t *testing.T, ns *netns.NS, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatalf("udp real server: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpLoad sends a datagram through govs every 20ms from a few client ports
// (a few flows) and reads the echoes, until ctx ends.
func udpLoad(ctx context.Context, t *testing.T, ns *netns.NS, addr string) {
	var conns []net.Conn
	for range 4 {
		var c net.Conn
		if err := ns.Do(func() (err error) { c, err = net.Dial("udp", addr); return err }); err != nil {
			t.Errorf("udp client: %v", err)
			return
		}
		defer c.Close()
		conns = append(conns, c)
	}
	buf := make([]byte, 64)
	for i := 0; ctx.Err() == nil; i++ {
		c := conns[i%len(conns)]
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		c.Read(buf)
		time.Sleep(20 * time.Millisecond)
	}
}

// dashboardQueries are the PromQL queries of every panel of the Grafana
// dashboard, with the variables as "All" and a rate interval fit for a
// 1s scrape interval.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(src, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "10s", "$job", ".*", "$instance", ".*", "$service", ".*")
	var out []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				// This run configures neither connection sync nor BGP, so
				// their panels stay empty (TestGrafanaDashboard checks
				// their metric names).
				if strings.Contains(tg.Expr, "govs_sync_") || strings.Contains(tg.Expr, "govs_bgp_") {
					continue
				}
				out = append(out, vars.Replace(tg.Expr))
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	if len(out) < 20 {
		t.Fatalf("only %d dashboard queries", len(out))
	}
	return out
}

// promAPI is a client of Prometheus's HTTP API.
type promAPI struct {
	t    *testing.T
	base string
	c    *http.Client
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	var f float64
	if _, err := fmt.Sscan(str, &f); err != nil {
		return math.NaN() // "NaN", "+Inf" parse; anything else is not a number
	}
	return f
}

// hasNumber reports whether a result has a sample that is a number.
func hasNumber(r []promSample) bool {
	for _, s := range r {
		if !math.IsNaN(s.value()) {
			return true
		}
	}
	return false
}

func (p *promAPI) get(path string, v any) bool {
	resp, err := p.c.Get(p.base + path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		p.t.Fatalf("prometheus %s: %s: %s", path, resp.Status, body)
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		p.t.Fatalf("prometheus %s: %s", path, body)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		p.t.Fatalf("prometheus %s: %v: %s", path, err, env.Data)
	}
	return true
}

func (p *promAPI) ready() bool {
	resp, err := p.c.Get(p.base + "/-/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// query evaluates an instant query; an invalid query fails the test.
func (p *promAPI) query(q string) []promSample {
	p.t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if !p.get("/api/v1/query?query="+url.QueryEscape(q), &data) {
		return nil
	}
	if data.ResultType != "vector" {
		p.t.Fatalf("query %q: result type %s", q, data.ResultType)
	}
	return data.Result
}

func (p *promAPI) labelValues(label, match string) []string {
	var vals []string
	p.get("/api/v1/label/"+label+"/values?match[]="+url.QueryEscape(match), &vals)
	return vals
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *promAPI) alerts() []promAlert {
	var data struct {
		Alerts []promAlert `json:"alerts"`
	}
	p.get("/api/v1/alerts", &data)
	return data.Alerts
}

// screenshot saves headless Chromium's view of Prometheus's graph page:
// connections per real server and their p99 connect time, over the run.
func screenshot(t *testing.T, ns *netns.NS, file string) {
	t.Helper()
	chromium := requireTool(t, "chromium", "chromium")
	q := url.Values{}
	for i, e := range []string{
		`sum by (backend) (rate(govs_backend_connections_total{service="web"}[5s]))`,
		`histogram_quantile(0.99, sum by (backend, le) (rate(govs_backend_connect_duration_seconds_bucket{service="web"}[10s])))`,
	} {
		g := fmt.Sprintf("g%d.", i)
		q.Set(g+"expr", e)
		q.Set(g+"tab", "0")
		q.Set(g+"range_input", "3m")
		q.Set(g+"stacked", "0")
	}
	profile := t.TempDir()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir="+profile, "--window-size=1400,1250", "--virtual-time-budget=8000", "--hide-scrollbars",
		"--screenshot="+abs, "http://127.0.0.1:9090/graph?"+q.Encode())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("chromium: %v\n%s", err, out)
		return
	}
	t.Logf("screenshot of Prometheus's graph page saved to %s", abs)
}
