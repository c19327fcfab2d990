package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/govs-lb/govs/internal/director"
)

// Options configure a Server.
type Options struct {
	Director *director.Director
	Log      *slog.Logger
	Version  string
	// RateInterval is how often rates are estimated (IPVS: 2s).
	RateInterval time.Duration
}

// Server serves the control API and the metrics.
type Server struct {
	d       *director.Director
	log     *slog.Logger
	version string

	mux    *http.ServeMux
	routes []route
	reg    *prometheus.Registry
	stats  *statsBook
	// forecasts are each service's connection-rate model (forecast.go)
	forecasts *forecastBook

	reloadMu sync.Mutex // serialises ConfigReloaded
	reloads  atomic.Pointer[reloadState]

	mu      sync.Mutex
	servers []*http.Server
	socket  string // to remove on Close
	vrrp    VRRPSource
	bgp     BGPSource       // bgp.go
	disc    discoveryHolder // discovery.go
	sync    SyncSource      // sync.go
	stop    chan struct{}
	stopped bool
	wg      sync.WaitGroup
}

// New returns a server for the director. It serves nothing until
// ServeUnix or ServeTCP; Handler gives its handler for tests and embedding.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RateInterval <= 0 {
		o.RateInterval = 2 * time.Second
	}
	s := &Server{
		d: o.Director, log: o.Log, version: o.Version,
		mux:   http.NewServeMux(),
		stats: newStatsBook(),
		stop:  make(chan struct{}),

		forecasts: newForecastBook(),
	}
	// A server starts once its configuration has loaded: that is the first
	// successful load.
	s.reloads.Store(&reloadState{ok: true, lastOK: time.Now()})
	s.reg = newRegistry(s)
	s.reg.MustRegister(forecastCollector{s})
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	s.handleDashboard() // "/": not an API route, so not in routes (dashboard.go)
	s.wg.Add(1)
	go s.estimate(o.RateInterval)
	return s
}

// route is one endpoint. docs/openapi.yaml describes each; a test checks.
type route struct {
	Method, Pattern string
	Handler         http.Handler
}

// Handler serves the API and /metrics without authentication, as on the
// unix socket.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r.URL.Path) {
			// Answered, never redirected to the cleaned path (guard.go).
			writeJSON(w, http.StatusNotFound, &Error{Code: CodeNotFound,
				Message: fmt.Sprintf("no such path: %q is not in canonical form (no empty, '.' or '..' segment, no trailing slash)", r.URL.Path)})
			return
		}
		w = &noRedirect{ResponseWriter: w, path: r.URL.Path}
		if _, pattern := s.mux.Handler(r); pattern == "" {
			// Not a route, or the wrong method: answer as the mux would, but
			// in JSON.
			rec := &recorder{header: http.Header{}, code: http.StatusOK}
			s.mux.ServeHTTP(rec, r)
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			msg := "no such path: " + r.URL.Path
			if rec.code == http.StatusMethodNotAllowed {
				msg = fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)
			}
			writeJSON(w, rec.code, &Error{Message: msg, Code: CodeNotFound})
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// ServeUnix serves the API on a unix socket at path, mode 0660. A stale
// socket file is replaced; a socket another process answers on is not.
func (s *Server) ServeUnix(path string) error {
	if err := prepareSocketDir(path); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("control socket %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("control socket %s: another process is serving it (is govs already running?)", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("control socket: removing stale %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.mu.Lock()
	s.socket = path
	s.mu.Unlock()
	s.serve(ln, s.Handler())
	s.log.Info("control API listening", "socket", path)
	return nil
}

// TCPOptions configure the API's TCP listener.
type TCPOptions struct {
	Addr      string // HOST:PORT
	TokenFile string // first line: the admin bearer token
	// ReadTokenFile's first line is a token that may only read (GET,
	// /metrics).
	ReadTokenFile string
	TLSCert       string // with TLSKey: serve HTTPS
	TLSKey        string
}

// ServeTCP serves the API, /metrics and the dashboard on TCP. Every request
// but those for the dashboard's static files must carry "Authorization:
// Bearer TOKEN": the admin token, or the read-only one for GET requests;
// without a token file it refuses to start. A token file that others can
// read, or that another user owns, is warned about.
// It returns the address it listens on.
func (s *Server) ServeTCP(o TCPOptions) (net.Addr, error) {
	if o.TokenFile == "" && o.ReadTokenFile == "" {
		return nil, errors.New("api http listener: no token_file configured; refusing to serve the API on TCP without a bearer token")
	}
	var admin, read []byte
	var err error
	if o.TokenFile != "" {
		if admin, err = s.readToken("token_file", o.TokenFile); err != nil {
			return nil, fmt.Errorf("api http listener: %w", err)
		}
	}
	if o.ReadTokenFile != "" {
		if read, err = s.readToken("read_token_file", o.ReadTokenFile); err != nil {
			return nil, fmt.Errorf("api http listener: %w", err)
		}
		if subtle.ConstantTimeCompare(admin, read) == 1 {
			return nil, errors.New("api http listener: read_token_file and token_file hold the same token; the read-only token must differ from the admin one")
		}
	}
	var tlsConfig *tls.Config
	if o.TLSCert != "" || o.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("api http listener: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("api http listener: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	// The dashboard's files hold no secret: served without the token, the
	// page asks the operator for it (dashboard.go).
	s.serve(ln, publicDashboard(requireToken(newTokens(admin, read), s.Handler())))
	s.log.Info("control API listening", "http", ln.Addr().String(), "tls", tlsConfig != nil)
	return ln.Addr(), nil
}

// readToken reads a bearer token: the file's first line, trimmed. key is
// the file's configuration key, for messages.
func (s *Server) readToken(key, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, fmt.Errorf("%s %s is empty", key, path)
	}
	if fi, err := os.Stat(path); err == nil {
		for _, w := range tokenFileWarnings(fi, os.Geteuid()) {
			s.log.Warn("api "+key+" is not private: "+w, "path", path)
		}
	}
	return []byte(line), nil
}

func (s *Server) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control API stopped", "err", err)
		}
	}()
}

// Close stops the listeners, waiting for requests in flight until ctx is
// done, and removes the socket.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	close(s.stop)
	servers, socket := s.servers, s.socket
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	if socket != "" {
		os.Remove(socket)
	}
	return errors.Join(errs...)
}

// Metrics serves /metrics; also served by Handler.
func (s *Server) Metrics() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(&Error{Message: "encoding the answer: " + err.Error(), Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// recorder keeps the status and headers of the mux's own 404 and 405
// answers and drops their text bodies.
type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }
