package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestDashboard drives the dashboard in headless Chromium against a real
// "govs run" with traffic flowing: the page asks for the API token, shows
// the services, real servers, rates and health, and records a real server
// going down. It needs Debian's chromium package; without it it skips.
//
// GOVS_DASHBOARD_SCREENSHOT=FILE also saves a screenshot of the page once
// its charts have two minutes of history. GOVS_DASHBOARD_VRRP=IFACE adds a
// VRRP instance on IFACE, with the VIP 10.99.0.100/24: run the test inside a
// scratch network namespace with a dummy IFACE, never on a real host's
// interface (docs/dashboard.md says how docs/dashboard.png is made).
func TestDashboard(t *testing.T) {
	browser := requireChromium(t)
	const token = "dashboard-test-token-7f3a"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token+"\n")

	// Two services: web, with three real servers of which one will fail, and
	// api, whose second real server is down from the start.
	a, b := loopback.LineServer(t, "a"), loopback.LineServer(t, "b")
	c, stopC := stoppableLineServer(t, "c")
	d := loopback.LineServer(t, "d")
	dead := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp")) // nothing listens there
	web := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	apiVIP := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	file := filepath.Join(dir, "govs.yaml")
	// A BGP peer where nothing listens: the BGP panel shows its session
	// down and the VIP the speaker would announce.
	bgpPort := loopback.FreePort(t, "tcp")
	writeFile(t, file, fmt.Sprintf(`api:
  http: %s
  token_file: %s
bgp:
  asn: 65001
  router_id: 127.0.0.1
  peers: [{address: 127.0.0.1, asn: 65000, port: %d}]
virtual_servers:
  - name: web
    address: %s
    scheduler: wrr
    health_check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
    real_servers:
      - {name: alpha, address: %s, weight: 3}
      - {address: %s, weight: 2}
      - {address: %s, weight: 1}
  - name: api
    address: %s
    scheduler: rr
    health_check: {type: tcp, interval: 200ms, timeout: 150ms, rise: 1, fall: 1}
    real_servers:
      - {address: %s}
      - {address: %s}
`, httpAddr, tokenFile, bgpPort, web, a, b, c, apiVIP, d, dead))
	vrrpIface := os.Getenv("GOVS_DASHBOARD_VRRP")
	if vrrpIface != "" {
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, `vrrp_instances:
  - {name: VI_1, interface: %s, virtual_router_id: 51, priority: 150, state: MASTER, version: 3,
     advert_int: 1s, virtual_ipaddresses: [10.99.0.100/24]}
`, vrrpIface)
		f.Close()
	}
	// As root, the connection sync runs too (unicast, to a peer that never
	// answers): its panel shows. Otherwise there is no sync section.
	withSync := os.Geteuid() == 0
	if withSync {
		writeFile(t, filepath.Join(dir, "sync.key"), "a shared key for the dashboard test\n")
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "sync: {peers: [127.0.0.2], port: %d, sync_id: 9, key_file: %s, resync_timeout: 1s}\n",
			loopback.FreePort(t, "udp"), filepath.Join(dir, "sync.key"))
		f.Close()
	}
	startGovs(t, file)
	base := "http://" + httpAddr + "/"

	// The page and its files are served without the token and hold no
	// data; the API is not.
	for _, p := range []string{"", "ui/app.js", "ui/style.css"} {
		code, body, hdr := httpGet(t, base+p, "")
		if code != 200 || strings.Contains(body, token) || strings.Contains(body, "127.0.0.1") {
			t.Fatalf("GET /%s without token: %d (or it holds data)", p, code)
		}
		if !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("GET /%s: no Content-Security-Policy", p)
		}
	}
	if code, _, _ := httpGet(t, base+"api/v1/services", ""); code != 401 {
		t.Fatalf("API without token: %d, want 401", code)
	}

	// Traffic: short connections to both services, and a few that stay
	// open (ActiveConn). Bounded in count and time; stops with the test.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Int64
	t.Cleanup(func() { close(stop); wg.Wait() })
	for _, vip := range []string{web, web, apiVIP} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if exchange(vip, 2000) == nil {
					sent.Add(1)
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holdConnection(web, stop)
		}()
	}

	cr := startChromium(t, browser)
	defer cr.close()
	page := cr.newPage(t, 1440, 1000)
	page.navigate(t, base)

	// No token yet: the page asks for it. A wrong one is refused.
	page.waitFor(t, "the token prompt", `document.body.dataset.state === 'login' && !document.getElementById('login').hidden`)
	page.submitToken(t, "wrong")
	page.waitFor(t, "the wrong token to be refused", `document.body.dataset.state === 'login' && !document.getElementById('login-error').hidden`)
	page.submitToken(t, token)
	page.waitFor(t, "live data", `document.body.dataset.state === 'live' && +document.body.dataset.updates >= 3`)

	svc := func(vip string) string { return fmt.Sprintf(`document.querySelector('[data-service="tcp/%s"]')`, vip) }
	row := func(vip, rs string) string {
		return fmt.Sprintf(`%s.querySelector('tr[data-backend="%s"]')`, svc(vip), rs)
	}
	field := func(el, f string) string {
		return fmt.Sprintf(`%s.querySelector('[data-field="%s"]').textContent`, el, f)
	}

	// Both services with their real servers; api's dead one is down.
	page.waitFor(t, "the services and real servers", fmt.Sprintf(`%s && %s && %s.querySelectorAll('tbody tr').length === 3 && %s.querySelectorAll('tbody tr').length === 2`,
		svc(web), svc(apiVIP), svc(web), svc(apiVIP)))
	for _, rs := range []string{a, b, c} {
		page.waitFor(t, rs+" up", field(row(web, rs), "state")+` === 'up'`)
	}
	page.waitFor(t, dead+" down", field(row(apiVIP, dead), "state")+` === 'down'`)
	page.waitFor(t, "the real server's name beside its address", field(row(web, a), "address")+` === 'alpha `+a+`' && `+field(row(web, b), "address")+` === '`+b+`'`)
	page.waitFor(t, "the weights", field(row(web, a), "weight")+` === '3' && `+field(row(apiVIP, dead), "weight")+` === '0 (1)'`)
	page.waitFor(t, "the health checks' latency", field(row(web, a), "check")+`.includes('tcp') && /[0-9.]+ (ms|s)$/.test(`+field(row(web, a), "latency")+`)`)

	// Live rates and charts, computed in the page from the counters.
	page.waitFor(t, "a connection rate", `parseFloat(`+field(svc(web), "cps")+`) > 0 && parseFloat(document.querySelector('[data-kpi="cps"]').textContent) > 0`)
	page.waitFor(t, "a byte rate", `parseFloat(`+field(svc(web), "inbps")+`) > 0 && parseFloat(`+field(svc(web), "outbps")+`) > 0`)
	page.waitFor(t, "connections per real server", `parseFloat(`+field(row(web, a), "cps")+`) > 0 && parseFloat(`+field(row(apiVIP, d), "cps")+`) > 0`)
	page.waitFor(t, "sparklines", svc(web)+`.querySelector('svg.spark').dataset.points >= 3`)
	page.waitFor(t, "ActiveConn", `parseInt(`+field(svc(web), "active")+`) >= 4`)
	if vrrpIface == "" {
		page.waitFor(t, "the VRRP panel", `document.getElementById('vrrp-body').dataset.vrrp === 'none'`)
	} else {
		page.waitFor(t, "the VRRP instance", `document.getElementById('vrrp-body').dataset.vrrp === 'MASTER'`)
	}
	page.waitFor(t, "the BGP panel", `document.getElementById('bgp-body').dataset.bgp.startsWith('0/1 ') && `+
		`document.querySelector('[data-bgp-peer="127.0.0.1"] .badge.down') !== null && `+
		`document.querySelector('[data-bgp-prefix="127.0.0.1/32"]') !== null && `+
		`document.getElementById('bgp-summary').textContent.includes('AS 65001')`)
	if withSync {
		// Its state, no peer heard, the resync that timed out.
		page.waitFor(t, "the sync panel", `document.getElementById('sync-body').dataset.sync === 'running' && !document.getElementById('sync').hidden && `+
			`document.getElementById('sync-body').textContent.includes('0 peers') && document.getElementById('sync-body').textContent.includes('start-up timeout') && `+
			`document.getElementById('sync-body').textContent.includes('127.0.0.2:')`)
	} else {
		// No sync section: the connection sync's panel stays hidden.
		page.waitFor(t, "the sync panel hidden", `document.getElementById('sync-body').dataset.sync === 'none' && document.getElementById('sync').hidden`)
	}
	page.waitFor(t, "the version", `document.getElementById('version').textContent !== ''`)
	page.waitFor(t, "the down real server's transition", fmt.Sprintf(`[...document.querySelectorAll('#events li[data-event="down"]')].some(li => li.textContent.includes('%s'))`, dead))

	// An operator drains a real server, then ends the drain.
	drain := base + "api/v1/services/tcp/" + web + "/servers/" + b + "/drain"
	apiDo(t, "PUT", drain, token)
	page.waitFor(t, b+" draining", field(row(web, b), "state")+` === 'draining' && `+field(row(web, b), "weight")+` === '0 (2)'`)
	apiDo(t, "DELETE", drain, token)
	page.waitFor(t, b+" back", field(row(web, b), "state")+` === 'up'`)
	page.waitFor(t, b+"'s transitions", fmt.Sprintf(`[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('%s') && li.textContent.includes('draining → up'))`, b))

	// A real server fails: its row turns down and the transition is listed.
	stopC()
	page.waitFor(t, c+" down", field(row(web, c), "state")+` === 'down'`)
	page.waitFor(t, c+"'s transition", fmt.Sprintf(`[...document.querySelectorAll('#events li[data-event="down"]')].some(li => li.textContent.includes('%s') && li.textContent.includes('up → down'))`, c))
	page.waitFor(t, "the header's count", `document.getElementById('pills').textContent.includes('3/5')`)

	// The token stays in this tab's sessionStorage, not in the page.
	page.waitFor(t, "the token in sessionStorage", fmt.Sprintf(`sessionStorage.getItem('govs.token') === '%s' && !document.documentElement.outerHTML.includes('%s')`, token, token))

	if out := os.Getenv("GOVS_DASHBOARD_SCREENSHOT"); out != "" {
		// Let the charts fill first, then shoot the page at its own height.
		time.Sleep(2 * time.Minute)
		page.c.must(t, page.session, "Emulation.setDeviceMetricsOverride",
			map[string]any{"width": 1440, "height": 600, "deviceScaleFactor": 1, "mobile": false}, nil)
		page.screenshot(t, out)
	}
	if errs := cr.pageErrors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}
	t.Logf("%d exchanges through govs while the dashboard watched", sent.Load())
}

