package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// killableServer is a real server's line server whose death a test can
// cause: its listener closes and its connections are reset, as when the
// process dies.
type killableServer struct {
	name  string
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	dead  bool
}

func serveKillable(t *testing.T, ns *netns.NS, name string, addr netip.AddrPort) *killableServer {
	t.Helper()
	s := &killableServer{name: name, conns: map[net.Conn]bool{}}
	if err := ns.Do(func() (err error) { s.ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.dead {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = true
			s.mu.Unlock()
			go func() {
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
				}
			}()
		}
	}()
	return s
}

func (s *killableServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	s.ln.Close()
	for c := range s.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

// loadResult is one request of the load.
type loadResult struct {
	worker int // which of the short-connection clients
	start  time.Time
	dur    time.Duration // how long the connection took, dial to answer
	server string
	err    error
}

// The govs binary in the director namespace of an LVS-NAT topology, wlc
// through NFQUEUE with tcp health checks, under a load of short
// connections and of long ones that keep talking:
//
//  1. five SIGHUP reloads change the weights and twice the scheduler
//     (wlc, run by govs, to rr, run by the kernel, and back): not one
//     connection, new or established, fails;
//  2. one real server dies: after its health check takes it out, every new
//     connection succeeds on the others, and the established connections
//     to the others never notice.
func TestNATBinaryUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon under load")
	}
	lab := netns.NewLVS(t, 3)
	// The lab's helpers (nat_test.go) without its in-process director:
	// here govs is the binary.
	l := &natLab{LVS: lab, t: t}
	const port = 80
	servers := l.serveTCP(port)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "govs.yaml")
	writeConfig := func(sched string, weights ...int) {
		var b strings.Builder
		fmt.Fprintf(&b, "grace_period: 5s\nvirtual_servers:\n  - name: web\n    address: \"%s:%d\"\n    scheduler: %s\n"+
			"    forwarding: nat\n    health_check: {type: tcp, interval: 100ms, timeout: 100ms, rise: 1, fall: 2}\n"+
			"    real_servers:\n", lab.VIP, port, sched)
		for i, a := range lab.RealAddrs {
			fmt.Fprintf(&b, "      - {address: \"%s:%d\", weight: %d}\n", a, port, weights[i])
		}
		writeFile(t, cfgPath, b.String())
	}
	writeConfig("wlc", 1, 1, 1)

	sock := filepath.Join(dir, "govs.sock")
	d := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", lab.Director.Name, govsBin, "--socket", sock, "run", "-c", cfgPath),
		15*time.Second)
	askOnce := func() (string, error) {
		name, _, err := l.askOnce(port)
		return name, err
	}
	loopback.WaitFor(t, "govs to serve the VIP", func() bool { _, err := askOnce(); return err == nil })
	client := api.NewUnixClient(sock)
	untranslated := countUntranslatedSYNs(t, lab, port)

	// The load, bounded in count and time: short connections from three
	// clients, and twelve long ones asking every 20 ms.
	stop := make(chan struct{})
	deadline := time.Now().Add(40 * time.Second)
	var (
		mu      sync.Mutex
		results []loadResult
		longs   []loadResult // failures of long connections, with their server
		wg      sync.WaitGroup
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 20000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				r := loadResult{worker: w, start: time.Now()}
				r.server, r.err = askOnce()
				r.dur = time.Since(r.start)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	for range 12 {
		cc, err := l.dial(port)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.c.Close()
		server, _, err := cc.ask()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if got, _, err := cc.ask(); err != nil || got != server {
					mu.Lock()
					longs = append(longs, loadResult{start: time.Now(), server: server, err: fmt.Errorf("answered by %q: %v", got, err)})
					mu.Unlock()
					return
				}
			}
		}()
	}
	failures := func(from, to time.Time) (n, total int, first error) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range results {
			if r.start.Before(from) || !r.start.Before(to) {
				continue
			}
			total++
			if r.err != nil {
				n++
				if first == nil {
					first = r.err
				}
			}
		}
		return n, total, first
	}
	// slowest is the longest of the connections started in [from, to),
	// and how many took slow or more.
	slowest := func(from, to time.Time, slow time.Duration) (longest loadResult, n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range results {
			if r.start.Before(from) || !r.start.Before(to) {
				continue
			}
			if r.dur >= slow {
				n++
			}
			if r.dur > longest.dur {
				longest = r
			}
		}
		return longest, n
	}

	// 1. Reloads under load. Each reload is waited for (its line in the
	// log), then runs under at least 10 new connections: a loaded machine
	// slows the clients down, and a fixed pace would leave a reload
	// without traffic (or the window without the 50 connections asserted).
	synsBefore := synRetransmits(t, lab.Client)
	t0 := time.Now()
	time.Sleep(300 * time.Millisecond)
	for i, step := range []struct {
		sched   string
		weights []int
	}{{"wlc", []int{3, 2, 1}}, {"rr", []int{1, 1, 1}}, {"rr", []int{2, 1, 1}}, {"wlc", []int{1, 2, 3}}, {"wlc", []int{1, 1, 1}}} {
		mark := time.Now()
		reloads := strings.Count(d.log(), "configuration reloaded")
		writeConfig(step.sched, step.weights...)
		d.cmd.Process.Signal(syscall.SIGHUP)
		waitFor(t, fmt.Sprintf("reload %d in the log", i+1), func() bool { return strings.Count(d.log(), "configuration reloaded") > reloads })
		time.Sleep(400 * time.Millisecond)
		waitFor(t, fmt.Sprintf("10 new connections since reload %d", i+1), func() bool {
			_, n, _ := failures(mark, time.Now().Add(time.Hour))
			return n >= 10
		})
	}
	t1 := time.Now()
	// The connections started during the reloads end before rs1 dies:
	// one that rs1 refused once dead is not a reload's doing.
	loopback.WaitFor(t, "the connections started during the reloads to end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		var after [3]bool
		for _, r := range results {
			if !r.start.Before(t1) {
				after[r.worker] = true
			}
		}
		return after == [3]bool{true, true, true}
	})
	// Every connection started during the reloads has ended: any SYN of
	// theirs that went unanswered (dropped while queued to govs) was
	// retransmitted by now.
	synsReloads := synRetransmits(t, lab.Client) - synsBefore

	// 2. A real server dies under load.
	killed := time.Now()
	servers[0].kill()
	loopback.WaitFor(t, "the health check to take rs1 out", func() bool {
		hs, err := client.Health(context.Background())
		if err != nil {
			return false
		}
		for _, h := range hs {
			if h.Backend == netip.AddrPortFrom(lab.RealAddrs[0], port).String() {
				return !h.Up
			}
		}
		return false
	})
	down := time.Now()
	// 1.5 s of load and at least 50 new connections after the second
	// that follows the take-out (below): waited for, not slept, since a
	// loaded machine makes fewer connections in a given time.
	time.Sleep(2500 * time.Millisecond)
	waitFor(t, "50 new connections a second after rs1 was taken out", func() bool {
		_, n, _ := failures(down.Add(time.Second), time.Now().Add(time.Hour))
		return n >= 50
	})
	close(stop)
	wg.Wait()
	end := time.Now()
	// Every request has ended: count by when each started.
	n, total, first := failures(t0, t1)
	mu.Lock()
	var longBefore []loadResult
	for _, r := range longs {
		if r.start.Before(killed) {
			longBefore = append(longBefore, r)
		}
	}
	mu.Unlock()
	// Not one connection, new or established, may fail. (The failures
	// once seen here, "connection refused" about one in 3,000, were the
	// connections started just before rs1 was killed, which its dead
	// listener refused: rs1 now dies only once they have ended.)
	if n > 0 || len(longBefore) > 0 || total < 50 {
		t.Errorf("reloads under load: %d of %d new connections failed (first: %v), %d established ones broke: %v",
			n, total, first, len(longBefore), longBefore)
	}
	// A reload replaces the service chains and maps, not the table: its
	// hooks stay, so the first packets queued to govs at that moment are
	// not dropped. A dropped SYN is retransmitted after 1 s: the client's
	// kernel counts that (TCPSynRetrans), where a connection's duration
	// would also count a loaded machine's delays in the test's own
	// clients.
	const slow = 900 * time.Millisecond
	longest, nSlow := slowest(t0, t1, slow)
	if synsReloads != 0 {
		t.Errorf("reloads under load: %d SYNs retransmitted (a SYN dropped, or unanswered for 1 s); %d of %d new connections took %v or more (slowest %v, started %v into the reloads: %v)",
			synsReloads, nSlow, total, slow, longest.dur.Round(time.Millisecond), longest.start.Sub(t0).Round(time.Millisecond), longest.err)
	} else if nSlow > 0 {
		t.Logf("reloads under load: no SYN retransmitted; %d of %d new connections took %v or more (slowest %v): the machine's load", nSlow, total, slow, longest.dur.Round(time.Millisecond))
	}
	during, duringTotal, _ := failures(killed, down)
	// Once the check has taken rs1 out, the rules change at once, but a
	// client that was refused by rs1 and reuses its port finds the dead
	// flow's conntrack entry (and rs1) again until govs deletes it, which
	// takes one conntrack dump (about 0.5 s here with the race detector):
	// from a second on, not one new connection may fail.
	after, afterTotal, firstAfter := failures(down.Add(time.Second), end)
	if after > 0 || afterTotal < 50 {
		t.Errorf("after rs1 was taken out: %d of %d new connections failed (first: %v)", after, afterTotal, firstAfter)
	}
	// No SYN to the VIP ever reached the director's own stack: every new
	// flow was translated, during the reloads and after rs1 died.
	if n := untranslated(); n != 0 {
		t.Errorf("%d SYNs to the VIP reached the director's own stack untranslated", n)
	}
	mu.Lock()
	for _, r := range longs {
		if r.server != "rs1" {
			t.Errorf("an established connection to %s broke: %v", r.server, r.err)
		}
	}
	mu.Unlock()
	t.Logf("reloads: %d new connections, %d failed, slowest %v; rs1 died: taken out after %v; %d of %d new connections failed meanwhile (the kernel sent them to the dead server), %d of %d after",
		total, n, longest.dur.Round(time.Millisecond), down.Sub(killed).Round(time.Millisecond), during, duringTotal, after, afterTotal)
}

