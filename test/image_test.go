package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// make image builds the FROM scratch image offline; the image prints its
// version and serves a proxy configuration as nobody, which govsadm in the
// container lists, and stops cleanly on docker stop.
func TestImage(t *testing.T) {
	d := startDockerd(t, dockerdOpts{})
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
