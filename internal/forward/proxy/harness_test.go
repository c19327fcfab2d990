package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// testLog is quiet unless GOVS_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("GOVS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// backend is a TCP real server on loopback that answers each line with its
// name and the line, so tests see who served them.
type backend struct {
	name string
	addr string
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	return &backend{name: name, addr: loopback.LineServer(t, name)}
}

// startDirector runs a director with the proxy dataplane on the YAML config;
// the test's cleanup shuts it down.
func startDirector(t *testing.T, yaml string) *director.Director {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	d := director.New(testLog(), New(testLog()))
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d
}

func apply(t *testing.T, d *director.Director, yaml string) error {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		return err
	}
	return d.Apply(cfg)
}

// ask sends one line over a new connection and returns the answer's first
// word. Its waits are generous (the package's tests run beside the whole
// suite on two loaded cores): a refusal or a reset still fails at once,
// slowness does not count as a failed connection.
func ask(t *testing.T, addr string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	if line[len(line)-len(" hello\n"):] != " hello\n" {
		return "", fmt.Errorf("unexpected answer %q", line)
	}
	return strings.Fields(line)[0], nil
}

func newDirector(dp *Proxy) *director.Director { return director.New(testLog(), dp) }

// newDirectorFromText starts a director for benchmarks.
func newDirectorFromText(tb testing.TB, yaml string) *director.Director {
	cfg, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		tb.Fatal(err)
	}
	d := director.New(testLog(), New(testLog()))
	if err := d.Apply(cfg); err != nil {
		tb.Fatal(err)
	}
	return d
}
