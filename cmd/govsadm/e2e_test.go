package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestEndToEnd builds govs, runs "govs run" with a control socket in a
// temporary directory, and administers it with govsadm: a virtual service
// added at runtime carries a real connection, shows in the listings and the
// metrics, and a SIGHUP reload replaces the runtime change with the file.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "govs")
	build := exec.Command("go", "build", "-o", bin, "github.com/govs-lb/govs/cmd/govs")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building govs: %v\n%s", err, out)
	}

	backend := loopback.EchoServer(t, 5*time.Second)
	filePort, runtimePort := loopback.FreePort(t, "tcp"), loopback.FreePort(t, "tcp")
	cfgPath := filepath.Join(dir, "govs.yaml")
	writeConfig := func(port int) {
		cfg := fmt.Sprintf("virtual_servers:\n  - name: file\n    address: 127.0.0.1:%d\n    real_servers:\n      - address: %s\n", port, backend)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(filePort)
	sock := filepath.Join(dir, "run", "govs.sock")

	var logs syncBuffer
	cmd := exec.Command(bin, "run", "-c", cfgPath, "--socket", sock)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when govs has exited, with waitErr set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill() // our own child, by PID
			<-done
		}
		if t.Failed() {
			t.Logf("govs log:\n%s", logs.String())
		}
	})
	loopback.WaitFor(t, "the control socket", func() bool {
		_, _, code := govsadm(t, sock, "", "-L", "-n")
		return code == 0
	})

	vip := fmt.Sprintf("127.0.0.1:%d", runtimePort)
	for _, args := range [][]string{
		{"-A", "-t", vip, "-s", "rr", "-p", "60"},
		{"-a", "-t", vip, "-r", backend, "-w", "3"},
	} {
		if _, stderr, code := govsadm(t, sock, "", args...); code != 0 {
			t.Fatalf("govsadm %v: exit %d: %s", args, code, stderr)
		}
	}
	if err := echo(vip); err != nil {
		t.Fatalf("through the runtime service: %v", err)
	}
	out, _, _ := govsadm(t, sock, "", "-L", "-n")
	want := fmt.Sprintf("TCP  %s rr persistent 60\n  -> %-28s Proxy   3      ", vip, backend)
	if !strings.Contains(out, want) {
		t.Errorf("-L -n lacks %q:\n%s", want, out)
	}

	// -m would move the loopback VIP to kernel NAT, which cannot serve it:
	// refused with the reason, nothing changed.
	if _, stderr, code := govsadm(t, sock, "", "-e", "-t", vip, "-r", backend, "-w", "3", "-m"); code != 255 ||
		!strings.Contains(stderr, "cannot serve the loopback VIP 127.0.0.1") {
		t.Errorf("-e -m on a loopback VIP: exit %d, %q", code, stderr)
	}
	if out, _, _ := govsadm(t, sock, "", "-L", "-n"); !strings.Contains(out, want) {
		t.Errorf("-L -n after a refused -m:\n%s", out)
	}
	// A change is logged with what changed.
	if _, stderr, code := govsadm(t, sock, "", "-E", "-t", vip, "-s", "wlc", "-p", "60"); code != 0 {
		t.Fatalf("-E: exit %d: %s", code, stderr)
	}
	loopback.WaitFor(t, "the change in the log", func() bool {
		return strings.Contains(logs.String(), `msg="virtual service changed through the API" service=tcp/`+vip+` address=tcp/`+vip+` changes="scheduler: rr -> wlc"`)
	})

	loopback.WaitFor(t, "the connection in --stats", func() bool {
		out, _, _ = govsadm(t, sock, "", "-L", "-n", "--stats", "-t", vip)
		return strings.Contains(out, fmt.Sprintf("%-33s%9d", "TCP  "+vip, 1))
	})
	metrics := fetchText(t, sock, "/metrics")
	for _, want := range []string{
		fmt.Sprintf(`govs_service_connections_total{service="tcp/%s"} 1`, vip),
		fmt.Sprintf(`govs_backend_weight{backend="%s",service="tcp/%s"} 3`, backend, vip),
		`govs_backend_up{backend="` + backend + `",service="file"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The connection table: a connection held open and the client's
	// persistence template, as ipvsadm -L -n -c shows them.
	held, err := net.Dial("tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := held.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(held, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	conn := regexp.MustCompile(`(?m)^TCP (14:5\d|15:00)  ` + regexp.QuoteMeta(fmt.Sprintf("ESTABLISHED %-18s %-18s %s",
		held.LocalAddr(), vip, backend)) + "$")
	template := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(fmt.Sprintf("TCP 01:00  NONE        %-18s %-18s %s",
		"127.0.0.1:0", vip, backend)) + "$")
	out, stderr, code := govsadm(t, sock, "", "-L", "-n", "-c")
	if code != 0 || !strings.HasPrefix(out, "IPVS connection entries\npro expire state       source             virtual            destination\n") ||
		!conn.MatchString(out) || !template.MatchString(out) {
		t.Errorf("-L -n -c: exit %d, %s\n%s\nwant lines matching %s and %s", code, stderr, out, conn, template)
	}
	out, _, _ = govsadm(t, sock, "", "-L", "-n", "--persistent-conn", "-t", vip)
	if want := fmt.Sprintf("  -> %-28s %-9d %-11d %-10d %-10d\n", backend, 3, 1, 1, 0); !strings.Contains(out, want) {
		t.Errorf("--persistent-conn lacks %q:\n%s", want, out)
	}
	held.Close()

	// A reload replaces runtime changes with the file's content.
	cmd.Process.Signal(syscall.SIGHUP)
	loopback.WaitFor(t, "the reload", func() bool {
		out, _, _ = govsadm(t, sock, "", "-L", "-n")
		return !strings.Contains(out, vip)
	})
	if !strings.Contains(out, fmt.Sprintf("TCP  127.0.0.1:%d wlc", filePort)) {
		t.Errorf("after reload:\n%s", out)
	}
	if err := echo(fmt.Sprintf("127.0.0.1:%d", filePort)); err != nil {
		t.Errorf("through the file's service: %v", err)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("govs exited with %v", waitErr)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("govs did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
}

// fetchText GETs a path on the socket and returns its body.
func fetchText(t *testing.T, sock, path string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: govs\r\n\r\n", path)
	b, _ := io.ReadAll(conn)
	return string(b)
}

func echo(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != "ping\n" {
		return fmt.Errorf("echo answered %q", b)
	}
	return nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
