// Package logging holds the daemon's slog plumbing: a handler that keeps a
// flood of one repeated warning (one per refused connection or dropped
// datagram under attack) from flooding the log.
package logging

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limits of a RateLimit handler.
type Limits struct {
	// Records from Level up to, not including, Above are limited; the
	// others always pass: the access log and debug lines below, errors
	// (a rejected reload's list of errors, say) above. Defaults
	// slog.LevelWarn and slog.LevelError: warnings are what floods.
	Level slog.Level
	Above slog.Level
	// Burst records of one level and message pass per Window; the rest are
	// counted and reported once the window is over. Defaults 5 and 1s.
	Burst  int
	Window time.Duration
	// MaxKeys bounds how many distinct messages are tracked (default
	// 1024); past it, new messages pass unlimited rather than grow memory.
	MaxKeys int
	// Now is the clock (tests pass a fake one); default time.Now.
	Now func() time.Time
}

// SuppressedMsg is the message of the line that reports how many records of
// one message a window suppressed, when no later record of that message
// carries the count.
const SuppressedMsg = "repeated log message suppressed"

// RateLimit wraps a handler so that repeated records (same level and
// message, and the same service, backend and instance attributes when they
// have them; other attributes, the client's say, aside) pass at most Burst
// times per Window. The identity attributes keep one real server going down
// from hiding another's going down, and are bounded by the configuration,
// where clients are not. The first
// record of the message after a window with suppressions carries
// suppressed=N; Flush reports windows that ended with suppressions and no
// later record, so no count is lost.
type RateLimit struct {
	next  slog.Handler
	state *limitState
}

type limitKey struct {
	level slog.Level
	msg   string
	ident string // service, backend, instance values
}

// identAttrs are the attributes that tell records of one message apart for
// the limiter.
var identAttrs = map[string]bool{"service": true, "backend": true, "instance": true}

func keyOf(r slog.Record) limitKey {
	k := limitKey{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if identAttrs[a.Key] {
			k.ident += a.Key + "=" + a.Value.String() + " "
		}
		return true
	})
	return k
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
	// h is the handler (with its attributes and groups) of the last
	// suppressed record, which reports the count if Flush has to.
	h slog.Handler
}

type limitState struct {
	lim  Limits
	mu   sync.Mutex
	keys map[limitKey]*window
}

// NewRateLimit returns next behind a rate limiter.
func NewRateLimit(next slog.Handler, lim Limits) *RateLimit {
	if lim.Level == 0 && lim.Above == 0 {
		lim.Level, lim.Above = slog.LevelWarn, slog.LevelError
	}
	if lim.Burst <= 0 {
		lim.Burst = 5
	}
	if lim.Window <= 0 {
		lim.Window = time.Second
	}
	if lim.MaxKeys <= 0 {
		lim.MaxKeys = 1024
	}
	if lim.Now == nil {
		lim.Now = time.Now
	}
	return &RateLimit{next: next, state: &limitState{lim: lim, keys: map[limitKey]*window{}}}
}

// Enabled implements slog.Handler.
func (h *RateLimit) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler; derived handlers share the limits.
func (h *RateLimit) WithAttrs(as []slog.Attr) slog.Handler {
	return &RateLimit{next: h.next.WithAttrs(as), state: h.state}
}

// WithGroup implements slog.Handler; derived handlers share the limits.
func (h *RateLimit) WithGroup(name string) slog.Handler {
	return &RateLimit{next: h.next.WithGroup(name), state: h.state}
}

// Handle implements slog.Handler.
func (h *RateLimit) Handle(ctx context.Context, r slog.Record) error {
	s := h.state
	if r.Level < s.lim.Level || r.Level >= s.lim.Above {
		return h.next.Handle(ctx, r)
	}
	now := s.lim.Now()
	k := keyOf(r)
	s.mu.Lock()
	w := s.keys[k]
	if w == nil {
		if len(s.keys) >= s.lim.MaxKeys {
			s.mu.Unlock()
			s.Flush(ctx) // drops ended windows, making room
			return h.next.Handle(ctx, r)
		}
		w = &window{start: now}
		s.keys[k] = w
	}
	carried := 0
	if now.Sub(w.start) >= s.lim.Window {
		carried = w.suppressed
		w.start, w.passed, w.suppressed, w.h = now, 0, 0, nil
	}
	if w.passed >= s.lim.Burst {
		w.suppressed++
		w.h = h.next
		s.mu.Unlock()
		return nil
	}
	w.passed++
	s.mu.Unlock()
	if carried > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", carried))
	}
	return h.next.Handle(ctx, r)
}

// Flush reports, one line each, the windows that ended with suppressed
// records, and forgets windows that ended without. The daemon calls it
// every second or so, and once before it exits.
func (h *RateLimit) Flush(ctx context.Context) { h.state.Flush(ctx) }

// FlushAll reports every suppressed count, ended windows or not: for exit.
func (h *RateLimit) FlushAll(ctx context.Context) { h.state.flush(ctx, true) }

func (s *limitState) Flush(ctx context.Context) { s.flush(ctx, false) }

func (s *limitState) flush(ctx context.Context, all bool) {
	now := s.lim.Now()
	type report struct {
		k limitKey
		n int
		h slog.Handler
	}
	var out []report
	s.mu.Lock()
	for k, w := range s.keys {
		if !all && now.Sub(w.start) < s.lim.Window {
			continue
		}
		if w.suppressed > 0 {
			out = append(out, report{k, w.suppressed, w.h})
		}
		delete(s.keys, k)
	}
	s.mu.Unlock()
	for _, rp := range out {
		r := slog.NewRecord(now, rp.k.level, SuppressedMsg, 0)
		r.AddAttrs(slog.String("message", rp.k.msg))
		if rp.k.ident != "" {
			r.AddAttrs(slog.String("of", rp.k.ident[:len(rp.k.ident)-1]))
		}
		r.AddAttrs(slog.Int("suppressed", rp.n))
		rp.h.Handle(ctx, r)
	}
}
