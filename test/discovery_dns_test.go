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

	"github.com/govs-lb/govs/test/loopback"
)

// namedDriver serves a zone from Debian's named (bind9) on a loopback
// port: set rewrites the zone with a new serial and sends SIGHUP, as an
// operator's tooling does; stop kills named, start runs it again.
type namedDriver struct {
	dir    string
	port   int
	serial int
	addrs  []string
	cmd    *exec.Cmd
	done   chan struct{}
}

func newNamedDriver(t *testing.T) *namedDriver {
	bin, err := exec.LookPath("named")
	if err != nil {
		bin = "/usr/sbin/named"
		if _, serr := os.Stat(bin); serr != nil {
			if os.Getenv("CI") == "" {
				t.Skip("named (Debian bind9) not installed")
			}
			t.Fatal("named (Debian bind9) not installed")
		}
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	n := &namedDriver{dir: dir, port: loopback.FreePort(t, "udp")}
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	session-keyfile "%[1]s/session.key";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
};
controls { };
zone "example.test" { type primary; file "%[1]s/example.test.zone"; };
`, dir, n.port)
	if err := os.WriteFile(filepath.Join(dir, "named.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-g", "-c", filepath.Join(dir, "named.conf"))
	n.writeZone(t)
	t.Cleanup(func() { n.kill() })
	return n
}

func (n *namedDriver) block() string {
	return fmt.Sprintf("      type: dns\n      name: _line._tcp.example.test\n      server: 127.0.0.1:%d\n", n.port)
}

// writeZone writes the zone: one SRV record per address (TTL 1s, so the
// source re-resolves quickly), targets with their A records.
func (n *namedDriver) writeZone(t *testing.T) {
	t.Helper()
	n.serial++
	var b strings.Builder
	fmt.Fprintf(&b, "$TTL 1\n@ IN SOA ns.example.test. admin.example.test. %d 1 1 1 1\n@ IN NS ns.example.test.\nns IN A 127.0.0.1\n", n.serial)
	for i, a := range n.addrs {
		host, port, _ := net.SplitHostPort(a)
		fmt.Fprintf(&b, "_line._tcp IN SRV 0 1 %s s%d.example.test.\ns%d IN A %s\n", port, i, i, host)
	}
	writeFile(t, filepath.Join(n.dir, "example.test.zone"), b.String())
}

func (n *namedDriver) set(t *testing.T, addrs []string) {
	n.addrs = addrs
	n.writeZone(t)
	if n.done != nil {
		select {
		case <-n.done:
		default:
			n.cmd.Process.Signal(syscall.SIGHUP)
		}
	}
}

func (n *namedDriver) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(n.cmd.Path, n.cmd.Args[1:]...)
	out, err := os.Create(filepath.Join(n.dir, "named.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	done := n.done
	go func() { cmd.Wait(); out.Close(); close(done) }()
	loopback.WaitFor(t, "named to load the zone", func() bool {
		log, _ := os.ReadFile(filepath.Join(n.dir, "named.log"))
		return strings.Contains(string(log), "running") && strings.Contains(string(log), "example.test/IN: loaded serial")
	})
}

func (n *namedDriver) stop(t *testing.T) { n.kill() }

func (n *namedDriver) kill() {
	if n.done == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

// namedFirst starts named before govs asks it.
type namedFirst struct{ *namedDriver }

func (n namedFirst) set(t *testing.T, addrs []string) {
	n.namedDriver.set(t, addrs)
	if n.done == nil {
		n.start(t)
	}
}

func TestDiscoveryDNS(t *testing.T) {
	testDiscoveryProof(t, namedFirst{newNamedDriver(t)})
}
