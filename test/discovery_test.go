package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/discovery"
	"github.com/govs-lb/govs/test/loopback"
)

// A discovery source the proof scenario drives: it makes the real system
// (a file, named, etcd) list servers, fail and come back.
type sourceDriver interface {
	// block is the discovery block's type-specific keys, YAML at the
	// indentation of the block's keys.
	block() string
	// set makes the source list these IP:PORT addresses.
	set(t *testing.T, addrs []string)
	// stop makes the source fail (an outage); start brings it back.
	stop(t *testing.T)
	start(t *testing.T)
}

// discoveryRun is a govs run with a discovery block, and its API.
type discoveryRun struct {
	vip    string
	key    string
	api    *api.Client
	daemon *daemon
}

func startDiscoveryGovs(t *testing.T, drv sourceDriver) *discoveryRun {
	t.Helper()
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	dir := t.TempDir()
	sock := filepath.Join(dir, "govs.sock")
	file := filepath.Join(dir, "govs.yaml")
	// rr spreads the load over every server; health checks apply to the
	// discovered servers; interval/settle short so the test runs fast;
	// confirm high and confirm_time long so that a held drop stays held
	// for the whole test; drain bounded by 20s.
	writeFile(t, file, fmt.Sprintf(`grace_period: 20s
virtual_servers:
  - name: web
    address: %s
    scheduler: rr
    health_check: {type: tcp, interval: 300ms, rise: 1, fall: 2}
    discovery:
      interval: 200ms
      settle: 300ms
      confirm: 1000
      confirm_time: 1h
%s    real_servers: []
`, vip, drv.block()))
	d := runDaemon(t, "govs", exec.Command(govsBin, "--socket", sock, "run", "-c", file), 5*time.Second)
	waitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	lastDiscoveryRun = &discoveryRun{vip: vip, key: "tcp/" + vip, api: api.NewUnixClient(sock), daemon: d}
	return lastDiscoveryRun
}

// lastDiscoveryRun is the run the last proof started, for a source's own
// checks after it.
var lastDiscoveryRun *discoveryRun

func (r *discoveryRun) status(t *testing.T) discovery.Status {
	t.Helper()
	rep, err := r.api.Discovery(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sources) != 1 {
		t.Fatalf("discovery sources %+v, want one", rep.Sources)
	}
	return rep.Sources[0]
}

