package loopback

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MTA runs Debian's exim4 as a test mail server listening on addr
// (host:port), delivering every recipient's mail to one mbox file, whose path
// it returns. wrap prefixes the command (["ip", "netns", "exec", ns] runs it
// in a namespace); ready tells when it accepts connections (nil: dial addr
// from here). It skips the test without exim4 or root (fails in CI) and is
// killed, by its PID, at cleanup.
func MTA(t testing.TB, addr string, wrap []string, ready func() bool) (mbox string) {
	t.Helper()
	exim, err := exec.LookPath("exim4")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("exim4 missing (apt-get install exim4-daemon-light)")
		}
		t.Skip("exim4 missing (apt-get install exim4-daemon-light)")
	}
	if os.Geteuid() != 0 {
		t.Skip("exim4 as a test MTA needs root")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// exim drops root for its own user (-C): it must reach the directory.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	for _, d := range []string{"spool", "log"} {
		os.Mkdir(filepath.Join(dir, d), 0o777)
		os.Chmod(filepath.Join(dir, d), 0o777)
	}
	mbox = filepath.Join(dir, "mbox")
	conf := strings.NewReplacer("DIR", dir, "PORT", port, "ADDR", host).Replace(`primary_hostname = mta.test
daemon_smtp_ports = PORT
local_interfaces = ADDR
spool_directory = DIR/spool
log_file_path = DIR/log/%slog
keep_environment =
tls_advertise_hosts =
never_users =
host_lookup =
rfc1413_hosts =
recipient_unqualified_hosts = *
sender_unqualified_hosts = *
qualify_domain = mta.test
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept
begin routers
all:
  driver = accept
  transport = tofile
begin transports
tofile:
  driver = appendfile
  file = DIR/mbox
  mode = 0666
  user = Debian-exim
begin retry
*  *  F,1m,10s
`)
	confFile := filepath.Join(dir, "exim.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, wrap...), exim, "-C", confFile, "-bdf", "-odi")
	cmd := exec.Command(args[0], args[1:]...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("exim output:\n%s", output.String())
		}
	})
	if ready == nil {
		ready = func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
	}
	WaitFor(t, "exim listening on "+addr, ready)
	return mbox
}