// synRetransmits is the count of SYNs ns's TCP stack has retransmitted
// (TcpExt TCPSynRetrans): a connect whose SYN went unanswered for its
// retransmission timeout (1 s).
func synRetransmits(t *testing.T, ns *netns.NS) int {
	t.Helper()
	out, err := ns.Exec("cat", "/proc/net/netstat")
	if err != nil {
		t.Fatalf("reading %s's /proc/net/netstat: %v: %s", ns.Name, err, out)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "TCPSynRetrans" {
				v, err := strconv.Atoi(values[j])
				if err != nil {
					t.Fatalf("TCPSynRetrans %q: %v", values[j], err)
				}
				return v
			}
		}
	}
	t.Fatalf("no TcpExt TCPSynRetrans in %s's /proc/net/netstat:\n%s", ns.Name, out)
	return 0
}

// countUntranslatedSYNs counts, in a table of the test's own in the
// director's namespace, the SYNs to the VIP's port that reach the
// director's own stack (the input hook) instead of being forwarded to a
// real server: a new flow the kernel did not translate, which the director
// answers with a reset from the VIP. The rule needs no conntrack (it must
// not keep conntrack on for govs). It returns the count so far.
func countUntranslatedSYNs(t *testing.T, lab *netns.LVS, port int) func() int {
	t.Helper()
	const table = "govs_test_probe"
	script := fmt.Sprintf(`add table inet %[1]s
add chain inet %[1]s input { type filter hook input priority 0; policy accept; }
add rule inet %[1]s input ip daddr %[2]s tcp dport %[3]d tcp flags & (syn|ack) == syn counter
`, table, lab.VIP, port)
	if out, err := lab.Director.Exec("sh", "-c", "nft -f - <<'EOF'\n"+script+"EOF\n"); err != nil {
		t.Fatalf("adding the probe table: %v: %s", err, out)
	}
	t.Cleanup(func() { lab.Director.Exec("nft", "delete", "table", "inet", table) })
	return func() int {
		t.Helper()
		out, err := lab.Director.Exec("nft", "list", "chain", "inet", table, "input")
		if err != nil {
			t.Fatalf("reading the probe counter: %v: %s", err, out)
		}
		_, rest, ok := strings.Cut(out, "counter packets ")
		var n int
		if _, err := fmt.Sscan(rest, &n); !ok || err != nil {
			t.Fatalf("no counter in:\n%s", out)
		}
		return n
	}
}
