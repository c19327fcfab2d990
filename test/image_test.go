package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// dockerd is a Docker engine a test started in a network namespace of its
// own, with its own data and exec roots, so that the machine's network and
// any other engine are untouched.
type dockerd struct {
	ns   *netns.NS
	sock string
	env  []string
}

// startDockerd starts dockerd in a new namespace (nsenter, not ip netns
// exec, which remounts /sys and breaks its cgroup setup) and stops it at
// cleanup, with the nsfs mounts it leaves behind.
func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	needRoot(t)
	netns.Require(t)
	bin := needTool(t, "dockerd")
	needTool(t, "docker")
	needTool(t, "nsenter")
	ns := netns.New(t, "docker")
	// Not t.TempDir: the roots must outlive dockerd, which cleanup stops
	// first, and then hold mounts to undo before removal.
	root, err := os.MkdirTemp("", "govs-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{ns: ns, sock: filepath.Join(root, "docker.sock")}
	// The docker client may be newer than Debian's dockerd 20.10 (API
	// 1.41); the classic builder needs no buildx plugin.
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_API_VERSION=1.41", "DOCKER_BUILDKIT=0")
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns.Name, bin,
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
		"--data-root", filepath.Join(root, "data"), "--exec-root", filepath.Join(root, "exec"),
		"--pidfile", filepath.Join(root, "docker.pid"), "-H", "unix://"+d.sock)
	logf, err := os.Create(filepath.Join(root, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nsenter execs dockerd: this PID is dockerd's
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("dockerd log (tail):\n%s", tail(string(b), 3000))
		}
		unmountUnder(t, root)
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("removing dockerd's roots: %v", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if out, err := d.docker("version", "--format", "{{.Server.Version}}"); err == nil {
			t.Logf("dockerd %s", strings.TrimSpace(out))
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("dockerd exited:\n%s", tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not answer in 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d
}

func (d *dockerd) docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// unmountUnder undoes the mounts left under dir (the engine's nsfs and
// overlay mounts), deepest first.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mnts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			mnts = append(mnts, f[1])
		}
	}
	for i := len(mnts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mnts[i], syscall.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", mnts[i], err)
		}
	}
}

// make image builds the FROM scratch image offline; the image prints its
// version and serves a proxy configuration as nobody, which govsadm in the
// container lists, and stops cleanly on docker stop.
func TestImage(t *testing.T) {
	d := startDockerd(t)
	image := fmt.Sprintf("govs-test-%d", os.Getpid())
	start := time.Now()
	build := exec.Command("make", "-C", "..", "image", "IMAGE="+image)
	build.Env = d.env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image: %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { d.docker("rmi", "-f", image+":latest") })

	out, err := d.docker("run", "--rm", "--network", "none", image+":latest", "version")
	if err != nil || !strings.HasPrefix(out, "govs ") {
		t.Fatalf("docker run govs version: %q %v", out, err)
	}
	t.Logf("%s", strings.TrimSpace(out))

	// A real server in the engine's namespace, and the director in front
	// of it on the host network (which is that namespace).
	var backend string
	if err := d.ns.Do(func() error { backend = loopback.LineServer(t, "a"); return nil }); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "govs.yaml")
	writeFile(t, conf, "grace_period: 5s\nvirtual_servers:\n  - name: web\n    address: 127.0.0.1:8080\n    real_servers: [{address: "+backend+"}]\n")
	os.Chmod(conf, 0o644)
	name := image + "-run"
	if out, err := d.docker("run", "-d", "--name", name, "--network", "host",
		"-v", conf+":/etc/govs/govs.yaml:ro", image+":latest"); err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := d.docker("logs", name)
			t.Logf("container log:\n%s", out)
		}
		d.docker("rm", "-f", name)
	})
	var answer string
	loopback.WaitFor(t, "the container to serve", func() bool {
		d.ns.Do(func() error {
			answer, err = ask("127.0.0.1:8080")
			return nil
		})
		return err == nil
	})
	if answer != "a" {
		t.Errorf("answered by %q", answer)
	}
	out, err = d.docker("exec", name, "govsadm", "-L", "-n")
	if err != nil || !strings.Contains(out, "TCP  127.0.0.1:8080 wlc") || !strings.Contains(out, backend) {
		t.Errorf("govsadm -L -n in the container: %v\n%s", err, out)
	}
	if out, err := d.docker("stop", "-t", "30", name); err != nil {
		t.Fatalf("docker stop: %v %s", err, out)
	}
	out, err = d.docker("inspect", "-f", "{{.State.ExitCode}}", name)
	if err != nil || strings.TrimSpace(out) != "0" {
		t.Errorf("exit code after docker stop: %q %v", out, err)
	}
	logs, _ := d.docker("logs", name)
	sc := bufio.NewScanner(strings.NewReader(logs))
	var stopped bool
	for sc.Scan() {
		stopped = stopped || strings.Contains(sc.Text(), "stopped")
	}
	if !stopped {
		t.Errorf("no graceful stop in the log:\n%s", logs)
	}
}
