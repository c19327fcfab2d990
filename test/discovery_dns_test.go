package test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/discovery"
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
	extra  string // more zone lines
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
	b.WriteString(n.extra)
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
	waitFor(t, "named to load the zone", func() bool {
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

// TestDiscoveryDNSHostName: a host name's A and AAAA records with a fixed
// port, re-resolved on their TTL, following a zone edit + SIGHUP; a name
// that does not exist is an empty answer, a dead server an error.
func TestDiscoveryDNSHostName(t *testing.T) {
	n := newNamedDriver(t)
	n.extra = "web IN A 127.0.0.1\nweb IN AAAA ::1\n"
	n.set(t, nil)
	n.start(t)
	answers := make(chan discovery.Update, 64)
	run := func(name string) context.CancelFunc {
		src, err := discovery.NewSource(&config.Discovery{Type: "dns", Name: name, Port: "8080",
			Server: fmt.Sprintf("127.0.0.1:%d", n.port), Interval: config.Duration(200 * time.Millisecond),
			Timeout: config.Duration(time.Second)}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { src.Run(ctx, func(u discovery.Update) { answers <- u }); close(done) }()
		return func() { cancel(); <-done }
	}
	next := func(want string) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			select {
			case u := <-answers:
				got := ""
				if u.Err != nil {
					got = "error"
				} else {
					var as []string
					for _, s := range u.Servers {
						as = append(as, s.Addr.String())
					}
					slices.Sort(as)
					got = strings.Join(as, " ")
				}
				if got == want {
					return
				}
			case <-deadline:
				t.Fatalf("no answer %q", want)
			}
		}
	}
	stop := run("web.example.test")
	next("127.0.0.1:8080 [::1]:8080")
	n.extra = "web IN A 127.0.0.1\nweb IN A 127.0.0.2\n"
	n.set(t, nil) // serial bump + SIGHUP; the 1s TTL brings it
	next("127.0.0.1:8080 127.0.0.2:8080")
	n.kill()
	next("error")
	stop()
	n.start(t)
	stop = run("nothere.example.test")
	next("")
	stop()
}
