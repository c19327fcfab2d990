package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// A user who is not root runs govs with no --socket and no api.socket, and
// govsadm, run by the same user the same way, finds it: in
// $XDG_RUNTIME_DIR, or without it in a private directory under $TMPDIR.
func TestNonRootSocket(t *testing.T) {
	needRoot(t) // to become nobody
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes both private
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/govsadm").CombinedOutput(); err != nil {
		t.Fatalf("building govsadm: %v\n%s", err, out)
	}
	b, err := os.ReadFile(govsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "govs"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	backend := loopback.LineServer(t, "a")
	vip := loopback.Addr(t, "tcp")
	conf := filepath.Join(dir, "govs.yaml")
	writeFile(t, conf, "virtual_servers:\n  - address: "+vip+"\n    real_servers: [{address: "+backend+"}]\n")
	os.Chmod(conf, 0o644)
	private := func(name string) string {
		p := filepath.Join(dir, name)
		os.Mkdir(p, 0o700)
		os.Chown(p, nobody, nobody)
		return p
	}
	asNobody := func(env []string, name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/"}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return cmd
	}

	for _, tc := range []struct {
		name, sock string
		env        []string
	}{
		{"xdg", filepath.Join(dir, "xdg/govs.sock"), []string{"XDG_RUNTIME_DIR=" + private("xdg")}},
		{"tmp", filepath.Join(dir, "tmp/govs-65534/govs.sock"), []string{"TMPDIR=" + private("tmp")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := runDaemon(t, "govs", asNobody(tc.env, "govs", "run", "-c", conf), 10*time.Second)
			loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
			if !strings.Contains(d.log(), "socket="+tc.sock) {
				t.Fatalf("control socket not at %s:\n%s", tc.sock, d.log())
			}
			out, err := asNobody(tc.env, "govsadm", "-L", "-n").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "TCP  "+vip) {
				t.Errorf("govsadm -L -n as the same user: %v\n%s", err, out)
			}
			if tc.name == "tmp" {
				fi, err := os.Stat(filepath.Dir(tc.sock))
				if err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v %v, want a private directory", filepath.Dir(tc.sock), fi.Mode(), err)
				}
			}
			d.signal(t, syscall.SIGTERM)
			<-d.done
		})
	}
}
