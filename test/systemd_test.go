package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// govs run under a Type=notify unit: systemd hears READY=1 once it serves,
// RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP, and
// STOPPING=1 on SIGTERM. The socket is the test's own, as systemd's would be.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(want string) string {
		t.Helper()
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("notify socket closed, waiting for %s", want)
			}
			if !strings.HasPrefix(m, want+"\n") {
				t.Fatalf("notification %q, want %s first", m, want)
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s notification in 30s", want)
		}
		return ""
	}

	backend := loopback.LineServer(t, "a")
	vip := loopback.Addr(t, "tcp")
	conf := filepath.Join(dir, "govs.yaml")
	writeFile(t, conf, "virtual_servers:\n  - name: web\n    address: "+vip+"\n    real_servers: [{address: "+backend+"}]\n")
	cmd := exec.Command(govsBin, "--socket", filepath.Join(dir, "govs.sock"), "run", "-c", conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath)
	d := runDaemon(t, "govs", cmd, 0)

	if m := next("READY=1"); !strings.Contains(m, "STATUS=serving 1 virtual services") {
		t.Errorf("READY without the status: %q", m)
	}
	if name, err := ask(vip); err != nil || name != "a" {
		t.Fatalf("served before READY=1? %q %v", name, err)
	}
	d.signal(t, syscall.SIGHUP)
	if m := next("RELOADING=1"); !strings.Contains(m, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING=1 without MONOTONIC_USEC (systemd 253+ needs it): %q", m)
	}
	next("READY=1")
	d.signal(t, syscall.SIGTERM)
	next("STOPPING=1")
	select {
	case <-d.done:
		if d.err != nil {
			t.Errorf("exit: %v", d.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("govs did not stop")
	}
}