// pool returns the service's real servers: address to origin, with
// " w0" after a server at weight 0.
func (r *discoveryRun) pool(t *testing.T) map[string]string {
	t.Helper()
	svc, err := r.api.Service(context.Background(), "tcp", r.vip)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, rs := range svc.RealServers {
		v := rs.Origin
		if rs.Weight == 0 {
			v += " w0"
		}
		out[rs.Address] = v
	}
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// load asks the VIP steadily from two clients, counting failures and the
// servers that answered.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	seen       map[string]time.Time // server name: start of its last connection
	errs       []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(vip string) *load {
	return startLoadWith(func() (string, error) { return ask(vip) })
}

// startLoadWith is startLoad with the client's own way to ask.
func startLoadWith(ask func() (string, error)) *load {
	l := &load{seen: map[string]time.Time{}, stop: make(chan struct{})}
	for range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				began := time.Now() // when it was scheduled, at the latest
				name, err := ask()
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
				} else {
					l.ok.Add(1)
					l.seen[name] = began
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) lastSeen(name string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[name]
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if l.failed.Load() != 0 {
		t.Errorf("%d client connections failed (%d succeeded): %v", l.failed.Load(), l.ok.Load(), l.errs)
	} else {
		t.Logf("%d client connections under the changes, none failed", l.ok.Load())
	}
}

// heldConn is an established connection through the VIP to one server.
func heldConn(t *testing.T, vip, want string) (net.Conn, *bufio.Reader) {
	t.Helper()
	for range 200 {
		c, err := net.DialTimeout("tcp", vip, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(60 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "hold\n")
		line, err := r.ReadString('\n')
		if err == nil && strings.HasPrefix(line, want+" ") {
			return c, r
		}
		c.Close()
	}
	t.Fatalf("no connection reached %s", want)
	return nil, nil
}

// testDiscoveryProof is the proof every source goes through, with real
// traffic through a real govs run to real servers on loopback: additions
// followed, removals drained (an established connection keeps working)
// then gone, an outage keeps the pool and says why, a sudden empty answer
// is held, and no client connection fails throughout.
func testDiscoveryProof(t *testing.T, drv sourceDriver) {
	a, b, c := loopback.LineServer(t, "a"), loopback.LineServer(t, "b"), loopback.LineServer(t, "c")
	drv.set(t, []string{a, b})
	r := startDiscoveryGovs(t, drv)
	waitFor(t, "a and b discovered and up", func() bool {
		p := r.pool(t)
		return len(p) == 2 && p[a] != "" && p[b] != "" && healthyCount(t, r) == 2
	})
	origin := r.status(t).Origin
	if p := r.pool(t); p[a] != origin {
		t.Fatalf("origin of %s is %q, want %q", a, p[a], origin)
	}
	l := startLoad(r.vip)
	defer func() {
		if l != nil {
			l.finish(t)
		}
	}()
	waitFor(t, "traffic on a and b", func() bool { return !l.lastSeen("a").IsZero() && !l.lastSeen("b").IsZero() })

	// A discovered server cannot be edited through the API.
	err := r.api.DeleteRealServer(context.Background(), "tcp", r.vip, a)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 409 || !strings.Contains(ae.Message, origin) {
		t.Fatalf("API delete of a discovered server: %v, want 409 naming %s", err, origin)
	}

	// Addition: c receives connections within the settle time (plus a
	// poll and the health check's rise).
	added := time.Now()
	drv.set(t, []string{a, b, c})
	waitFor(t, "traffic on c", func() bool { return l.lastSeen("c").After(added) })
	t.Logf("added server served %v after the source listed it", time.Since(added).Round(time.Millisecond))

	// Removal: b drains; an established connection through it keeps
	// working, new connections go elsewhere, then b leaves.
	conn, rd := heldConn(t, r.vip, "b")
	defer conn.Close()
	drv.set(t, []string{a, c})
	waitFor(t, "b at weight 0", func() bool { return r.pool(t)[b] == origin+" w0" })
	drained := time.Now()
	time.Sleep(time.Second)
	if last := l.lastSeen("b"); last.After(drained) {
		t.Fatalf("b took a new connection at %v, after it was drained at %v", last, drained)
	}
	fmt.Fprintf(conn, "still\n")
	if line, err := rd.ReadString('\n'); err != nil || line != "b still\n" {
		t.Fatalf("established connection through the draining server: %q, %v", line, err)
	}
	if _, ok := r.pool(t)[b]; !ok {
		t.Fatal("b left while a connection still ran through it")
	}
	conn.Close()
	waitFor(t, "b to leave once idle", func() bool { _, ok := r.pool(t)[b]; return !ok })

	// Outage: the pool stays, the status says why, and recovers.
	before := keys(r.pool(t))
	drv.stop(t)
	waitFor(t, "the outage in the status", func() bool { st := r.status(t); return !st.OK && st.LastError != "" })
	st := r.status(t)
	t.Logf("status during the outage: %s", st.Message)
	time.Sleep(time.Second)
	if got := keys(r.pool(t)); !slices.Equal(got, before) {
		t.Fatalf("pool during the outage %v, want %v", got, before)
	}
	drv.start(t)
	waitFor(t, "the source to recover", func() bool { return r.status(t).OK })
	if got := keys(r.pool(t)); !slices.Equal(got, before) {
		t.Fatalf("pool after the outage %v, want %v", got, before)
	}

	// A sudden empty answer is held: the pool stays.
	drv.set(t, nil)
	waitFor(t, "the empty answer held", func() bool { return r.status(t).Held != nil })
	time.Sleep(time.Second)
	if got := keys(r.pool(t)); !slices.Equal(got, before) {
		t.Fatalf("pool after an empty answer %v, want %v", got, before)
	}
	t.Logf("status with the empty answer: %s", r.status(t).Message)
	drv.set(t, []string{a, c})
	waitFor(t, "the held drop withdrawn", func() bool { return r.status(t).Held == nil })

	// A reload of the unchanged file keeps the discovered servers and
	// their source (no restart: the applies count does not move).
	applies := r.status(t).Applies
	r.daemon.signal(t, syscall.SIGHUP)
	waitFor(t, "the reload", func() bool { return strings.Contains(r.daemon.log(), "configuration reloaded") })
	time.Sleep(500 * time.Millisecond)
	if got := keys(r.pool(t)); !slices.Equal(got, before) {
		t.Fatalf("pool after a reload %v, want %v", got, before)
	}
	if st := r.status(t); st.Applies != applies {
		t.Fatalf("the reload restarted the source: applies %d, was %d", st.Applies, applies)
	}

	l.finish(t)
	l = nil
	if !strings.Contains(r.daemon.log(), "sudden drop held") {
		t.Error("the held drop is not logged")
	}
}

func healthyCount(t *testing.T, r *discoveryRun) int {
	hs, err := r.api.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, h := range hs {
		if h.Up && h.Checked {
			n++
		}
	}
	return n
}

// fileDriver writes the watched file; an outage deletes it.
type fileDriver struct {
	path string
	last []string
}

func (f *fileDriver) block() string {
	return "      type: file\n      path: " + f.path + "\n"
}

func (f *fileDriver) set(t *testing.T, addrs []string) {
	f.last = addrs
	var b strings.Builder
	b.WriteString("[")
	for i, a := range addrs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"address": %q, "weight": 1}`, a)
	}
	b.WriteString("]\n")
	writeFile(t, f.path, b.String())
}

func (f *fileDriver) stop(t *testing.T) {
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
}

func (f *fileDriver) start(t *testing.T) { f.set(t, f.last) }

func TestDiscoveryFile(t *testing.T) {
	testDiscoveryProof(t, &fileDriver{path: filepath.Join(t.TempDir(), "servers.json")})
}

// waitFor polls cond until it holds, failing the test after a minute: the
// discovery tests start daemons (named, etcd, dockerd) and wait for
// outages to be noticed, which take longer on a loaded machine than
// loopback.WaitFor's 30 s allow. Outcomes are asserted, not timings.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
