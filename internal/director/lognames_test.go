package director

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logs name a service by its configured name with its address apart, and
// a service with no quorum configured logs no quorum transitions (the
// default quorum of 1 is implied; "real server down" says it all).
func TestLogNamesAndImplicitQuorum(t *testing.T) {
	var logs lockedBuffer
	d := New(slog.New(slog.NewTextHandler(&logs, nil)), healthDataplane{})
	t.Cleanup(func() { d.Shutdown(time.Second) })
	a := startHCBackend(t)
	applyYAML(t, d, fmt.Sprintf(`
virtual_servers:
  - name: web
    address: 127.0.0.1:80
    health_check: {type: tcp, interval: 20ms, rise: 1, fall: 1}
    real_servers: [{address: %s}]
`, a.addr))
	vs := d.Service("tcp/127.0.0.1:80")
	a.down()
	loopback.WaitFor(t, "the real server down", func() bool { return strings.Contains(logs.String(), "real server down") })
	a.up()
	loopback.WaitFor(t, "the real server up", func() bool { return strings.Contains(logs.String(), "real server up") })
	if !vs.QuorumUp() {
		t.Error("quorum not back")
	}
	out := logs.String()
	if !strings.Contains(out, `msg="virtual service added" service=web address=tcp/127.0.0.1:80 forwarding=proxy`) {
		t.Errorf("service added line lacks the name and address:\n%s", out)
	}
	if strings.Contains(out, "quorum") {
		t.Errorf("quorum logged for a service without one:\n%s", out)
	}
}
