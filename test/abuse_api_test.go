package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/loopback"
)

// The control API under abuse (issue 21, items 7 and 12), against a real
// "govs run" with its TCP listener on 127.0.0.1 and token files: an admin
// token must not be a way to run commands as root, a scrape credential
// must not change anything, non-canonical paths are never redirected, and
// ports are spelled one way.

// apiCall sends a request with the path exactly as given (Go's client
// does not clean it) and never follows a redirect.
func apiCall(t *testing.T, base, token, method, path, body string) (int, http.Header, string) {
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
	c := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// apiError decodes an error answer.
func apiError(t *testing.T, what, body string) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Message == "" {
		t.Errorf("%s: %q is not a JSON error", what, body)
	}
	return e
}

func TestAbuseAPI(t *testing.T) {
	const admin, reader = "admin-7c1e0b", "scrape-52d9aa"
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin.token")
	readFile := filepath.Join(dir, "read.token")
	if err := os.WriteFile(adminFile, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// World-readable on purpose: govs must warn about it, with its path.
	if err := os.WriteFile(readFile, []byte(reader+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(readFile, 0o644)
	marker := filepath.Join(dir, "ran-as-root")
	rs := loopback.LineServer(t, "a")
	web := loopback.Addr(t, "tcp")
	httpAddr := loopback.Addr(t, "tcp")
	file := filepath.Join(dir, "govs.yaml")
	conf := func(extra string) string {
		return fmt.Sprintf(`api:
  http: %s
  token_file: %s
  read_token_file: %s
%svirtual_servers:
  - name: web
    address: %s
    real_servers:
      - address: %s
`, httpAddr, adminFile, readFile, extra, web, rs)
	}
	writeFile(t, file, conf(""))
	sock := filepath.Join(dir, "govs.sock")
	d := runDaemon(t, "govs", exec.Command(govsBin, "--socket", sock, "run", "-c", file), 5*time.Second)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	base := "http://" + httpAddr
	webPath := "/api/v1/services/tcp/" + web
	ctx := context.Background()

	services := func() string {
		t.Helper()
		code, _, body := apiCall(t, base, admin, "GET", "/api/v1/services", "")
		if code != 200 {
			t.Fatalf("GET /api/v1/services: %d %s", code, body)
		}
		var list []api.Service
		json.Unmarshal([]byte(body), &list)
		var out []string
		for _, s := range list {
			var reals []string
			for _, r := range s.RealServers {
				reals = append(reals, fmt.Sprintf("%s/%d", r.Address, r.Weight))
			}
			out = append(out, fmt.Sprintf("%s %s %s %v", s.Address, s.Scheduler, s.PersistenceTimeout, reals))
		}
		return strings.Join(out, "; ")
	}
	initial := services()

	t.Run("token file warning", func(t *testing.T) {
		l := d.log()
		if !strings.Contains(l, "read_token_file is not private") || !strings.Contains(l, readFile) {
			t.Errorf("no warning naming the world-readable token file %s", readFile)
		}
		if strings.Contains(l, "path="+adminFile) {
			t.Errorf("a warning about the private token file %s", adminFile)
		}
	})

	t.Run("admin token cannot define commands", func(t *testing.T) {
		script := fmt.Sprintf(`"touch %s"`, marker)
		svc := loopback.Addr(t, "tcp")
		for _, tc := range []struct{ method, path, body, field string }{
			{"POST", "/api/v1/services", fmt.Sprintf(`{"address": %q, "health_check": {"type": "script", "command": %s, "interval": "100ms"}, "real_servers": [{"address": %q}]}`, svc, script, rs), "health_check.command"},
			{"POST", webPath + "/servers", fmt.Sprintf(`{"address": "127.0.0.1:1", "notify_down": %s}`, script), "notify_down"},
			{"PATCH", webPath, fmt.Sprintf(`{"quorum_down": %s, "health_check": {"type": "tcp"}}`, script), "quorum_down"},
			{"PATCH", webPath, fmt.Sprintf(`{"health_check": {"type": "script", "command": %s, "interval": "100ms"}}`, script), "health_check.command"},
		} {
			code, _, body := apiCall(t, base, admin, tc.method, tc.path, tc.body)
			if code != http.StatusForbidden {
				t.Errorf("%s %s: %d, want 403: %s", tc.method, tc.path, code, body)
				continue
			}
			if e := apiError(t, tc.path, body); e.Field != tc.field || !strings.Contains(e.Message, "api.allow_scripts") {
				t.Errorf("%s %s: field %q, message %q; want field %q", tc.method, tc.path, e.Field, e.Message, tc.field)
			}
		}
		// The unix socket (govsadm's) refuses them too.
		_, err := api.NewUnixClient(sock).CreateRealServer(ctx, "tcp", web, map[string]any{"address": "127.0.0.1:2", "notify_up": "touch " + marker}, "")
		var e *api.Error
		if !errors.As(err, &e) || e.Status != http.StatusForbidden || e.Field != "notify_up" {
			t.Errorf("unix socket notify_up: %v", err)
		}
		// A check at 100 ms would have run many times by now.
		time.Sleep(500 * time.Millisecond)
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("a command sent through the API ran")
		}
		if got := services(); got != initial {
			t.Errorf("refused requests changed the services:\n%s\nwas\n%s", got, initial)
		}
	})

	t.Run("read-only token", func(t *testing.T) {
		for _, p := range []string{"/api/v1/services", webPath, webPath + "/servers", "/api/v1/health", "/api/v1/stats"} {
			if code, _, body := apiCall(t, base, reader, "GET", p, ""); code != 200 {
				t.Errorf("GET %s with the read-only token: %d %s", p, code, body)
			}
		}
		code, _, body := apiCall(t, base, reader, "GET", "/metrics", "")
		if code != 200 || !strings.Contains(body, "govs_") {
			t.Errorf("scrape with the read-only token: %d %.200s", code, body)
		}
		for _, tc := range []struct{ method, path, body string }{
			{"POST", "/api/v1/services", fmt.Sprintf(`{"address": %q}`, loopback.Addr(t, "tcp"))},
			{"POST", webPath + "/servers", `{"address": "127.0.0.1:3"}`},
			{"PUT", webPath, `{"scheduler": "rr"}`},
			{"PUT", webPath + "/servers/" + rs, `{"weight": 9}`},
			{"PUT", webPath + "/servers/" + rs + "/drain", ""},
			{"PATCH", webPath, `{"scheduler": "rr"}`},
			{"DELETE", webPath + "/servers/" + rs, ""},
			{"DELETE", webPath, ""},
			{"DELETE", "/api/v1/services", ""},
		} {
			code, _, body := apiCall(t, base, reader, tc.method, tc.path, tc.body)
			if code != http.StatusForbidden {
				t.Errorf("%s %s with the read-only token: %d, want 403: %s", tc.method, tc.path, code, body)
			}
		}
		if code, _, _ := apiCall(t, base, "", "GET", "/metrics", ""); code != 401 {
			t.Errorf("scrape without a token: %d, want 401", code)
		}
		if got := services(); got != initial {
			t.Errorf("the read-only token changed the services:\n%s\nwas\n%s", got, initial)
		}
	})

	t.Run("non-canonical paths", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/api/v1/services/../x"},
			{"GET", "/api/v1//services"},
			{"DELETE", "/api/v1/services/tcp/127.0.0.1:1/../" + web},
			{"DELETE", webPath + "/servers/127.0.0.1:1/../" + rs},
			{"DELETE", webPath + "/servers/" + rs + "/."},
			{"DELETE", webPath + "/servers/127.0.0.1:1/%2e%2e/" + rs},
			{"DELETE", "/api/v1/services/"},
		} {
			code, hdr, body := apiCall(t, base, admin, tc.method, tc.path, "")
			if code != 404 && code != 400 {
				t.Errorf("%s %s: %d (Location %q), want 404 or 400", tc.method, tc.path, code, hdr.Get("Location"))
			}
			if hdr.Get("Location") != "" {
				t.Errorf("%s %s: Location %q", tc.method, tc.path, hdr.Get("Location"))
			}
			apiError(t, tc.path, body)
		}
		if got := services(); got != initial {
			t.Errorf("non-canonical paths changed the services:\n%s\nwas\n%s", got, initial)
		}
	})

	t.Run("strict ports in the API", func(t *testing.T) {
		host, port, _ := strings.Cut(web, ":")
		for _, tc := range []struct{ method, path, body, field string }{
			{"GET", "/api/v1/services/tcp/" + host + ":0" + port, "", "address"},
			{"DELETE", "/api/v1/services/tcp/" + host + ":0" + port, "", "address"},
			{"DELETE", webPath + "/servers/" + strings.Replace(rs, ":", ":0", 1), "", "server"},
			{"POST", webPath + "/servers", `{"address": "127.0.0.1:08080"}`, "address"},
			{"POST", "/api/v1/services", `{"address": "127.0.0.1:+8080"}`, "address"},
		} {
			code, _, body := apiCall(t, base, admin, tc.method, tc.path, tc.body)
			if code != 400 {
				t.Errorf("%s %s %s: %d, want 400: %s", tc.method, tc.path, tc.body, code, body)
				continue
			}
			if e := apiError(t, tc.path, body); e.Field != tc.field || !strings.Contains(e.Message, "invalid port") {
				t.Errorf("%s %s: field %q, message %q; want field %q", tc.method, tc.path, e.Field, e.Message, tc.field)
			}
		}
		if got := services(); got != initial {
			t.Errorf("bad ports changed the services:\n%s\nwas\n%s", got, initial)
		}
	})

	t.Run("strict ports in the configuration", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		writeFile(t, bad, "virtual_servers:\n  - address: 127.0.0.1:08080\n    real_servers:\n      - address: 127.0.0.1:9001\n")
		out, err := exec.Command(govsBin, "check", "-c", bad).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("govs check of :08080: exit %v, want 1: %s", err, out)
		}
		if want := bad + `:2:14: invalid port "08080"`; !strings.Contains(string(out), want) {
			t.Errorf("govs check: %q, want %q", out, want)
		}
	})

	t.Run("govsadm's socket keeps working", func(t *testing.T) {
		c := api.NewUnixClient(sock)
		if _, err := c.CreateRealServer(ctx, "tcp", web, map[string]any{"address": "127.0.0.1:4", "weight": 0}, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteRealServer(ctx, "tcp", web, "127.0.0.1:4"); err != nil {
			t.Fatal(err)
		}
	})

	// Last, as a reload drops runtime changes: the operator allows
	// commands in the file, and the same request runs its script.
	t.Run("allow_scripts", func(t *testing.T) {
		// script_user root: the marker is in a directory only root may
		// enter (scripts run as nobody by default).
		writeFile(t, file, "script_user: root\n"+conf("  allow_scripts: true\n"))
		d.signal(t, syscall.SIGHUP)
		loopback.WaitFor(t, "the reload", func() bool { return strings.Contains(d.log(), "configuration reloaded") })
		code, _, body := apiCall(t, base, admin, "PATCH", webPath,
			fmt.Sprintf(`{"health_check": {"type": "script", "command": "touch %s", "interval": "100ms"}}`, marker))
		if code != 200 {
			t.Fatalf("PATCH with allow_scripts: %d %s", code, body)
		}
		loopback.WaitFor(t, "the allowed script to run", func() bool { _, err := os.Stat(marker); return err == nil })
	})
}
