package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Config is govs agent's command line.
type Config struct {
	Listen string
	// Allow lists the client networks answered; empty means loopback only
	// (127.0.0.0/8 and ::1): an agent must be told which directors may
	// read it.
	Allow       []netip.Prefix
	ServicePort uint16
	ProbeURL    string
	ProcRoot    string
	StateFile   string        // "": the operator's state is always up
	Interval    time.Duration // sampling period, DefaultInterval if 0
	Tau         time.Duration // smoothing, DefaultTau if 0
	Log         *slog.Logger
	Now         func() time.Time // the clock; time.Now if nil
}

// DefaultInterval is the sampling period: a reply is at most this old.
const DefaultInterval = time.Second

// DefaultStateFile is where `govs agent state` writes and the agent reads
// the operator's word (the systemd unit's StateDirectory).
const DefaultStateFile = "/var/lib/govs-agent/state"

// Loopback is what Allow means when empty.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Allowed reports whether a client at addr may read the agent.
func Allowed(allow []netip.Prefix, addr netip.Addr) bool {
	if len(allow) == 0 {
		allow = Loopback
	}
	addr = addr.Unmap()
	for _, p := range allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Server samples the machine and answers agent checks.
type Server struct {
	cfg   Config
	ln    net.Listener
	reply atomic.Pointer[[]byte] // the current line, newline included
	est   *Estimator
	proc  Proc
	state State
	stamp fileStamp
}

// Listen opens the agent's port and takes a first sample, so that the
// first connection gets an answer.
func Listen(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("agent: listen: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln, est: NewEstimator(cfg.Tau),
		proc: Proc{Root: cfg.ProcRoot, ServicePort: cfg.ServicePort, ProbeURL: cfg.ProbeURL}}
	s.tick(ctx)
	return s, nil
}

// Addr is the address the agent listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Reply is the line the agent answers now, without its newline.
func (s *Server) Reply() string { return string(bytes.TrimSuffix(*s.reply.Load(), []byte("\n"))) }

// Serve samples every Interval and answers connections until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.tick(ctx)
			}
		}
	}()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: wait instead of spinning.
			s.cfg.Log.Warn("agent: accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.answer(c)
	}
}

// answer writes the line and closes, in the accept loop itself: the line is
// far smaller than a socket buffer, so the write never waits on the client,
// and no goroutine per connection can pile up. Nothing is read from the
// client (HAProxy's agent-send string, if configured, is ignored).
func (s *Server) answer(c net.Conn) {
	tc, _ := c.(*net.TCPConn)
	ra, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok || !Allowed(s.cfg.Allow, ra.AddrPort().Addr()) {
		if tc != nil {
			tc.SetLinger(0) // a reset: nothing said to a stranger
		}
		c.Close()
		s.cfg.Log.Debug("agent: refused", "client", c.RemoteAddr().String())
		return
	}
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write(*s.reply.Load())
	c.Close()
}

// tick takes a sample, re-reads the state file if it changed, and
// publishes the new line.
func (s *Server) tick(ctx context.Context) {
	s.readState()
	now := s.cfg.Now()
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	smp, err := s.proc.Sample(sctx, now)
	cancel()
	if err != nil {
		s.cfg.Log.Warn("agent: sample", "err", err)
	}
	if smp.ProbeErr != "" {
		s.cfg.Log.Debug("agent: probe", "err", smp.ProbeErr)
	}
	s.est.Observe(smp)
	line := append(s.est.Figures().AppendReply(make([]byte, 0, 128), s.state), '\n')
	s.reply.Store(&line)
}

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

// readState re-reads the state file when its modification time or size
// changed. A missing file is up; a file that cannot be read or holds
// something else keeps the state as it was, with a warning.
func (s *Server) readState() {
	if s.cfg.StateFile == "" {
		return
	}
	fi, err := os.Stat(s.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		if s.stamp.ok || s.state != StateUp {
			s.setState(StateUp, "state file removed")
		}
		s.stamp = fileStamp{}
		return
	}
	if err != nil {
		s.cfg.Log.Warn("agent: state file", "err", err)
		return
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
	if st == s.stamp {
		return
	}
	s.stamp = st
	st2, err := ReadStateFile(s.cfg.StateFile)
	if err != nil {
		s.cfg.Log.Warn("agent: state file", "err", err)
		return
	}
	if st2 != s.state {
		s.setState(st2, "state file")
	}
}

func (s *Server) setState(st State, why string) {
	s.cfg.Log.Info("agent: operator state", "state", st.String(), "from", s.state.String(), "by", why)
	s.state = st
}

// ReadStateFile reads the operator's word: the file's first word, up,
// drain or maint; an empty file is up.
func ReadStateFile(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return StateUp, nil
	}
	if err != nil {
		return StateUp, err
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return StateUp, nil
	}
	st, ok := ParseState(string(f[0]))
	if !ok {
		return StateUp, fmt.Errorf("%s:1: %q is not up, drain or maint", path, f[0])
	}
	return st, nil
}

// WriteStateFile writes the operator's word atomically (a new file renamed
// over the old one: the agent never reads half a word), readable by all so
// that an agent running as another user reads it.
func WriteStateFile(path string, st State) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(st.String() + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
