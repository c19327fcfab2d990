package test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// Issue 21, items 1 and 2: what the kernel dataplane promises established
// and new flows across a stop and a reload, with the govs binary in the
// director namespace of an LVS lab (nothing else there uses conntrack).

// drainLab is the govs binary serving one nat or fullnat service in an LVS
// lab, and one long-lived connection through its VIP.
type drainLab struct {
	*natLab
	cfg  string // the configuration file
	gov  *daemon
	conn *clientConn
	// first is the real server that answered the long-lived connection.
	first string
}

const drainPort = 8090

// drainGrace is the grace period of the drain tests: long enough that no
// check below comes near its end on a loaded machine, which the tests never
// wait for (they end the connection, and govs must then exit at once).
const drainGrace = "60s"

// natService is the YAML of one service of forwarding fwd ("nat" or
// "fullnat") on the lab's VIP.
func natService(lab *netns.LVS, fwd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: web\n    address: \"%s\"\n    scheduler: rr\n    forwarding: %s\n",
		netip.AddrPortFrom(lab.VIP, drainPort), fwd)
	if fwd == "fullnat" {
		fmt.Fprintf(&b, "    local_addresses: [\"%s\"]\n", lab.DirectorRealSide[0])
	}
	b.WriteString("    real_servers:\n")
	for _, a := range lab.RealAddrs {
		fmt.Fprintf(&b, "      - address: \"%s\"\n", netip.AddrPortFrom(a, drainPort))
	}
	return b.String()
}

func drainConfig(services string) string {
	if services == "" {
		return "grace_period: " + drainGrace + "\nvirtual_servers: []\n"
	}
	return "grace_period: " + drainGrace + "\nvirtual_servers:\n" + services
}

// startDrainLab starts govs with one service of forwarding fwd and opens
// the long-lived connection through the VIP.
func startDrainLab(t *testing.T, lab *netns.LVS, fwd string) *drainLab {
	t.Helper()
	if rep := nft.ProbeKernel(lab.Director.FD()); rep.Err() != nil {
		t.Skipf("kernel dataplane not available here: %v", rep.Err())
	}
	l := &drainLab{natLab: &natLab{LVS: lab, t: t}}
	l.serveTCP(drainPort)
	dir := t.TempDir()
	l.cfg = filepath.Join(dir, "govs.yaml")
	writeFile(t, l.cfg, drainConfig(natService(lab, fwd)))
	l.gov = runDaemon(t, "govs", exec.Command("ip", "netns", "exec", lab.Director.Name, govsBin,
		"--socket", filepath.Join(dir, "govs.sock"), "run", "-c", l.cfg), 0)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := lab.Director.Exec("nft", "list", "ruleset")
			t.Logf("ruleset at failure:\n%s", out)
			out, _ = lab.Director.Exec("conntrack", "-L")
			t.Logf("conntrack at failure:\n%s", out)
		}
	})
	// Signals before this line would find govs without its handlers.
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(l.gov.log(), "govs running") })
	loopback.WaitFor(t, "govs to serve the VIP", func() bool { _, _, err := l.askOnce(drainPort); return err == nil })
	cc, err := l.dial(drainPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.c.Close() })
	l.conn = cc
	if l.first, _, err = cc.ask(); err != nil {
		t.Fatal(err)
	}
	return l
}

