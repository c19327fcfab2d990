package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/test/loopback"
)

// TestTerminationIdleAtStop: a stop closes a keep-alive connection that
// has been quiet for a second and owes its client nothing, with a FIN:
// govs ended it by policy, PD.
func TestTerminationIdleAtStop(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := loopback.Addr(t, "tcp")
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`logging: {access_log: true}
virtual_servers: [{name: t-idle-stop, address: %s, real_servers: [{address: %s}]}]`, vip, a.addr)))
	if err != nil {
		t.Fatal(err)
	}
	d := director.New(testLog(), New(testLog()))
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	c := dial(t, vip)
	r := bufio.NewReader(c)
	exchange(t, c, r)
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(30 * time.Second) }()
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Errorf("idle connection at stop: %v, want EOF (a FIN)", err)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	checkCode(t, path, "t-idle-stop", a.addr, "PD")
}

// inNetNSEnv marks the test binary re-executed in a network namespace of
// its own.
const inNetNSEnv = "GOVS_PROXY_TEST_IN_NETNS"

// TestTerminationResource: a connect that fails for want of a local port
// is govs's resource, RC. The test runs itself again in a network
// namespace of its own (unshare --net) whose ephemeral port range is one
// port: the first connection to the real server takes it, the second
// connect to the same real server finds none (EADDRNOTAVAIL), without
// starving the machine of anything.
func TestTerminationResource(t *testing.T) {
	if os.Getenv(inNetNSEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a network namespace of its own")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			if os.Getenv("CI") == "" {
				t.Skip("needs unshare (util-linux)")
			}
			t.Fatal("unshare not installed")
		}
		cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run", "^TestTerminationResource$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inNetNSEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestTerminationResource") {
			t.Fatalf("in a network namespace of its own: %v\n%s", err, out)
		}
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := terminationCase(t, "t-resource", "", a.addr)
	// Listening on port 0 takes from the range too: one port, outside
	// the default range, once the listeners have theirs.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("61000 61000"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The clients bind ports of their own, outside the range.
	client := func(port int) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", vip)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		return c, err
	}
	first, err := client(40001)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, first, bufio.NewReader(first)) // holds port 61000 to the real server
	// The director resets the second, maybe before the dial returns.
	if second, err := client(40002); err == nil {
		if n, _ := second.Read(make([]byte, 1)); n != 0 {
			t.Error("the second connection got data")
		}
	}
	l := checkCode(t, path, "t-resource", a.addr, "RC")
	if l.Client != "127.0.0.1:40002" {
		t.Errorf("RC line of client %s, want 127.0.0.1:40002", l.Client)
	}
}
