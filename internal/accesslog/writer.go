package accesslog

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Writer is an access-log sink: a JSON-lines file, or RFC 5424 syslog over
// UDP or TCP. Write never blocks the connection that ends: records go
// through a bounded queue to a goroutine that encodes and sends them, and
// a record that finds the queue full is dropped and counted (Dropped).
type Writer struct {
	target string
	out    output
	log    *slog.Logger

	q       chan Record
	reopen  chan struct{}
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

	written atomic.Uint64 // records sent (or handed to the kernel)
	dropped atomic.Uint64 // records lost: queue full, or the sink failed
}

// QueueSize is how many records wait for the sink at most.
const QueueSize = 8192

// output is where encoded records go. The writer's goroutine alone calls
// it.
type output interface {
	// frame appends one record, framed for the sink, to b.
	frame(b []byte, r *Record, now time.Time) []byte
	// flush sends b (whole frames); records holds how many it carries.
	flush(b []byte, records int) error
	// batch reports whether frames may be sent together (a stream).
	batch() bool
	reopen() error
	close() error
}

// ParseTarget checks an access_log target: an absolute file path, or
// syslog+udp://HOST:PORT / syslog+tcp://HOST:PORT.
func ParseTarget(t string) (kind, where string, err error) {
	if rest, ok := strings.CutPrefix(t, "syslog+"); ok {
		proto, addr, ok := strings.Cut(rest, "://")
		if !ok || (proto != "udp" && proto != "tcp") {
			return "", "", fmt.Errorf("invalid syslog target %q: want syslog+udp://HOST:PORT or syslog+tcp://HOST:PORT", t)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return "", "", fmt.Errorf("invalid syslog target %q: want HOST:PORT after %s://", t, proto)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("invalid port %q in syslog target %q", port, t)
		}
		return proto, addr, nil
	}
	if strings.Contains(t, "://") {
		return "", "", fmt.Errorf("invalid access_log target %q: true, an absolute file path, syslog+udp://HOST:PORT or syslog+tcp://HOST:PORT", t)
	}
	if !filepath.IsAbs(t) {
		return "", "", fmt.Errorf("access_log file %q must be an absolute path", t)
	}
	if strings.HasSuffix(t, "/") {
		return "", "", fmt.Errorf("access_log file %q is a directory", t)
	}
	return "file", filepath.Clean(t), nil
}

// OpenWriter starts a writer for target (ParseTarget). A file is opened (and
// created, mode 0640) at once, and an error returned if it cannot be; a
// syslog server is reached in the background, and records sent while it
// cannot be are dropped and counted. log receives the sink's errors, at
// most one a second.
func OpenWriter(target string, log *slog.Logger) (*Writer, error) {
	kind, where, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	var out output
	switch kind {
	case "file":
		f := &fileOut{path: where}
		if err := f.reopen(); err != nil {
			return nil, err
		}
		out = f
	default:
		out = newSyslogOut(kind, where)
	}
	w := &Writer{target: target, out: out, log: log, q: make(chan Record, QueueSize),
		reopen: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// Target is what the writer was opened with.
func (w *Writer) Target() string { return w.target }

// Write queues r; false (and counted as dropped) when the queue is full or
// the writer closed. It does not allocate.
func (w *Writer) Write(r *Record) bool {
	select {
	case w.q <- *r:
		return true
	default:
		w.dropped.Add(1)
		return false
	}
}

// Written and Dropped are the writer's counts, for /metrics.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped counts the records lost: queue full or sink failed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Reopen asks the writer to reopen its file (logrotate moved it) or to
// reconnect to its syslog server; the records queued meanwhile are kept.
func (w *Writer) Reopen() {
	select {
	case w.reopen <- struct{}{}:
	default:
	}
}

// Close writes what is queued (a bounded time) and closes the sink.
func (w *Writer) Close() error {
	w.once.Do(func() { close(w.closing) })
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		return errors.New("access log: queue not written within 5s")
	}
	return w.out.close()
}

func (w *Writer) loop() {
	defer close(w.done)
	buf := make([]byte, 0, 64<<10)
	var lastErr time.Time
	fail := func(err error, lost int) {
		w.dropped.Add(uint64(lost))
		if now := time.Now(); now.Sub(lastErr) >= time.Second && w.log != nil {
			lastErr = now
			w.log.Warn("access log write failed", "target", w.target, "err", err, "dropped_total", w.dropped.Load())
		}
	}
	send := func(r *Record, n *int) {
		buf = w.out.frame(buf, r, time.Now())
		*n++
		if !w.out.batch() || len(buf) >= 60<<10 {
			w.flush(&buf, n, fail)
		}
	}
	var r Record // one for the loop: it escapes (to the sink's interface)
	for {
		n := 0
		select {
		case r = <-w.q:
			send(&r, &n)
			// Take what else is queued before writing: one write a batch.
		more:
			for len(buf) < 60<<10 {
				select {
				case r = <-w.q:
					send(&r, &n)
				default:
					break more
				}
			}
			w.flush(&buf, &n, fail)
		case <-w.reopen:
			if err := w.out.reopen(); err != nil {
				fail(err, 0)
			}
		case <-w.closing:
			for {
				select {
				case r = <-w.q:
					send(&r, &n)
				default:
					w.flush(&buf, &n, fail)
					return
				}
			}
		}
	}
}

func (w *Writer) flush(buf *[]byte, n *int, fail func(error, int)) {
	if *n == 0 {
		return
	}
	if err := w.out.flush(*buf, *n); err != nil {
		fail(err, *n)
	} else {
		w.written.Add(uint64(*n))
	}
	*buf, *n = (*buf)[:0], 0
}

// fileOut is a JSON-lines file, opened for appending; reopen opens the
// path again (after logrotate renamed it) and closes the old file.
type fileOut struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (o *fileOut) frame(b []byte, r *Record, _ time.Time) []byte { return r.AppendJSON(b) }
func (o *fileOut) batch() bool                                   { return true }

func (o *fileOut) flush(b []byte, _ int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return errors.New("access log file not open")
	}
	_, err := o.f.Write(b)
	return err
}

func (o *fileOut) reopen() error {
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	o.mu.Lock()
	old := o.f
	o.f = f
	o.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (o *fileOut) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}