// keepsTalking asks on the long-lived connection every 50 ms for about
// two seconds: every answer must come, from the same real server.
func (l *drainLab) keepsTalking(when string) {
	l.t.Helper()
	for i := range 40 {
		name, _, err := l.conn.ask()
		if err != nil {
			l.t.Fatalf("%s: the established connection broke at exchange %d: %v", when, i, err)
		}
		if name != l.first {
			l.t.Fatalf("%s: the established connection was answered by %s, want %s", when, name, l.first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited waits (generously) for govs to exit once the connection is
// closed: the last flow gone, the grace period ends early.
func (l *drainLab) exitsOnceIdle() {
	l.t.Helper()
	l.conn.c.Close()
	select {
	case <-l.gov.done:
	case <-time.After(20 * time.Second):
		l.t.Fatal("govs still runs 20 s after the last connection ended")
	}
	if l.gov.err != nil {
		l.t.Fatalf("govs exited with %v", l.gov.err)
	}
	if out, err := l.Director.Exec("nft", "list", "table", "inet", "govs"); err == nil {
		l.t.Fatalf("govs left its table behind:\n%s", out)
	}
}

// SIGTERM: the VIP takes no new flows, but the established connection
// keeps its translation (both ways) for the grace period, and govs exits
// as soon as it has ended, removing its table.
func testDrainOnStop(t *testing.T, lab *netns.LVS, fwd string) {
	l := startDrainLab(t, lab, fwd)
	l.gov.signal(t, syscall.SIGTERM)
	loopback.WaitFor(t, "govs to start draining", func() bool { return strings.Contains(l.gov.log(), "shutting down") })
	l.keepsTalking("after SIGTERM")
	select {
	case <-l.gov.done:
		t.Fatalf("govs exited while a connection was established: %v", l.gov.err)
	default:
	}
	l.exitsOnceIdle()
}

// SIGHUP with a file without any kernel service: the removed service's
// established connection keeps its translation, a reload bringing a nat
// service back serves new connections at once, and a stop afterwards
// drains as usual.
func testDrainOnReload(t *testing.T, lab *netns.LVS, fwd string) {
	l := startDrainLab(t, lab, fwd)
	reloads := strings.Count(l.gov.log(), "configuration reloaded")
	reload := func(services string) {
		t.Helper()
		writeFile(t, l.cfg, drainConfig(services))
		l.gov.signal(t, syscall.SIGHUP)
		reloads++
		loopback.WaitFor(t, "the reload", func() bool { return strings.Count(l.gov.log(), "configuration reloaded") >= reloads })
	}
	reload("")
	l.keepsTalking("after a reload removed the last kernel service")
	reload(natService(lab, fwd))
	if _, _, err := l.askOnce(drainPort); err != nil {
		t.Fatalf("new connection after the service came back: %v", err)
	}
	l.keepsTalking("after the service came back")
	reload("")
	l.gov.signal(t, syscall.SIGTERM)
	loopback.WaitFor(t, "govs to start draining", func() bool { return strings.Contains(l.gov.log(), "shutting down") })
	l.keepsTalking("after SIGTERM with no kernel service left")
	l.exitsOnceIdle()
}

func TestAbuseNATStopKeepsEstablished(t *testing.T) {
	testDrainOnStop(t, netns.NewLVS(t, 2), "nat")
}

func TestAbuseFullNATStopKeepsEstablished(t *testing.T) {
	testDrainOnStop(t, netns.NewLVS(t, 2), "fullnat")
}

func TestAbuseNAT6StopKeepsEstablished(t *testing.T) {
	testDrainOnStop(t, netns.NewLVS6(t, 2), "nat")
}

func TestAbuseNATReloadKeepsEstablished(t *testing.T) {
	testDrainOnReload(t, netns.NewLVS(t, 2), "nat")
}

func TestAbuseFullNATReloadKeepsEstablished(t *testing.T) {
	testDrainOnReload(t, netns.NewLVS(t, 2), "fullnat")
}

func TestAbuseNAT6ReloadKeepsEstablished(t *testing.T) {
	testDrainOnReload(t, netns.NewLVS6(t, 2), "fullnat")
}

// A reload that removes the last kernel service keeps the table while the
// removed service's connection lives, and removes it once the connection
// has ended: a configuration without kernel services leaves nothing in the
// namespace (no conntrack for every packet).
func TestAbuseNATReloadRemovesIdleTable(t *testing.T) {
	l := startDrainLab(t, netns.NewLVS(t, 2), "nat")
	writeFile(t, l.cfg, drainConfig(""))
	l.gov.signal(t, syscall.SIGHUP)
	loopback.WaitFor(t, "the reload", func() bool { return strings.Contains(l.gov.log(), "configuration reloaded") })
	l.keepsTalking("after a reload removed the last kernel service")
	if out, err := l.Director.Exec("nft", "list", "table", "inet", "govs"); err != nil {
		t.Fatalf("the table went while a connection of the removed service lived: %v: %s", err, out)
	}
	l.conn.c.Close()
	loopback.WaitFor(t, "the idle table to go", func() bool {
		_, err := l.Director.Exec("nft", "list", "table", "inet", "govs")
		return err != nil
	})
	// And a service added again is served at once.
	writeFile(t, l.cfg, drainConfig(natService(l.LVS, "nat")))
	l.gov.signal(t, syscall.SIGHUP)
	loopback.WaitFor(t, "the service to be back", func() bool { _, _, err := l.askOnce(drainPort); return err == nil })
}

// A reload that removes the last kernel service while a connection of it
// lives: the table (and the connection's translation) goes when the
// removed service's grace period ends, not before and not never.
func TestAbuseNATReloadGraceEndRemovesTable(t *testing.T) {
	l := startDrainLab(t, netns.NewLVS(t, 2), "nat")
	writeFile(t, l.cfg, "grace_period: 2s\nvirtual_servers: []\n")
	l.gov.signal(t, syscall.SIGHUP)
	loopback.WaitFor(t, "the reload", func() bool { return strings.Contains(l.gov.log(), "configuration reloaded") })
	if _, _, err := l.conn.ask(); err != nil {
		t.Fatalf("the established connection broke at the reload: %v", err)
	}
	loopback.WaitFor(t, "the table to go at the end of the grace period", func() bool {
		_, err := l.Director.Exec("nft", "list", "table", "inet", "govs")
		return err != nil
	})
	if !strings.Contains(l.gov.log(), "nftables table removed") {
		t.Errorf("govs did not log the table's removal")
	}
}
