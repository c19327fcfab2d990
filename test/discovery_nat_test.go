package test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/discovery"
)

// TestDiscoveryNAT: discovered real servers under kernel NAT forwarding,
// with the director and discovery runner wired as govs run wires them
// (in this process, so the lab's namespaces hold the kernel state): an
// added server takes connections, a removed one drains (its established
// flow keeps working) and leaves, a deleted file keeps the pool, and no
// client connection fails.
func TestDiscoveryNAT(t *testing.T) {
	l := newNATLab(t, 3)
	l.serveTCP(8090)
	file := filepath.Join(t.TempDir(), "servers.json")
	list := func(idx ...int) {
		var parts []string
		for _, i := range idx {
			parts = append(parts, fmt.Sprintf(`{"address": "%s"}`, netip.AddrPortFrom(l.RealAddrs[i], 8090)))
		}
		writeFile(t, file, "["+strings.Join(parts, ", ")+"]\n")
	}
	list(0, 1)
	cfgText := fmt.Sprintf(`grace_period: 20s
virtual_servers:
  - name: web
    address: "%s"
    scheduler: rr
    forwarding: nat
    discovery: {type: file, path: %s, interval: 200ms, settle: 300ms, drain: 3s}
    real_servers: []
`, l.vip(8090), file)
	l.apply(cfgText)
	r := discovery.NewRunner(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), l.d)
	t.Cleanup(r.Stop)
	r.Apply(l.d.Config())
	key := "tcp/" + l.vip(8090).String()
	pool := func() map[string]int {
		out := map[string]int{}
		for _, rs := range l.d.Service(key).RealServers() {
			out[rs.Addr.Addr().String()] = *rs.Config().Weight
		}
		return out
	}
	waitFor(t, "rs1 and rs2 discovered", func() bool { return len(pool()) == 2 })

	var ok, failed atomic.Int64
	var mu sync.Mutex
	seen := map[string]time.Time{}
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			began := time.Now() // when it was scheduled, at the latest
			name, _, err := l.askOnce(8090)
			mu.Lock()
			if err != nil {
				failed.Add(1)
				errs = append(errs, err.Error())
			} else {
				ok.Add(1)
				seen[name] = began
			}
			mu.Unlock()
		}
	}()
	last := func(name string) time.Time { mu.Lock(); defer mu.Unlock(); return seen[name] }
	finish := func() {
		close(stop)
		wg.Wait()
		if failed.Load() != 0 {
			t.Errorf("%d client connections failed (%d succeeded): %v", failed.Load(), ok.Load(), errs)
		} else {
			t.Logf("%d client connections under the changes, none failed", ok.Load())
		}
	}
	defer func() {
		if stop != nil {
			finish()
		}
	}()

	added := time.Now()
	list(0, 1, 2)
	waitFor(t, "traffic on rs3", func() bool { return last("rs3").After(added) })

	// Hold a flow to rs1, then remove rs1 from the file.
	held := l.flowTo(8090, "rs1")
	defer held.c.Close()
	list(1, 2)
	rs1 := l.RealAddrs[0].String()
	waitFor(t, "rs1 at weight 0", func() bool { w, ok := pool()[rs1]; return ok && w == 0 })
	drained := time.Now()
	time.Sleep(time.Second)
	if last("rs1").After(drained) {
		t.Fatal("rs1 took a new connection after it was drained")
	}
	if name, _, err := held.ask(); err != nil || name != "rs1" {
		t.Fatalf("established flow through the draining rs1: %q, %v", name, err)
	}
	waitFor(t, "rs1 to leave", func() bool { _, ok := pool()[rs1]; return !ok })
	if name, _, err := held.ask(); err != nil || name != "rs1" {
		t.Fatalf("established flow after rs1 left (within grace_period): %q, %v", name, err)
	}

	// The file's deletion keeps the pool.
	os.Remove(file)
	waitFor(t, "the outage in the status", func() bool { return !r.Status()[0].OK })
	time.Sleep(time.Second)
	if n := len(pool()); n != 2 {
		t.Fatalf("pool of %d during the outage, want 2", n)
	}
	finish()
	stop = nil
}
