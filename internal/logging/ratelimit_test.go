package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func lines(b *bytes.Buffer) []string     { return strings.Split(strings.TrimSpace(b.String()), "\n") }
func count(ls []string, sub string) (n int) {
	for _, l := range ls {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func setup(burst int) (*bytes.Buffer, *fakeClock, *RateLimit, *slog.Logger) {
	var buf bytes.Buffer
	c := newClock()
	h := NewRateLimit(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}), Limits{Burst: burst, Window: time.Second, Now: c.now})
	return &buf, c, h, slog.New(h)
}

// A flood of one warning passes Burst lines per window; the next line after
// the window carries the count of those suppressed, and every record is
// either written or counted.
func TestRateLimitCarriesCount(t *testing.T) {
	buf, c, _, log := setup(3)
	for i := range 100 {
		log.Warn("refused", "client", i)
	}
	if n := count(lines(buf), "msg=refused"); n != 3 {
		t.Fatalf("%d lines in the first window, want 3:\n%s", n, buf)
	}
	c.add(time.Second)
	log.Warn("refused", "client", 100)
	ls := lines(buf)
	if last := ls[len(ls)-1]; !strings.Contains(last, "client=100") || !strings.Contains(last, "suppressed=97") {
		t.Fatalf("first line of the next window = %q, want client=100 suppressed=97", last)
	}
}

// Flush reports a window that ended with suppressions when no later record
// of the message came, with the attributes of the suppressed records'
// logger, once.
func TestRateLimitFlush(t *testing.T) {
	buf, c, h, log := setup(2)
	log = log.With("component", "proxy")
	for range 10 {
		log.Warn("dropped")
	}
	h.Flush(context.Background()) // window not over: nothing yet
	if n := count(lines(buf), SuppressedMsg); n != 0 {
		t.Fatalf("flushed a running window:\n%s", buf)
	}
	c.add(1500 * time.Millisecond)
	h.Flush(context.Background())
	h.Flush(context.Background())
	ls := lines(buf)
	if n := count(ls, SuppressedMsg); n != 1 {
		t.Fatalf("%d suppression reports, want 1:\n%s", n, buf)
	}
	last := ls[len(ls)-1]
	for _, want := range []string{"level=WARN", "message=dropped", "suppressed=8", "component=proxy"} {
		if !strings.Contains(last, want) {
			t.Errorf("report %q lacks %s", last, want)
		}
	}
	// The next record starts a fresh window and carries nothing.
	log.Warn("dropped")
	if ls := lines(buf); strings.Contains(ls[len(ls)-1], "suppressed") {
		t.Errorf("count reported twice: %q", ls[len(ls)-1])
	}
}

// Messages are limited apart, so are services and backends of one message
// (not clients); warnings are limited, the access log below them and
// errors above them are not.
func TestRateLimitKeysAndLevels(t *testing.T) {
	buf, _, h, log := setup(1)
	for i := range 5 {
		log.Warn("a", "client", i)
		log.Warn("b")
		log.Warn("down", "service", "web", "backend", "10.0.0.1:80")
		log.Warn("down", "service", "web", "backend", "10.0.0.2:80")
		log.Error("reload rejected", "err", i)
		log.Info("connection")
	}
	ls := lines(buf)
	if count(ls, "msg=a") != 1 || count(ls, "msg=b") != 1 {
		t.Errorf("want one line per message:\n%s", buf)
	}
	if count(ls, "backend=10.0.0.1:80") != 1 || count(ls, "backend=10.0.0.2:80") != 1 {
		t.Errorf("want one line per backend:\n%s", buf)
	}
	if n := count(ls, "msg=\"reload rejected\""); n != 5 {
		t.Errorf("%d error lines, want all 5", n)
	}
	if n := count(ls, "msg=connection"); n != 5 {
		t.Errorf("%d info lines, want all 5", n)
	}
	h.FlushAll(context.Background())
	ls = lines(buf)
	if n := count(ls, SuppressedMsg); n != 4 {
		t.Errorf("FlushAll: %d reports, want 4:\n%s", n, buf)
	}
	if n := count(ls, `of="service=web backend=10.0.0.2:80" suppressed=4`); n != 1 {
		t.Errorf("the report does not name the backend:\n%s", buf)
	}
}

// Past MaxKeys distinct messages, new ones pass rather than grow the table.
func TestRateLimitMaxKeys(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	h := NewRateLimit(slog.NewTextHandler(&buf, nil), Limits{Burst: 1, MaxKeys: 2, Now: c.now})
	log := slog.New(h)
	for range 3 {
		log.Warn("x")
		log.Warn("y")
		log.Warn("z")
	}
	ls := lines(&buf)
	if count(ls, "msg=x") != 1 || count(ls, "msg=y") != 1 || count(ls, "msg=z") != 3 {
		t.Errorf("want x and y limited, z unlimited:\n%s", buf.String())
	}
	if len(h.state.keys) > 2 {
		t.Errorf("%d keys tracked, want at most 2", len(h.state.keys))
	}
}
