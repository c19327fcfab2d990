package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
)

// importLineImage builds, offline, an image whose /reply answers each line
// with "$NAME line" (the test's line protocol) on port 8080, from the
// static busybox. Its /serve stops as a real server behind a load balancer
// does: on TERM it serves on for a while (the balancer takes it out), then
// stops listening and lets the answers in flight finish.
func (d *dockerd) importLineImage(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("busybox (Debian busybox-static) not installed")
		}
		t.Fatal("busybox (Debian busybox-static) not installed")
	}
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"sh", "nc", "echo", "sleep", "kill"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", app))
	}
	if err := os.WriteFile(filepath.Join(rootfs, "reply"), []byte("#!/bin/sh\nwhile read l; do echo \"$NAME $l\"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	serve := "#!/bin/sh\nnc -ll -p 8080 -e /reply &\nnc=$!\ntrap 'sleep 3; kill $nc; sleep 1; exit 0' TERM\nwait\n"
	if err := os.WriteFile(filepath.Join(rootfs, "serve"), []byte(serve), 0o755); err != nil {
		t.Fatal(err)
	}
	tarOut, err := exec.Command("tar", "-C", rootfs, "-c", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "import", "-", "govs-disc-line:test")
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(string(tarOut))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v: %s", err, out)
	}
	return "govs-disc-line:test"
}

func (d *dockerd) run(t *testing.T, image, name string) {
	t.Helper()
	d.must(t, "run", "-d", "--pull=never", "--init", "--name", "disc-"+name, "--label", "govs.test=web", "--label", "govs.port=8080",
		"-e", "NAME="+name, image, "/serve")
}

// TestDiscoveryDocker: containers selected by label join the pool as they
// start and leave it as they stop, with real traffic through govs (in the
// engine's namespace) to them; the engine's outage keeps the pool.
func TestDiscoveryDocker(t *testing.T) {
	d := startDockerd(t, dockerdOpts{bridge: true, liveRestore: true})
	image := d.importLineImage(t)
	d.run(t, image, "a")
	d.run(t, image, "b")

	vip := "127.0.0.1:18080" // in the engine's namespace, which only this test uses
	dir := t.TempDir()
	sock := filepath.Join(dir, "govs.sock")
	file := filepath.Join(dir, "govs.yaml")
	writeFile(t, file, fmt.Sprintf(`grace_period: 20s
virtual_servers:
  - name: web
    address: %s
    scheduler: rr
    health_check: {type: tcp, interval: 300ms, rise: 1, fall: 2}
    discovery:
      type: docker
      host: unix://%s
      label: govs.test=web
      interval: 500ms
      settle: 300ms
    real_servers: []
`, vip, d.sock))
	g := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", d.ns.Name, govsBin, "--socket", sock, "run", "-c", file), 5*time.Second)
	waitFor(t, "govs to start", func() bool { return strings.Contains(g.log(), "govs running") })
	r := &discoveryRun{vip: vip, key: "tcp/" + vip, api: api.NewUnixClient(sock), daemon: g}
	lastDiscoveryRun = r
	waitFor(t, "a and b discovered and up", func() bool { return len(r.pool(t)) == 2 && healthyCount(t, r) == 2 })
	if o := r.status(t).Origin; o != "docker:govs.test=web" {
		t.Fatalf("origin %q", o)
	}

	askNS := func() (string, error) {
		var c net.Conn
		if err := d.ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", vip, 2*time.Second); return }); err != nil {
			return "", err
		}
		return askOn(c)
	}
	l := startLoadWith(askNS)
	defer func() {
		if l != nil {
			l.finish(t)
		}
	}()
	waitFor(t, "traffic on a and b", func() bool { return !l.lastSeen("a").IsZero() && !l.lastSeen("b").IsZero() })

	// A container started with the label takes connections.
	started := time.Now()
	d.run(t, image, "c")
	waitFor(t, "traffic on c", func() bool { return l.lastSeen("c").After(started) })
	t.Logf("started container served %v after docker run began", time.Since(started).Round(time.Millisecond))

	// A stopped one leaves when it is told to stop (docker stop's TERM),
	// while it still serves: it drains instead of taking connections until
	// it exits.
	stopErr := make(chan error, 1)
	go func() {
		out, err := d.docker("stop", "-t", "10", "disc-b") // returns once b has exited
		if err != nil {
			err = fmt.Errorf("docker stop: %v: %s", err, out)
		}
		stopErr <- err
	}()
	waitFor(t, "b to leave", func() bool { return len(r.pool(t)) == 2 })
	left := time.Now()
	if out := d.must(t, "inspect", "-f", "{{.State.Running}}", "disc-b"); out != "true" {
		t.Fatalf("b left the pool only once it had exited (running: %q): not on docker stop's signal", out)
	}
	if err := <-stopErr; err != nil {
		t.Fatal(err)
	}
	// b served on for 3 s after the signal: an answer from it well after it
	// left the pool is a connection sent to a draining server.
	if seen := l.lastSeen("b"); seen.After(left.Add(500 * time.Millisecond)) {
		t.Fatalf("b answered %v after it left the pool", seen.Sub(left).Round(time.Millisecond))
	}

	// The engine's outage keeps the pool; it recovers when the engine is back.
	before := keys(r.pool(t))
	d.stop()
	waitFor(t, "the outage in the status", func() bool { return !r.status(t).OK })
	t.Logf("status during the outage: %s", r.status(t).Message)
	time.Sleep(time.Second)
	if got := keys(r.pool(t)); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Fatalf("pool during the outage %v, want %v", got, before)
	}
	d.start(t)
	waitFor(t, "the source to recover", func() bool { return r.status(t).OK })
	if got := keys(r.pool(t)); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Fatalf("pool after the outage %v, want %v", got, before)
	}
	l.finish(t)
	l = nil
}
