package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// noFollow is a client that shows redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// raw sends a request with the path exactly as given (no cleaning) and
// the token, if any.
func raw(t *testing.T, base, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestNonCanonicalPathsNeverRedirect: Go's mux answered a cleaned-path
// redirect to "..", "//" and "." spellings, and a client following the
// redirect of a DELETE deleted something else. Each is a 404 now, with no
// Location, and changes nothing.
func TestNonCanonicalPathsNeverRedirect(t *testing.T) {
	h := newHarness(t, baseConfig)
	before := h.d.Config()
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/services/../x"},
		{"GET", "/api/v1/services/tcp/127.0.0.1:8080/.."},
		{"GET", "/api/v1//services"},
		{"GET", "/api/v1/services/"},
		{"GET", "/api/v1/services/tcp/127.0.0.1:8080/."},
		{"GET", "/api/v1/./version"},
		{"GET", "/ui"},
		{"DELETE", "/api/v1/services/tcp/127.0.0.1:9999/../127.0.0.1:8080"},
		{"DELETE", "/api/v1/services/udp/127.0.0.1:5353/servers/127.0.0.1:5301/../../../../tcp/127.0.0.1:8080"},
		{"DELETE", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001/%2e%2e/127.0.0.1:9002"},
		{"DELETE", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001%2f..%2f127.0.0.1:9002"},
		{"DELETE", "//api/v1/services"},
		{"POST", "/api/v1/services/tcp/127.0.0.1:8080/servers/./"},
	} {
		code, hdr, body := raw(t, h.url, tc.method, tc.path, "", "")
		if code != http.StatusNotFound && code != http.StatusBadRequest {
			t.Errorf("%s %s: %d (Location %q), want 404 or 400: %s", tc.method, tc.path, code, hdr.Get("Location"), body)
		}
		if hdr.Get("Location") != "" {
			t.Errorf("%s %s: Location %q", tc.method, tc.path, hdr.Get("Location"))
		}
		if !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s: body %q is not a JSON error", tc.method, tc.path, body)
		}
	}
	if h.d.Config() != before {
		t.Error("a request on a non-canonical path changed the configuration")
	}
	if code, _, _ := raw(t, h.url, "GET", "/api/v1/services/tcp/127.0.0.1:8080", "", ""); code != 200 {
		t.Errorf("canonical path: %d", code)
	}
}

// TestStrictPortsInPathsAndBodies: ":08080" was port 8080.
func TestStrictPortsInPathsAndBodies(t *testing.T) {
	h := newHarness(t, baseConfig)
	before := h.d.Config()
	h.wantError("GET", "/api/v1/services/tcp/127.0.0.1:08080", "", 400, "address", `invalid port "08080"`)
	h.wantError("DELETE", "/api/v1/services/tcp/127.0.0.1:08080", "", 400, "address", `invalid port "08080"`)
	h.wantError("GET", "/api/v1/services/tcp/127.0.0.1:+8080", "", 400, "address", `invalid port "+8080"`)
	h.wantError("GET", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:09001", "", 400, "server", `invalid port "09001"`)
	h.wantError("DELETE", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:09001", "", 400, "server", `invalid port "09001"`)
	h.wantError("POST", "/api/v1/services", `{"address": "127.0.0.1:08081"}`, 400, "address", `invalid port "08081"`)
	h.wantError("POST", "/api/v1/services/tcp/127.0.0.1:8080/servers", `{"address": "127.0.0.1:09003"}`, 400, "address", `invalid port "09003"`)
	h.wantError("PUT", "/api/v1/services/tcp/127.0.0.1:8080", `{"address": "127.0.0.1:08080", "real_servers": []}`, 400, "address", "")
	if h.d.Config() != before {
		t.Error("a request with a bad port changed the configuration")
	}
}

// scriptConfig has a script check, defined by the operator in the file.
const scriptConfig = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    health_check:
      type: script
      command: /bin/true
      interval: 1h
    real_servers:
      - address: 127.0.0.1:9001
        notify_up: /bin/true up
`

// TestCommandsRefusedUnlessAllowed: an API token must not be a way to run
// commands as root.
func TestCommandsRefusedUnlessAllowed(t *testing.T) {
	h := newHarness(t, scriptConfig)
	marker := filepath.Join(t.TempDir(), "ran")
	cmd := "touch " + marker
	before := h.d.Config()
	for _, tc := range []struct{ method, path, body, field string }{
		{"POST", "/api/v1/services", `{"address": "127.0.0.1:8081", "health_check": {"type": "script", "command": "` + cmd + `"}}`, "health_check.command"},
		{"POST", "/api/v1/services", `{"address": "127.0.0.1:8081", "quorum_up": "` + cmd + `"}`, "quorum_up"},
		{"POST", "/api/v1/services", `{"address": "127.0.0.1:8081", "real_servers": [{"address": "127.0.0.1:1"}, {"address": "127.0.0.1:2", "notify_down": "` + cmd + `"}]}`, "real_servers[1].notify_down"},
		{"POST", "/api/v1/services", `{"address": "127.0.0.1:8081", "real_servers": [{"address": "127.0.0.1:1", "health_check": {"type": "script", "command": "` + cmd + `"}}]}`, "real_servers[0].health_check.command"},
		{"PUT", "/api/v1/services/tcp/127.0.0.1:8080", `{"health_check": {"type": "script", "command": "` + cmd + `"}}`, "health_check.command"},
		{"PATCH", "/api/v1/services/tcp/127.0.0.1:8080", `{"quorum_down": "` + cmd + `"}`, "quorum_down"},
		{"PATCH", "/api/v1/services/tcp/127.0.0.1:8080", `{"health_check": {"command": "` + cmd + `"}}`, "health_check.command"},
		{"POST", "/api/v1/services/tcp/127.0.0.1:8080/servers", `{"address": "127.0.0.1:9002", "notify_up": "` + cmd + `"}`, "notify_up"},
		{"POST", "/api/v1/services/tcp/127.0.0.1:8080/servers", `{"address": "127.0.0.1:9002", "health_check": {"type": "script", "command": "` + cmd + `"}}`, "health_check.command"},
		{"PUT", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001", `{"notify_up": "` + cmd + `"}`, "notify_up"},
		{"PATCH", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001", `{"notify_down": "` + cmd + `"}`, "notify_down"},
	} {
		e := h.wantError(tc.method, tc.path, tc.body, http.StatusForbidden, tc.field, "api.allow_scripts")
		if e.Code != CodeForbidden {
			t.Errorf("%s %s: code %q", tc.method, tc.path, e.Code)
		}
	}
	if h.d.Config() != before {
		t.Fatal("a refused command changed the configuration")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a refused command ran")
	}

	// Sending back what GET answered keeps the file's commands: allowed.
	code, body := h.do("GET", "/api/v1/services/tcp/127.0.0.1:8080", "")
	if code != 200 {
		t.Fatalf("GET: %d %s", code, body)
	}
	var o map[string]any
	json.Unmarshal([]byte(body), &o)
	o["scheduler"] = "rr"
	b, _ := json.Marshal(o)
	if code, body := h.do("PUT", "/api/v1/services/tcp/127.0.0.1:8080", string(b)); code != 200 {
		t.Fatalf("PUT of the service as GET showed it: %d %s", code, body)
	}
	if code, body := h.do("PATCH", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001", `{"weight": 5}`); code != 200 {
		t.Fatalf("PATCH of a real server with a notify_up from the file: %d %s", code, body)
	}
	// Removing a command runs nothing: allowed.
	if code, body := h.do("PATCH", "/api/v1/services/tcp/127.0.0.1:8080/servers/127.0.0.1:9001", `{"notify_up": null}`); code != 200 {
		t.Fatalf("removing notify_up: %d %s", code, body)
	}

	// The operator allows it in the file.
	h2 := newHarness(t, "api:\n  allow_scripts: true\n"+scriptConfig)
	if code, body := h2.do("POST", "/api/v1/services/tcp/127.0.0.1:8080/servers", `{"address": "127.0.0.1:9002", "notify_up": "/bin/true"}`); code != 201 {
		t.Fatalf("with allow_scripts: %d %s", code, body)
	}
	if code, body := h2.do("PATCH", "/api/v1/services/tcp/127.0.0.1:8080", `{"quorum_up": "/bin/true"}`); code != 200 {
		t.Fatalf("with allow_scripts: %d %s", code, body)
	}
}

// TestCommandFieldsClassified makes every string field of the entities the
// API edits a decision: a command (refused unless allow_scripts) or not.
// A field added without a decision fails here.
func TestCommandFieldsClassified(t *testing.T) {
	commands := map[string]bool{
		"VirtualServer.quorum_up": true, "VirtualServer.quorum_down": true,
		"RealServer.notify_up": true, "RealServer.notify_down": true,
		"HealthCheck.command": true,
	}
	notCommands := map[string]bool{
		"VirtualServer.name": true, "VirtualServer.scheduler": true, "VirtualServer.persistence_netmask": true,
		"VirtualServer.protocol": true, "VirtualServer.forwarding": true, "VirtualServer.family": true, "VirtualServer.send_proxy": true,
		"RealServer.send_proxy": true, "RealServer.name": true, "RealServer.origin": true,
		"RealServer.source_name": true, "RealServer.node": true,
		"HealthCheck.type": true, "HealthCheck.path": true, "HealthCheck.expect_digest": true, "HealthCheck.host": true,
		"HealthCheck.sni": true, "HealthCheck.tls_ca": true, "HealthCheck.query_name": true, "HealthCheck.query_type": true,
		"HealthCheck.payload": true, "HealthCheck.expect_reply": true, "HealthCheck.helo_name": true, "HealthCheck.file": true,
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[config.VirtualServer](), reflect.TypeFor[config.RealServer](), reflect.TypeFor[config.HealthCheck]()} {
		for f := range typ.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "-" || tag == "" || f.Type.Kind() != reflect.String {
				continue
			}
			k := typ.Name() + "." + tag
			if !commands[k] && !notCommands[k] {
				t.Errorf("%s is a string the API can set: is it a command govs runs? Add it to serviceCommands/realServerCommands (guard.go) or to notCommands here", k)
			}
		}
	}
	// And the lists in guard.go hold every command above.
	vs := &config.VirtualServer{QuorumUp: "a", QuorumDown: "b", HealthCheck: &config.HealthCheck{Command: "c"},
		RealServers: []*config.RealServer{{NotifyUp: "d", NotifyDown: "e", HealthCheck: &config.HealthCheck{Command: "f"}}}}
	got := map[string]bool{}
	for _, f := range serviceCommands(vs) {
		got[f.value] = true
	}
	for _, v := range []string{"a", "b", "c", "d", "e", "f"} {
		if !got[v] {
			t.Errorf("serviceCommands misses command %q", v)
		}
	}
}

func writeToken(t *testing.T, dir, name, token string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(token+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode) // past the umask
	return p
}

// syncBuffer is a log sink for a server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReadOnlyToken: a Prometheus scrape credential reads, and changes
// nothing.
func TestReadOnlyToken(t *testing.T) {
	h := newHarness(t, baseConfig)
	var logs syncBuffer
	h.s.log = slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	admin := writeToken(t, dir, "admin", "adm1n", 0o600)
	read := writeToken(t, dir, "read", "r3ad", 0o644)
	same := writeToken(t, dir, "same", "adm1n", 0o600)
	if _, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0", TokenFile: admin, ReadTokenFile: same}); err == nil || !strings.Contains(err.Error(), "same token") {
		t.Fatalf("the same token for both: %v", err)
	}
	addr, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0", TokenFile: admin, ReadTokenFile: read})
	if err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); !strings.Contains(l, "read_token_file is not private: mode 0644") || !strings.Contains(l, read) {
		t.Errorf("no warning about the world-readable token file %s: %q", read, l)
	}
	if strings.Contains(logs.String(), admin+"\n") {
		t.Errorf("a warning about the private token file: %q", logs.String())
	}
	base := "http://" + addr.String()
	before := h.d.Config()
	svc := "/api/v1/services/tcp/127.0.0.1:8080"
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/api/v1/services", "r3ad", "", 200},
		{"GET", svc, "r3ad", "", 200},
		{"HEAD", svc, "r3ad", "", 200},
		{"GET", "/metrics", "r3ad", "", 200},
		{"GET", "/api/v1/stats", "r3ad", "", 200},
		{"POST", "/api/v1/services", "r3ad", `{"address": "127.0.0.1:8081"}`, 403},
		{"PUT", svc, "r3ad", `{"scheduler": "rr"}`, 403},
		{"PATCH", svc, "r3ad", `{"scheduler": "rr"}`, 403},
		{"DELETE", svc, "r3ad", "", 403},
		{"DELETE", "/api/v1/services", "r3ad", "", 403},
		{"POST", "/api/v1/zero", "r3ad", "", 403},
		{"PUT", svc + "/servers/127.0.0.1:9001/drain", "r3ad", "", 403},
		{"DELETE", svc + "/servers/127.0.0.1:9001", "r3ad", "", 403},
		{"GET", "/api/v1/services", "wrong", "", 401},
		{"DELETE", svc, "", "", 401},
		{"GET", "/metrics", "", "", 401},
	} {
		code, _, body := raw(t, base, tc.method, tc.path, tc.token, tc.body)
		if code != tc.want {
			t.Errorf("%s %s with %q: %d, want %d: %s", tc.method, tc.path, tc.token, code, tc.want, body)
		}
		if tc.want == 403 && !strings.Contains(body, "read-only token") {
			t.Errorf("%s %s: 403 body %q", tc.method, tc.path, body)
		}
	}
	if h.d.Config() != before {
		t.Fatal("the read-only token changed the configuration")
	}
	if code, _, body := raw(t, base, "PATCH", svc, "adm1n", `{"scheduler": "rr"}`); code != 200 {
		t.Fatalf("admin PATCH: %d %s", code, body)
	}
	// A listener with the read-only token alone serves reads only.
	addr2, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0", ReadTokenFile: read})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := raw(t, "http://"+addr2.String(), "GET", "/metrics", "r3ad", ""); code != 200 {
		t.Errorf("read-only listener GET /metrics: %d", code)
	}
	if code, _, _ := raw(t, "http://"+addr2.String(), "DELETE", svc, "r3ad", ""); code != 403 {
		t.Errorf("read-only listener DELETE: %d", code)
	}
}

// TestConcurrentEditsAnswerHonestly hammers one service with adds,
// deletes and replacements: a 201 or 200 describes exactly what that
// request wrote. The old handlers read the entity back by address after
// the change, and answered 404 when another request had deleted it
// meanwhile, or showed another request's weight.
func TestConcurrentEditsAnswerHonestly(t *testing.T) {
	h := newHarness(t, baseConfig)
	const workers, rounds = 4, 40
	svc := "/api/v1/services/tcp/127.0.0.1:8080"
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	report := func(format string, args ...any) {
		select {
		case errs <- fmt.Sprintf(format, args...):
		default:
		}
	}
	client := &http.Client{}
	send := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			report("%s %s: %v", method, path, err)
			return 0, nil
		}
		defer resp.Body.Close()
		var o map[string]any
		json.NewDecoder(resp.Body).Decode(&o)
		return resp.StatusCode, o
	}
	for w := range workers {
		addr := fmt.Sprintf("127.0.3.%d:80", w+1)
		wg.Add(3)
		go func() { // adds its own real server, again and again
			defer wg.Done()
			for i := range rounds {
				weight := w*1000 + i
				code, o := send("POST", svc+"/servers", fmt.Sprintf(`{"address": %q, "weight": %d}`, addr, weight))
				switch code {
				case 201:
					if o["address"] != addr || fmt.Sprint(o["weight"]) != fmt.Sprint(weight) {
						report("POST %s weight %d answered 201 with %v", addr, weight, o)
					}
				case 409: // not deleted yet
				default:
					report("POST %s answered %d %v: the add is valid whatever else happens", addr, code, o)
				}
			}
		}()
		go func() { // deletes it as soon as it is there
			defer wg.Done()
			for range rounds * 2 {
				if code, o := send("DELETE", svc+"/servers/"+addr, ""); code != 204 && code != 404 {
					report("DELETE %s: %d %v", addr, code, o)
				}
			}
		}()
		go func() { // replaces the weight of a shared real server
			defer wg.Done()
			for i := range rounds {
				weight := 1 + w*1000 + i
				code, o := send("PUT", svc+"/servers/127.0.0.1:9001", fmt.Sprintf(`{"weight": %d}`, weight))
				if code != 200 || fmt.Sprint(o["weight"]) != fmt.Sprint(weight) {
					report("PUT weight %d answered %d with weight %v", weight, code, o["weight"])
				}
				code, o = send("PATCH", svc, fmt.Sprintf(`{"persistence_timeout": "%ds"}`, weight))
				if got, _ := o["persistence_timeout"].(string); code != 200 || got != (time.Duration(weight)*time.Second).String() {
					report("PATCH persistence_timeout %ds answered %d with %v", weight, code, o["persistence_timeout"])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