// requireChromium returns the path of Chromium, or skips.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("needs headless Chromium for the dashboard test (Debian: apt-get install -y chromium)")
	return ""
}

// apiDo sends a request without body to the API and wants a 2xx.
func apiDo(t *testing.T, method, url, token string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
}

func httpGet(t *testing.T, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// exchange sends one line of size bytes on a new connection and reads the
// answer.
func exchange(addr string, size int) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append(bytes.Repeat([]byte("x"), size), '\n')); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

// holdConnection keeps a connection open, a line every 200 ms, until stop.
func holdConnection(addr string, stop <-chan struct{}) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i := 0; i < 3000; i++ {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "still here\n"); err != nil {
			return
		}
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stoppableLineServer is lineServer with a stop: the listener and every
// connection close, so health checks fail from then on.
func stoppableLineServer(t *testing.T, name string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s %s", name, line)
				}
			}()
		}
	}()
	return ln.Addr().String(), stop
}

// chromium is a headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: commands on its fd 3, answers and events
// on its fd 4, each a JSON message ended by a NUL byte). No WebSocket, no
// library.
type chromium struct {
	cmd  *exec.Cmd
	in   *os.File // we write commands here
	out  *os.File // we read answers here
	done chan struct{}
	err  error

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpAnswer
	errs    []string // errors the page logged
	stderr  bytes.Buffer
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func startChromium(t *testing.T, path string) *chromium {
	t.Helper()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ansR, ansW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &chromium{in: cmdW, out: ansR, done: make(chan struct{}), pending: map[int64]chan cdpAnswer{}}
	c.cmd = exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	c.cmd.ExtraFiles = []*os.File{cmdR, ansW} // fds 3 and 4
	c.cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.stderr}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	ansW.Close()
	go c.read()
	t.Cleanup(func() {
		c.close()
		if t.Failed() {
			c.mu.Lock()
			t.Logf("chromium stderr (tail):\n%s", tail(c.stderr.String(), 3000))
			c.mu.Unlock()
		}
	})
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// close ends Chromium: asked politely, then killed by its PID.
func (c *chromium) close() {
	select {
	case <-c.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.call(ctx, "", "Browser.close", nil, nil)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *chromium) read() {
	defer func() {
		c.err = c.cmd.Wait()
		c.in.Close()
		close(c.done)
	}()
	r := bufio.NewReaderSize(c.out, 1<<20)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			c.out.Close()
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpAnswer
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m.cdpAnswer
			}
			continue
		}
		c.event(m.Method, m.Params)
	}
}

