package api

import (
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/web"
)

func get(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestDashboardServed(t *testing.T) {
	h := newHarness(t, baseConfig)
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/", "text/html", `<script src="ui/app.js"`},
		{"/ui/app.js", "text/javascript", "api/v1/services"},
		{"/ui/style.css", "text/css", ":root"},
		{"/ui/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(t, "GET", h.url+tc.path, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: %d %s, body has %q: %v", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.contains, strings.Contains(body, tc.contains))
		}
		for _, k := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag", "Cache-Control"} {
			if resp.Header.Get(k) == "" {
				t.Errorf("GET %s: no %s", tc.path, k)
			}
		}
		// Revalidation is cheap.
		again, _ := get(t, "GET", h.url+tc.path, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", tc.path, again.StatusCode)
		}
	}
	if resp, _ := get(t, "HEAD", h.url+"/", nil); resp.StatusCode != 200 {
		t.Errorf("HEAD /: %d", resp.StatusCode)
	}
	for _, p := range []string{"/ui/", "/ui/nope.js", "/index.html"} {
		resp, body := get(t, "GET", h.url+p, nil)
		if resp.StatusCode != 404 || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %q, want a JSON 404", p, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, "POST", h.url+"/", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
	// The API is unchanged beside it.
	if resp, body := get(t, "GET", h.url+"/api/v1/services", nil); resp.StatusCode != 200 || !strings.Contains(body, `"real_servers"`) {
		t.Errorf("GET /api/v1/services: %d", resp.StatusCode)
	}
}

// On TCP the dashboard's files need no token and the API still does; no
// path through the dashboard reaches the API without it.
func TestDashboardOnTCPNeedsNoToken(t *testing.T) {
	h := newHarness(t, baseConfig)
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	addr, err := h.s.ServeTCP(TCPOptions{Addr: "127.0.0.1:0", TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	for _, p := range []string{"/", "/ui/app.js", "/ui/style.css"} {
		resp, body := get(t, "GET", base+p, nil)
		if resp.StatusCode != 200 || strings.Contains(body, "s3cret") {
			t.Errorf("GET %s without token: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/api/v1/services", "/metrics", "/ui/../api/v1/services", "/ui/%2e%2e/metrics", "//api/v1/vrrp"} {
		// Sent as is, not cleaned by the client.
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: govs\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		status := strings.SplitN(string(b), "\r\n", 2)[0]
		if strings.Contains(status, " 200 ") || strings.Contains(string(b), "real_servers") || strings.Contains(string(b), "govs_") {
			t.Errorf("GET %s without token: %s", p, status)
		}
	}
	if resp, _ := get(t, "POST", base+"/", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST / without token: %d, want 401", resp.StatusCode)
	}
}

// The dashboard loads nothing from elsewhere, and every file index.html
// names is served.
func TestDashboardSelfContained(t *testing.T) {
	fsys := web.FS()
	index, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(index), -1) {
		if _, ok := embeddedDashboard.files["/"+m[1]]; !ok {
			t.Errorf("index.html names %s, which is not served", m[1])
		}
	}
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(fsys, p)
		for _, u := range url.FindAllString(string(b), -1) {
			if u != "http://www.w3.org" { // SVG's namespace, not a fetch
				t.Errorf("%s refers to %s: the dashboard must load nothing from elsewhere", p, u)
			}
		}
		return nil
	})
}
