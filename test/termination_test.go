package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// The access log of the real binary: a load run through govs run writing a
// JSON-lines file, rotated halfway (rename, SIGUSR1) as logrotate does, and
// govs logs's reports on both files equal to what the clients saw, counted
// here: per real server connections, errors by code and bytes each way.
func TestAccessLogLoadRun(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	a, b := loopback.LineServer(t, "a"), loopback.LineServer(t, "b")
	dead := loopback.Addr(t, "tcp") // nothing listens: refused
	vip := loopback.Addr(t, "tcp")
	cfg := filepath.Join(dir, "govs.yaml")
	writeFile(t, cfg, fmt.Sprintf(`logging: {access_log: %s}
virtual_servers:
  - name: web
    address: %s
    scheduler: rr
    retries: 0
    real_servers: [{address: %s}, {address: %s}, {address: %s}]
`, logFile, vip, a, b, dead))
	d := startGovs(t, cfg)

	type count struct {
		conns, errors, in, out int
		codes                  map[string]int
	}
	want := map[string]*count{}
	for _, rs := range []string{a, b, dead} {
		want[rs] = &count{codes: map[string]int{}}
	}
	byName := map[string]string{"a": a, "b": b}
	var mu sync.Mutex
	one := func(i int) error {
		req := fmt.Sprintf("request %d %s\n", i, strings.Repeat("x", i%97))
		c, err := net.DialTimeout("tcp", vip, 5*time.Second)
		rs, code := dead, "SC"
		var in, out int
		if err == nil {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, req)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				name, _, _ := strings.Cut(line, " ")
				if rs = byName[name]; rs == "" {
					return fmt.Errorf("answer %q from no real server", line)
				}
				in, out, code = len(req), len(line), "--"
				if i%5 == 0 {
					c.(*net.TCPConn).SetLinger(0) // a reset: the client aborts
					code = "CD"
				} else {
					c.(*net.TCPConn).CloseWrite()
					if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
						return fmt.Errorf("connection %d: did not end cleanly: %v %q", i, err, rest)
					}
				}
			} else if line != "" {
				return fmt.Errorf("connection %d: partial answer %q", i, line)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		w := want[rs]
		w.conns++
		w.in += in
		w.out += out
		if code != "--" {
			w.errors++
			w.codes[code]++
		}
		return nil
	}
	const n, workers = 600, 6
	run := func(from, to int) {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := from + w; i < to; i += workers {
					if err := one(i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	run(0, n/2)
	// logrotate: rename, then SIGUSR1; the rest goes to a new file.
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGUSR1)
	loopback.WaitFor(t, "the access log reopened", func() bool { _, err := os.Stat(logFile); return err == nil })
	run(n/2, n)
	// A stop writes what is queued before govs exits.
	d.signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("govs did not stop")
	}
	for _, f := range []string{logFile + ".1", logFile} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Fatalf("%s: empty or missing (%v): rotation lost lines", f, err)
		}
	}

	out, err := exec.Command(govsBin, "logs", "--report", "servers,terminations", "--format", "json", logFile+".1", logFile).Output()
	if err != nil {
		t.Fatalf("govs logs: %v", err)
	}
	var doc struct {
		Lines   uint64                      `json:"lines"`
		Bad     uint64                      `json:"bad_lines"`
		Reports map[string][]map[string]any `json:"reports"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if doc.Lines != n || doc.Bad != 0 {
		t.Errorf("%d lines (%d bad), want %d: one per connection", doc.Lines, doc.Bad, n)
	}
	seen := 0
	for _, row := range doc.Reports["servers"] {
		rs, _ := row["real_server"].(string)
		w := want[rs]
		if w == nil {
			t.Errorf("a real server the clients never saw: %v", row)
			continue
		}
		seen++
		var top []string
		for code, k := range w.codes {
			top = append(top, fmt.Sprintf("%s:%d", code, k))
		}
		got := fmt.Sprint(row["conns"], row["errors"], row["bytes_in"], row["bytes_out"], row["top_errors"])
		exp := fmt.Sprint(w.conns, w.errors, w.in, w.out, strings.Join(top, " "))
		if got != exp {
			t.Errorf("%s: conns errors in out codes = %s, counted by the clients %s", rs, got, exp)
		}
	}
	if seen != 3 {
		t.Errorf("%d real servers in the report, want 3: %s", seen, out)
	}
	codes := map[string]int{"--": n}
	for _, w := range want {
		for code, k := range w.codes {
			codes[code] += k
			codes["--"] -= k
		}
	}
	for _, row := range doc.Reports["terminations"] {
		code, _ := row["termination"].(string)
		if fmt.Sprint(row["conns"]) != fmt.Sprint(codes[code]) {
			t.Errorf("termination %s: %v connections, the clients saw %d", code, row["conns"], codes[code])
		}
		delete(codes, code)
	}
	for code, k := range codes {
		if k != 0 {
			t.Errorf("termination %s: %d connections missing from the report", code, k)
		}
	}
}

// TestTerminationKilled: with the real binary, a real server's process
// killed while a request is in flight (SD), and a stop's second signal
// closing what is left (KD), both in the access log and in /metrics.
func TestTerminationKilled(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("python3 not installed: it plays the real server that is killed")
		}
		t.Fatal("python3 not installed")
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	// A real server process that accepts and never reads.
	srvAddr := loopback.Addr(t, "tcp")
	host, port, _ := net.SplitHostPort(srvAddr)
	srv := exec.Command(py, "-c", fmt.Sprintf(`import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((%q, %s)); s.listen(16)
print("listening", flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
`, host, port))
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "listening\n" {
		t.Fatalf("python server: %q", line)
	}
	// The kill service's real server reads and never answers: its client
	// waits for an answer, so a stop waits for it too (not closed as idle).
	hold := make(chan struct{})
	defer close(hold)
	b := loopback.Serve(t, func(c net.Conn) { c.Read(make([]byte, 64)); <-hold })
	vipDown, vipKill := loopback.Addr(t, "tcp"), loopback.Addr(t, "tcp")
	metrics := loopback.Addr(t, "tcp")
	cfg := filepath.Join(dir, "govs.yaml")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, fmt.Sprintf(`grace_period: 60s
api: {http: %s, token_file: %s}
logging: {access_log: %s}
virtual_servers:
  - {name: down, address: %s, real_servers: [{address: %s}]}
  - {name: kill, address: %s, real_servers: [{address: %s}]}
`, metrics, token, logFile, vipDown, srvAddr, vipKill, b))
	d := startGovs(t, cfg)

	c1, err := net.Dial("tcp", vipDown)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	io.WriteString(c1, "never read by the server\n")
	c2, err := net.Dial("tcp", vipKill)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "hi\n")
	time.Sleep(100 * time.Millisecond) // the request reaches the python server's socket
	srv.Process.Kill()                 // its socket closes with unread data: a reset
	c1.SetDeadline(time.Now().Add(10 * time.Second))
	c1.Read(make([]byte, 1))

	var body string
	loopback.WaitFor(t, "the SD termination in /metrics", func() bool {
		body = scrape(t, metrics)
		return strings.Contains(body, fmt.Sprintf(`govs_backend_terminations_total{backend=%q,service="down",termination="SD"} 1`, srvAddr))
	})
	// Stop, then a second signal: the kill connection is closed at once.
	d.signal(t, syscall.SIGTERM)
	loopback.WaitFor(t, "the stop to begin", func() bool { return strings.Contains(d.log(), "shutting down") })
	d.signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("govs did not stop after the second signal")
	}
	got := map[string]string{}
	data, _ := os.ReadFile(logFile)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		got[m["service"].(string)+" "+m["real_server"].(string)] += m["termination"].(string)
	}
	if got["down "+srvAddr] != "SD" || got["kill "+b] != "KD" || len(got) != 2 {
		t.Errorf("terminations %v, want down SD and kill KD", got)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer secret\r\n\r\n")
	b, _ := io.ReadAll(c)
	return string(b)
}
