package test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, "virtual_servers:\n  - address: 127.0.0.1:8080\n    real_servers: [{address: 127.0.0.1:9001}]\n")
	out, err := exec.Command(govsBin, "check", "-c", good).CombinedOutput()
	if err != nil || string(out) != "configuration OK\n" {
		t.Errorf("check good: %q, %v", out, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, `virtual_servers:
  - address: 127.0.0.1:8080
    scheduler: fastest
    real_servers:
      - address: 127.0.0.1:9001
        weight: 70000
  - address: 127.0.0.1:8080
`)
	out, err = exec.Command(govsBin, "check", "-c", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check bad: exit %v, want 1", err)
	}
	want := []string{
		bad + `:3:16: unknown scheduler "fastest"`,
		bad + `:6:17: weight 70000 out of range (0..65535)`,
		bad + `:7:14: duplicate virtual server tcp/127.0.0.1:8080 (first defined at ` + bad + `:2:14)`,
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("check bad printed:\n%s", out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
}

// Reloads with SIGHUP under steady load, one of them invalid, lose no
// connection; SIGTERM then lets an established connection finish and exits 0.
func TestRunReloadAndShutdownUnderLoad(t *testing.T) {
	a, b, c := loopback.LineServer(t, "a"), loopback.LineServer(t, "b"), loopback.LineServer(t, "c")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	file := filepath.Join(t.TempDir(), "govs.yaml")
	conf := func(sched string, reals ...string) string {
		s := fmt.Sprintf("grace_period: 10s\nvirtual_servers:\n  - name: web\n    address: %s\n    scheduler: %s\n    real_servers:\n", vip, sched)
		for _, r := range reals {
			s += "      - address: " + r + "\n"
		}
		return s
	}
	configs := []string{
		conf("rr", a, b),
		conf("wlc", b, c),
		"virtual_servers:\n  - address: 127.0.0.1:80\n    bogus: true\n", // rejected, running config kept
		conf("wrr", c),
		conf("lc", a, b, c),
	}
	writeFile(t, file, configs[0])
	d := startGovs(t, file)

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ask(vip); err != nil {
					failed.Add(1)
					t.Logf("connection failed: %v", err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	// Each reload comes once the clients made progress since the last one
	// and once govs has read the file the last one wrote: on a loaded
	// machine a fixed pace could overwrite the rejected file before govs
	// read it, or reload faster than the clients connect.
	outcomes := func() int {
		l := d.log()
		return strings.Count(l, "configuration reloaded") + strings.Count(l, "reload rejected, running configuration kept")
	}
	progress := func(since int64) {
		t.Helper()
		waitFor(t, "client connections between reloads", func() bool { return ok.Load()+failed.Load() >= since+20 })
	}
	for i := 1; i <= 10; i++ {
		time.Sleep(100 * time.Millisecond)
		progress(ok.Load() + failed.Load())
		writeFile(t, file, configs[i%len(configs)])
		d.signal(t, syscall.SIGHUP)
		waitFor(t, fmt.Sprintf("reload %d's outcome in the log", i), func() bool { return outcomes() >= i })
	}
	time.Sleep(100 * time.Millisecond)
	progress(ok.Load() + failed.Load())
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 200 {
		t.Fatalf("%d connections failed, %d succeeded across reloads", failed.Load(), ok.Load())
	}
	t.Logf("%d connections across 10 reloads (2 invalid), none failed", ok.Load())
	if n := strings.Count(d.log(), "reload rejected, running configuration kept"); n != 2 {
		t.Errorf("%d rejected reloads logged, want 2", n)
	}
	if !strings.Contains(d.log(), `bogus`) {
		t.Error("the rejected reload's error is not logged")
	}

	// An established connection survives SIGTERM until it ends.
	conn, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "one\n")
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGTERM)
	loopback.WaitFor(t, "shutdown to begin", func() bool { return strings.Contains(d.log(), "shutting down") })
	fmt.Fprintf(conn, "two\n")
	if line, err := r.ReadString('\n'); err != nil || !strings.HasSuffix(line, " two\n") {
		t.Fatalf("established connection during shutdown: %q, %v", line, err)
	}
	conn.Close()
	select {
	case <-d.done:
		if d.err != nil {
			t.Fatalf("govs exited with %v, want 0", d.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("govs did not exit after its last connection closed")
	}
}
