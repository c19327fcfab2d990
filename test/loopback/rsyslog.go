package loopback

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Rsyslogd runs Debian's rsyslogd with a configuration of its own: imudp
// and imtcp on loopback ports, everything it receives written to out as
// "INPUT APP-NAME MSGID MSG" lines. It skips the test without rsyslogd
// (fails in CI) and is stopped, by its PID, at cleanup.
func Rsyslogd(t testing.TB) (udp, tcp, out string) {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("rsyslogd not installed (apt-get install rsyslog)")
		}
		t.Fatal("rsyslogd not installed")
	}
	dir := t.TempDir()
	udp, tcp = Addr(t, "udp"), Addr(t, "tcp")
	out = filepath.Join(dir, "received.log")
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	conf := fmt.Sprintf(`global(workDirectory="%s" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="%s")
input(type="imtcp" address="127.0.0.1" port="%s")
template(name="raw" type="string" string="%%inputname%% %%app-name%% %%msgid%% %%msg%%\n")
*.* action(type="omfile" file="%s" template="raw")
`, dir, port(udp), port(tcp), out)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", output.String())
		}
	})
	WaitFor(t, "rsyslogd listening on TCP", func() bool {
		c, err := net.Dial("tcp", tcp)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return udp, tcp, out
}
