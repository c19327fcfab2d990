package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/govs-lb/govs/internal/config"
)

// What the API refuses whoever asks: paths that are not in canonical
// form, commands (unless the configuration allows them), and, for the
// read-only token, anything but reading.

// canonicalPath reports whether p is the one spelling of a path: no empty,
// "." or ".." segment and no trailing slash (but "/"). Go's ServeMux would
// redirect any other spelling to its cleaned form, and a client that
// follows the redirect of a DELETE deletes something it did not name.
func canonicalPath(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p
}

// noRedirect turns any redirect the mux would answer (for "/ui", to
// "/ui/") into a 404: the API names each thing by one path only.
type noRedirect struct {
	http.ResponseWriter
	path    string
	dropped bool
}

func (n *noRedirect) WriteHeader(code int) {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		n.dropped = true
		n.ResponseWriter.Header().Del("Location")
		writeJSON(n.ResponseWriter, http.StatusNotFound, &Error{Message: "no such path: " + n.path, Code: CodeNotFound})
		return
	}
	n.ResponseWriter.WriteHeader(code)
}

func (n *noRedirect) Write(b []byte) (int, error) {
	if n.dropped {
		return len(b), nil // the redirect's body
	}
	return n.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (n *noRedirect) Unwrap() http.ResponseWriter { return n.ResponseWriter }

// Token roles on the TCP listener.
type role int

const (
	roleNone  role = iota
	roleRead       // GET and HEAD: the API's reads and /metrics
	roleAdmin      // everything
)

// tokens are the bearer tokens of the TCP listener, kept as hashes so that
// comparing them takes the same time whatever the lengths.
type tokens struct {
	admin, read       [sha256.Size]byte
	hasAdmin, hasRead bool
}

func newTokens(admin, read []byte) tokens {
	var t tokens
	if len(admin) > 0 {
		t.admin, t.hasAdmin = sha256.Sum256(admin), true
	}
	if len(read) > 0 {
		t.read, t.hasRead = sha256.Sum256(read), true
	}
	return t
}

// role is what the request's "Authorization: Bearer TOKEN" allows. Both
// comparisons always run, in constant time.
func (t tokens) role(r *http.Request) role {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	admin := subtle.ConstantTimeCompare(sum[:], t.admin[:]) == 1
	read := subtle.ConstantTimeCompare(sum[:], t.read[:]) == 1
	switch {
	case !ok:
		return roleNone
	case admin && t.hasAdmin:
		return roleAdmin
	case read && t.hasRead:
		return roleRead
	}
	return roleNone
}

// readOnly reports whether the request only reads.
func readOnly(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// requireToken lets through the requests their token allows: any with the
// admin token, reads with the read-only token.
func requireToken(t tokens, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch t.role(r) {
		case roleAdmin:
		case roleRead:
			if !readOnly(r) {
				writeJSON(w, http.StatusForbidden, &Error{Code: CodeForbidden,
					Message: fmt.Sprintf("method %s not allowed with the read-only token (read_token_file): it may only GET", r.Method)})
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="govs"`)
			writeJSON(w, http.StatusUnauthorized, &Error{Message: "missing or wrong bearer token", Code: CodeUnauthorized})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenFileWarnings says what is wrong with a token file's ownership and
// mode: a token that someone else can read is someone else's credential.
func tokenFileWarnings(fi os.FileInfo, uid int) []string {
	var out []string
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		out = append(out, fmt.Sprintf("mode %04o lets group or others read it; chmod 600 it", m))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		out = append(out, fmt.Sprintf("owned by uid %d, not by govs's user (uid %d)", st.Uid, uid))
	}
	return out
}

// commandField is a field of a request body that holds a command.
type commandField struct {
	path  string // in the request body: "real_servers[0].notify_up"
	ident string // what it configures, stable across requests
	value string
}

// The command fields of the configuration: every string that govs runs.
// TestCommandFieldsClassified fails when a field is added to the
// configuration's entities without being sorted into this list or out.
func serviceCommands(vs *config.VirtualServer) []commandField {
	var out []commandField
	if vs == nil {
		return nil
	}
	if vs.HealthCheck != nil {
		out = append(out, commandField{"health_check.command", "health_check.command", vs.HealthCheck.Command})
	}
	out = append(out,
		commandField{"quorum_up", "quorum_up", vs.QuorumUp},
		commandField{"quorum_down", "quorum_down", vs.QuorumDown})
	for i, rs := range vs.RealServers {
		if rs == nil {
			continue
		}
		for _, f := range realServerCommands(rs) {
			f.path = fmt.Sprintf("real_servers[%d].%s", i, f.path)
			f.ident = "real_servers/" + rs.Address.String() + "/" + f.ident
			out = append(out, f)
		}
	}
	return out
}

func realServerCommands(rs *config.RealServer) []commandField {
	if rs == nil {
		return nil
	}
	out := []commandField{
		{"notify_up", "notify_up", rs.NotifyUp},
		{"notify_down", "notify_down", rs.NotifyDown},
	}
	if rs.HealthCheck != nil {
		out = append(out, commandField{"health_check.command", "health_check.command", rs.HealthCheck.Command})
	}
	return out
}

// newCommand returns the first command in next that old does not hold
// already, unchanged. Keeping a command that the configuration file set
// (sending back what GET answered) is no new command; removing one is
// allowed.
func newCommand(old, next []commandField) (commandField, bool) {
	had := map[string]string{}
	for _, f := range old {
		had[f.ident] = f.value
	}
	for _, f := range next {
		if strings.TrimSpace(f.value) != "" && had[f.ident] != f.value {
			return f, true
		}
	}
	return commandField{}, false
}

// allowScripts reports whether the configuration lets API clients set
// commands (api.allow_scripts). It is read at each request, so a reload
// of the file changes it.
func (s *Server) allowScripts() bool {
	cfg := s.d.Config()
	return cfg != nil && cfg.API != nil && cfg.API.AllowScripts
}

// checkCommands refuses a change that sets a command, unless allowed.
func (s *Server) checkCommands(old, next []commandField) error {
	f, ok := newCommand(old, next)
	if !ok || s.allowScripts() {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Field: f.path,
		Message: f.path + ": commands cannot be set through the API, govs would run them as root; " +
			"write them in the configuration file, or set api.allow_scripts: true there"}
}
