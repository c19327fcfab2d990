package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

var govsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "govs-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	govsBin = filepath.Join(dir, "govs")
	build := exec.Command("go", "build", "-race", "-o", govsBin, "../cmd/govs")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building govs:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildGovsadm builds govsadm once, beside govsBin (TestMain removes both).
var buildGovsadm = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(govsBin), "govsadm")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/govsadm").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building govsadm: %v: %s", err, out)
	}
	return bin, nil
})

// daemon is a govs run process started by a test.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.Write(p)
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// startGovs runs "govs run -c file" and stops it (by its PID) at cleanup.
func startGovs(t *testing.T, file string) *daemon {
	t.Helper()
	// Each daemon serves its control API on a socket of its own.
	sock := filepath.Join(t.TempDir(), "govs.sock")
	d := runDaemon(t, "govs", exec.Command(govsBin, "--socket", sock, "run", "-c", file), 0)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	return d
}

// runDaemon starts cmd, a govs process (directly, or through ip netns
// exec, which execs it: either way the PID is govs's), collecting its
// output. At cleanup, if it still runs, it gets SIGTERM and up to termWait
// to stop (0: none), then SIGKILL; its log is shown if the test failed.
func runDaemon(t testing.TB, name string, cmd *exec.Cmd, termWait time.Duration) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr, cmd.Stdout = d, d
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			if termWait > 0 {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-d.done:
				case <-time.After(termWait):
				}
			}
			cmd.Process.Kill() // harmless once it has exited
			<-d.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, d.log())
		}
	})
	return d
}

func (d *daemon) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Deadlines of the test clients that count failed connections: generous,
// since the whole suite runs on two loaded cores, where a -race govs (or
// the SYN it queues) can wait seconds for a core. A connection refused or
// reset still fails at once; these only stop slowness counting as a loss.
const (
	clientDialWait = 10 * time.Second
	clientAskWait  = 15 * time.Second
)

func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, clientDialWait)
	if err != nil {
		return "", err
	}
	return askOn(c)
}

// askOn sends "hi" on c, a connection to a line server, closes it, and
// returns the name of the server that answered.
func askOn(c net.Conn) (string, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(clientAskWait))
	io.WriteString(c, "hi\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	name, rest, _ := strings.Cut(line, " ")
	if rest != "hi\n" {
		return "", fmt.Errorf("bad answer %q", line)
	}
	return name, nil
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	// Write and rename, as an operator's deployment tool does, so a reload
	// never reads a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
