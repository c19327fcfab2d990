// Package netns builds throwaway network topologies for govs's integration
// tests: named network namespaces joined by veth pairs, with addresses,
// routes and sysctls, and runs code inside them. Everything a Topology
// creates is removed by t.Cleanup, also when the test fails half way.
//
// Addresses are private (10.x) and exist only inside the namespaces the
// test created; the host's own interfaces, routes and rulesets are never
// touched. It needs root: Require skips the test with a message otherwise.
//
// It must not import any govs package: tests of every package may use it.
package netns

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	vns "github.com/vishvananda/netns"
)

// Require skips t unless the test runs as root with the ip command.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (run the test as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
}

var seq atomic.Int64

// NS is a named network namespace.
type NS struct {
	Name string
	t    testing.TB
}

// New creates a namespace with a unique name built from prefix, brings its
// loopback up and registers its removal (which also ends the sockets and
// veth links it holds).
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	sweepOnce()
	name := fmt.Sprintf("govs-%d-%d-%s", os.Getpid(), seq.Add(1), prefix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns := &NS{Name: name, t: t}
	ns.IP("link", "set", "lo", "up")
	return ns
}

// IP runs "ip -n NS args..." and fails the test on error.
func (ns *NS) IP(args ...string) string {
	ns.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		ns.t.Fatalf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Exec runs a command inside the namespace and returns its combined output.
func (ns *NS) Exec(name string, args ...string) (string, error) {
	var b bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// Sysctl sets a sysctl inside the namespace, key in dotted form
// ("net.ipv4.ip_forward").
func (ns *NS) Sysctl(key, value string) {
	ns.t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) }); err != nil {
		ns.t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns.Name, err)
	}
}

// Handle opens the namespace for APIs that take a namespace file
// descriptor (netlink, nftables, conntrack). The caller closes it.
func (ns *NS) Handle() (vns.NsHandle, error) { return vns.GetFromName(ns.Name) }

// FD returns a file descriptor of the namespace that stays open until the
// test's cleanup.
func (ns *NS) FD() int {
	ns.t.Helper()
	h, err := ns.Handle()
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(func() { h.Close() })
	return int(h)
}

// Do runs f on an OS thread switched into the namespace, so that sockets f
// opens live there (they stay there after Do returns, and may be used from
// any goroutine). The thread is switched back before it is released; if that
// fails the thread is left locked, and so ends with its goroutine.
func (ns *NS) Do(f func() error) error {
	target, err := ns.Handle()
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := vns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := vns.Set(orig); err != nil {
			errc <- fmt.Errorf("netns: cannot switch the thread back: %w", err)
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Link joins a and b with a veth pair named nameA in a and nameB in b,
// gives each end its address (CIDR form, "" for none) and brings both up.
func Link(a *NS, nameA, addrA string, b *NS, nameB, addrB string) {
	a.t.Helper()
	a.IP("link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", b.Name)
	for _, end := range []struct {
		ns         *NS
		name, addr string
	}{{a, nameA, addrA}, {b, nameB, addrB}} {
		if end.addr != "" {
			end.ns.IP("addr", "add", end.addr, "dev", end.name)
		}
		end.ns.IP("link", "set", end.name, "up")
	}
}

// sweepOnce removes, once per process, namespaces this package created in
// processes that are gone (a test binary killed by its timeout cannot run
// its cleanups). Only names of this package's form "govs-PID-N-..." whose
// PID is not running are touched.
var sweepOnce = sync.OnceFunc(func() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "govs-")
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its owner still runs
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
})