// event keeps what the page reports as an error: exceptions, console
// errors, and log entries (CSP violations among them), but not the 401
// the API answers before the page has the token, which is expected.
func (c *chromium) event(method string, params json.RawMessage) {
	var text string
	switch method {
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		json.Unmarshal(params, &p)
		text = "exception: " + p.Details.Text + " " + p.Details.Exception.Description
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		json.Unmarshal(params, &p)
		if p.Type != "error" && p.Type != "assert" {
			return
		}
		text = "console." + p.Type + ":"
		for _, a := range p.Args {
			text += fmt.Sprintf(" %v%s", a.Value, a.Description)
		}
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Source, Level, Text, URL string
			} `json:"entry"`
		}
		json.Unmarshal(params, &p)
		if p.Entry.Level != "error" || (p.Entry.Source == "network" && strings.Contains(p.Entry.Text, "401")) {
			return
		}
		text = "log " + p.Entry.Source + ": " + p.Entry.Text + " " + p.Entry.URL
	default:
		return
	}
	c.mu.Lock()
	c.errs = append(c.errs, text)
	c.mu.Unlock()
}

func (c *chromium) pageErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// call sends a command (to a page's session if session is set) and decodes
// its result into out.
func (c *chromium) call(ctx context.Context, session, method string, params, out any) error {
	ch := make(chan cdpAnswer, 1)
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if _, err := c.in.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case a, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: chromium exited", method)
		}
		if a.Error != nil {
			return fmt.Errorf("%s: %s", method, a.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(a.Result, out)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *chromium) must(t *testing.T, session, method string, params, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.call(ctx, session, method, params, out); err != nil {
		t.Fatal(err)
	}
}

// page is a browser tab.
type page struct {
	c       *chromium
	session string
}

func (c *chromium) newPage(t *testing.T, width, height int) *page {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	c.must(t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	c.must(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	p := &page{c: c, session: att.SessionID}
	for _, domain := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		c.must(t, p.session, domain, nil, nil)
	}
	c.must(t, p.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	return p
}

func (p *page) navigate(t *testing.T, url string) {
	t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	p.c.must(t, p.session, "Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		t.Fatalf("navigating to %s: %s", url, res.ErrorText)
	}
}

// eval evaluates a JavaScript expression in the page.
func (p *page) eval(t *testing.T, expr string) (json.RawMessage, error) {
	t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.c.call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return nil, err
	}
	if res.Exception != nil {
		return nil, errors.New(res.Exception.Text + " " + res.Exception.Exception.Description)
	}
	return res.Result.Value, nil
}

// waitFor polls a JavaScript condition for up to 30 s (CI machines are busy).
func (p *page) waitFor(t *testing.T, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		v, err := p.eval(t, "(() => { try { return !!("+cond+"); } catch (e) { return String(e); } })()")
		if err == nil && string(v) == "true" {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = string(v)
		}
		if time.Now().After(deadline) {
			text, _ := p.eval(t, "document.body.innerText")
			var s string
			json.Unmarshal(text, &s)
			t.Fatalf("timed out waiting for %s (last: %s)\ncondition: %s\npage text:\n%s", what, last, cond, tail(s, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *page) submitToken(t *testing.T, token string) {
	t.Helper()
	b, _ := json.Marshal(token)
	if _, err := p.eval(t, fmt.Sprintf(`document.getElementById('token').value = %s; document.getElementById('login-form').requestSubmit()`, b)); err != nil {
		t.Fatal(err)
	}
}

// screenshot saves the whole page as PNG.
func (p *page) screenshot(t *testing.T, file string) {
	t.Helper()
	var metrics struct {
		Content struct {
			Width, Height float64
		} `json:"cssContentSize"`
	}
	p.c.must(t, p.session, "Page.getLayoutMetrics", nil, &metrics)
	var shot struct {
		Data string `json:"data"`
	}
	clip := map[string]any{"x": 0, "y": 0, "width": metrics.Content.Width, "height": metrics.Content.Height, "scale": 1}
	p.c.must(t, p.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true, "clip": clip}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
}
