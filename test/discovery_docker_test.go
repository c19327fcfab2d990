package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/netns"
)

// discDockerd is a Docker engine in a network namespace of the test's,
// with its default bridge (containers get addresses there) and
// --live-restore, so that stopping the engine (an outage of the source)
// leaves its containers serving.
type discDockerd struct {
	ns         *netns.NS
	root, sock string
	bin        string
	env        []string
	cmd        *exec.Cmd
	done       chan struct{}
}

func startDiscDockerd(t *testing.T) *discDockerd {
	t.Helper()
	needRoot(t)
	netns.Require(t)
	d := &discDockerd{bin: needTool(t, "dockerd")}
	needTool(t, "docker")
	needTool(t, "nsenter")
	d.ns = netns.New(t, "ddisc")
	root, err := os.MkdirTemp("", "govs-ddisc-")
	if err != nil {
		t.Fatal(err)
	}
	d.root, d.sock = root, filepath.Join(root, "docker.sock")
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_API_VERSION=1.41")
	t.Cleanup(func() {
		// Containers first (live-restore keeps them past the engine).
		if out, err := d.docker("ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			d.docker(append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
		d.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(root, "dockerd.log"))
			t.Logf("dockerd log (tail):\n%s", tail(string(b), 3000))
		}
		unmountUnder(t, root)
		os.RemoveAll(root)
	})
	d.start(t)
	return d
}

func (d *discDockerd) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+d.ns.Name, d.bin,
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--live-restore",
		"--data-root", filepath.Join(d.root, "data"), "--exec-root", filepath.Join(d.root, "exec"),
		"--pidfile", filepath.Join(d.root, "docker.pid"), "-H", "unix://"+d.sock)
	logf, err := os.OpenFile(filepath.Join(d.root, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	done := d.done
	go func() { cmd.Wait(); close(done) }()
	waitFor(t, "dockerd to answer", func() bool {
		select {
		case <-done:
			t.Fatal("dockerd exited")
		default:
		}
		_, err := d.docker("version", "--format", "{{.Server.Version}}")
		return err == nil
	})
}

func (d *discDockerd) stop() {
	if d.done == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM) // nsenter execs dockerd: this PID is dockerd's
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

func (d *discDockerd) docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *discDockerd) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// importLineImage builds, offline, an image whose /reply answers each line
// with "$NAME line" (the test's line protocol) on port 8080, from the
// static busybox.
func (d *discDockerd) importLineImage(t *testing.T) string {
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
	for _, app := range []string{"sh", "nc", "echo"} {
		os.Symlink("busybox", filepath.Join(rootfs, "bin", app))
	}
	if err := os.WriteFile(filepath.Join(rootfs, "reply"), []byte("#!/bin/sh\nwhile read l; do echo \"$NAME $l\"; done\n"), 0o755); err != nil {
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

func (d *discDockerd) run(t *testing.T, image, name string) {
	t.Helper()
	d.must(t, "run", "-d", "--pull=never", "--init", "--name", "disc-"+name, "--label", "govs.test=web", "--label", "govs.port=8080",
		"-e", "NAME="+name, image, "/bin/nc", "-ll", "-p", "8080", "-e", "/reply")
}

// TestDiscoveryDocker: containers selected by label join the pool as they
// start and leave it as they stop, with real traffic through govs (in the
// engine's namespace) to them; the engine's outage keeps the pool.
func TestDiscoveryDocker(t *testing.T) {
	d := startDiscDockerd(t)
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

	// A stopped one leaves; connect failures to it in the moment between
	// its exit and the event are retried by the proxy on another server.
	d.must(t, "stop", "-t", "5", "disc-b")
	waitFor(t, "b to leave", func() bool { return len(r.pool(t)) == 2 })
	stopped := time.Now()
	time.Sleep(time.Second)
	if l.lastSeen("b").After(stopped) {
		t.Fatal("b answered after it left")
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
