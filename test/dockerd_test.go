package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/netns"
)

// dockerd is a Docker engine a test started in a network namespace of its
// own, with its own data and exec roots, so that the machine's network and
// any other engine are untouched. It is started with nsenter, not ip netns
// exec, which remounts /sys and breaks its cgroup setup.
type dockerd struct {
	ns         *netns.NS
	root, sock string
	bin        string
	args       []string
	env        []string
	cmd        *exec.Cmd
	done       chan struct{}
}

// dockerdOpts chooses the engine's networking.
type dockerdOpts struct {
	// bridge keeps the default bridge (containers get addresses there);
	// without it the engine has no bridge and forwards nothing.
	bridge bool
	// liveRestore keeps containers serving while the engine is stopped
	// (an outage of a discovery source).
	liveRestore bool
}

// startDockerd starts the engine and stops it at cleanup, after removing
// its containers, with the mounts it leaves behind under its roots.
func startDockerd(t *testing.T, o dockerdOpts) *dockerd {
	t.Helper()
	needRoot(t)
	netns.Require(t)
	d := &dockerd{bin: needTool(t, "dockerd")}
	needTool(t, "docker")
	needTool(t, "nsenter")
	d.ns = netns.New(t, "docker")
	// Not t.TempDir: the roots must outlive dockerd, which cleanup stops
	// first, and then hold mounts to undo before removal.
	root, err := os.MkdirTemp("", "govs-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d.root, d.sock = root, filepath.Join(root, "docker.sock")
	// The docker client may be newer than Debian's dockerd 20.10 (API
	// 1.41); the classic builder needs no buildx plugin.
	d.env = append(os.Environ(), "DOCKER_HOST=unix://"+d.sock, "DOCKER_API_VERSION=1.41", "DOCKER_BUILDKIT=0")
	d.args = []string{"--iptables=false", "--ip6tables=false", "--ip-masq=false"}
	if !o.bridge {
		d.args = append(d.args, "--ip-forward=false", "--bridge=none")
	}
	if o.liveRestore {
		d.args = append(d.args, "--live-restore")
	}
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
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("removing dockerd's roots: %v", err)
		}
	})
	d.start(t)
	return d
}

// start runs the engine (again, after stop) and waits until it answers.
func (d *dockerd) start(t *testing.T) {
	t.Helper()
	args := append([]string{"--net=/run/netns/" + d.ns.Name, d.bin}, d.args...)
	args = append(args, "--data-root", filepath.Join(d.root, "data"), "--exec-root", filepath.Join(d.root, "exec"),
		"--pidfile", filepath.Join(d.root, "docker.pid"), "-H", "unix://"+d.sock)
	cmd := exec.Command("nsenter", args...)
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := d.docker("version", "--format", "{{.Server.Version}}")
		if err == nil {
			t.Logf("dockerd %s", strings.TrimSpace(out))
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(d.root, "dockerd.log"))
			t.Fatalf("dockerd exited:\n%s", tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not answer in 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends the engine, by its PID, if it runs.
func (d *dockerd) stop() {
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

func (d *dockerd) docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *dockerd) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.docker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
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
