package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/govs-lb/govs/web"
)

// The dashboard (package web) is served at "/" with its files under
// "/ui/". Its files hold no data and no secret, so the TCP listener serves
// them without the bearer token; the page then calls the API with the
// token the operator types in (docs/dashboard.md).

// dashboardPrefix is where the dashboard's files other than index.html are.
const dashboardPrefix = "/ui/"

// dashboardCSP lets the page load only its own files and talk only to its
// own origin: no inline script, no external resource, no framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type dashboardFile struct {
	name string // for the content type
	body []byte
	etag string
}

// dashboard serves the embedded dashboard.
type dashboard struct {
	files map[string]dashboardFile // by URL path
}

func newDashboard(fsys fs.FS) *dashboard {
	d := &dashboard{files: map[string]dashboardFile{}}
	fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		f := dashboardFile{name: path.Base(p), body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		switch {
		case p == "index.html":
			d.files["/"] = f
		case strings.HasPrefix("/"+p, dashboardPrefix):
			d.files["/"+p] = f
		}
		return nil
	})
	return d
}

var embeddedDashboard = newDashboard(web.FS())

// isDashboard tells whether r asks for a file of the dashboard.
func isDashboard(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, dashboardPrefix)
}

func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := d.files[r.URL.Path]
	if !ok {
		writeJSON(w, http.StatusNotFound, &Error{Message: "no such path: " + r.URL.Path, Code: CodeNotFound})
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// Revalidate every time: a new govs binary brings new files, and the
	// ETag makes the revalidation cheap.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
}

// publicDashboard serves the dashboard's files without authentication and
// everything else through next.
func publicDashboard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isDashboard(r) {
			embeddedDashboard.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleDashboard serves the dashboard on the server's own handler (the
// unix socket's): at "/" and under dashboardPrefix.
func (s *Server) handleDashboard() {
	s.mux.Handle("GET /{$}", embeddedDashboard)
	s.mux.Handle("GET "+dashboardPrefix, embeddedDashboard)
}
