package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/test/loopback"
)

// The termination code of each path, made to happen for real on loopback
// sockets, read back from a real access-log file (the file writer) and
// from the counters behind /metrics.

// logLine is one access-log line, decoded independently of the writer.
type logLine struct {
	Time        string   `json:"time"`
	Service     string   `json:"service"`
	Client      string   `json:"client"`
	RealServer  string   `json:"real_server"`
	ConnectMs   *float64 `json:"connect_ms"`
	DurationMs  float64  `json:"duration_ms"`
	BytesIn     uint64   `json:"bytes_in"`
	BytesOut    uint64   `json:"bytes_out"`
	Termination string   `json:"termination"`
}

// accessFile makes a file writer the process's access log for the test.
func accessFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := accesslog.OpenWriter(path, testLog())
	if err != nil {
		t.Fatal(err)
	}
	if old := accesslog.SetWriter(w); old != nil {
		old.Close()
	}
	accesslog.Terminations.Reset()
	t.Cleanup(func() {
		if w := accesslog.SetWriter(nil); w != nil {
			w.Close()
		}
	})
	return path
}

// waitLine waits for the access-log line of service and returns it.
func waitLine(t *testing.T, path, service string) logLine {
	t.Helper()
	var found *logLine
	loopback.WaitFor(t, "access-log line of "+service, func() bool {
		b, _ := os.ReadFile(path)
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			var ll logLine
			if err := json.Unmarshal(l, &ll); err != nil {
				t.Fatalf("bad access-log line %q: %v", l, err)
			}
			if ll.Service == service {
				found = &ll
				return true
			}
		}
		return false
	})
	return *found
}

// terminationCase starts a director with one TCP service named name and
// extra settings, whose real server is rs.
func terminationCase(t *testing.T, name, extra, rs string) string {
	t.Helper()
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	startDirector(t, fmt.Sprintf(`logging: {access_log: true}
virtual_servers: [{name: %s, address: %s, retries: 0, %s real_servers: [{address: %s}]}]`, name, vip, extra, rs))
	return vip
}

func checkCode(t *testing.T, path, service, rs, want string) logLine {
	t.Helper()
	l := waitLine(t, path, service)
	if l.Termination != want {
		t.Errorf("%s: termination %q, want %q (line %+v)", service, l.Termination, want, l)
	}
	if l.RealServer != rs {
		t.Errorf("%s: real_server %q, want %q", service, l.RealServer, rs)
	}
	var ap netip.AddrPort
	if rs != "" {
		ap = netip.MustParseAddrPort(rs)
	}
	code := accesslog.Termination{want[0], want[1]}
	if n := accesslog.Terminations.Get(service, ap, code); n != 1 {
		t.Errorf("%s: govs_backend_terminations_total{termination=%q} = %d, want 1", service, want, n)
	}
	if _, err := time.Parse(time.RFC3339, l.Time); err != nil {
		t.Errorf("%s: time %q: %v", service, l.Time, err)
	}
	return l
}

func dial(t *testing.T, vip string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", vip, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// refusedDial connects and waits for the director to end the connection;
// the reset may come before the dial returns.
func refusedDial(t *testing.T, vip string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", vip, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Error("a refused connection got data")
	}
}

// exchange sends a line and reads the answer.
func exchange(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	fmt.Fprintf(c, "hello\n")
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("no answer: %v", err)
	}
}

func TestTerminationNormal(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := terminationCase(t, "t-normal", "", a.addr)
	c := dial(t, vip)
	exchange(t, c, bufio.NewReader(c))
	c.CloseWrite() // FIN; the line server then closes too
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("server side did not close cleanly: %v", err)
	}
	l := checkCode(t, path, "t-normal", a.addr, "--")
	if l.BytesIn != 6 || l.BytesOut != 8 || l.ConnectMs == nil || l.Client != c.LocalAddr().String() {
		t.Errorf("line %+v: want bytes_in 6, bytes_out 8, connect_ms, client %s", l, c.LocalAddr())
	}
}

func TestTerminationClientAbort(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := terminationCase(t, "t-client-abort", "", a.addr)
	c := dial(t, vip)
	exchange(t, c, bufio.NewReader(c))
	c.SetLinger(0)
	c.Close() // a reset
	checkCode(t, path, "t-client-abort", a.addr, "CD")
}

func TestTerminationServerRefused(t *testing.T) {
	path := accessFile(t)
	closed := loopback.Addr(t, "tcp") // nothing listens there
	vip := terminationCase(t, "t-refused", "", closed)
	refusedDial(t, vip)
	l := checkCode(t, path, "t-refused", closed, "SC")
	if l.ConnectMs != nil {
		t.Errorf("connect_ms %v on a refused connection", *l.ConnectMs)
	}
}

// fullBacklog is a listener with a backlog of 0 that never accepts, filled:
// the kernel drops further SYNs, so a connect to it times out, as to a
// blackholed address.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue: connects go on until one hangs.
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the backlog never filled")
	return ""
}

func TestTerminationConnectTimeout(t *testing.T) {
	path := accessFile(t)
	hole := fullBacklog(t)
	vip := terminationCase(t, "t-connect-timeout", "connect_timeout: 300ms,", hole)
	refusedDial(t, vip)
	checkCode(t, path, "t-connect-timeout", hole, "sC")
}

func TestTerminationClientIdle(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := terminationCase(t, "t-client-idle", "idle_timeout: 300ms,", a.addr)
	c := dial(t, vip)
	r := bufio.NewReader(c)
	exchange(t, c, r) // answered: the client owes the next request
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("idle connection got data")
	}
	checkCode(t, path, "t-client-idle", a.addr, "cD")
}

// silent is a real server that reads and never answers.
// It keeps its side open after the client's FIN, until the test ends.
func silent(t *testing.T) string {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return loopback.Serve(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		<-done
	})
}

func TestTerminationServerTimeout(t *testing.T) {
	path := accessFile(t)
	s := silent(t)
	vip := terminationCase(t, "t-server-timeout", "idle_timeout: 300ms,", s)
	c := dial(t, vip)
	fmt.Fprintf(c, "request owing an answer\n")
	c.Read(make([]byte, 1))
	checkCode(t, path, "t-server-timeout", s, "sD")
}

func TestTerminationHalfClosedTimeout(t *testing.T) {
	path := accessFile(t)
	s := silent(t) // reads the client's FIN and keeps its side open
	vip := terminationCase(t, "t-fin-timeout", "idle_timeout: 30s, tcpfin_timeout: 300ms,", s)
	c := dial(t, vip)
	fmt.Fprintf(c, "x\n")
	c.CloseWrite()
	c.Read(make([]byte, 1))
	checkCode(t, path, "t-fin-timeout", s, "sL")
}

// TestTerminationServerDown: the real server's process goes away while a
// request is in flight. Its sockets close with unread data, which the
// kernel answers with a reset, as when the process is killed (the end-to-
// end test kills a real process).
func TestTerminationServerDown(t *testing.T) {
	path := accessFile(t)
	got := make(chan net.Conn, 1)
	s := loopback.Serve(t, func(c net.Conn) {
		got <- c
		time.Sleep(time.Minute) // held until the test closes it
	})
	vip := terminationCase(t, "t-server-down", "", s)
	c := dial(t, vip)
	fmt.Fprintf(c, "unread\n")
	sc := <-got
	time.Sleep(50 * time.Millisecond) // the bytes reach the server's socket
	sc.Close()
	c.Read(make([]byte, 1))
	checkCode(t, path, "t-server-down", s, "SD")
}

// TestTerminationAdminKill: an operator removes the real server (a reload,
// as govsadm -d does); its connection ends when the grace period is over.
func TestTerminationAdminKill(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	b := startBackend(t, "b")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	cfg := `grace_period: 300ms
logging: {access_log: true}
virtual_servers: [{name: t-kill, address: %s, real_servers: [%s]}]`
	d := startDirector(t, fmt.Sprintf(cfg, vip, "{address: "+a.addr+"}"))
	c := dial(t, vip)
	exchange(t, c, bufio.NewReader(c))
	if err := apply(t, d, fmt.Sprintf(cfg, vip, "{address: "+b.addr+"}")); err != nil {
		t.Fatal(err)
	}
	c.Read(make([]byte, 1))
	checkCode(t, path, "t-kill", a.addr, "KD")
}

func TestTerminationMaxConnections(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	startDirector(t, fmt.Sprintf(`logging: {access_log: true}
virtual_servers: [{name: t-maxconn, address: %s, retries: 0, real_servers: [{address: %s, max_connections: 1}]}]`, vip, a.addr))
	c := dial(t, vip)
	exchange(t, c, bufio.NewReader(c)) // holds the one connection
	refusedDial(t, vip)
	checkCode(t, path, "t-maxconn", a.addr, "PC")
}

func TestTerminationPerClientLimit(t *testing.T) {
	path := accessFile(t)
	a := startBackend(t, "a")
	vip := terminationCase(t, "t-per-client", "max_connections_per_client: 1,", a.addr)
	c := dial(t, vip)
	exchange(t, c, bufio.NewReader(c))
	refusedDial(t, vip)
	checkCode(t, path, "t-per-client", "", "PC")
}

func TestTerminationUDP(t *testing.T) {
	path := accessFile(t)
	// A port nothing listens on: the real server answers with ICMP port
	// unreachable.
	closed := loopback.Addr(t, "udp")
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "udp"))
	startDirector(t, fmt.Sprintf(`logging: {access_log: true}
virtual_servers: [{name: t-udp, protocol: udp, address: %s, real_servers: [{address: %s}]}]`, vip, closed))
	c, err := net.Dial("udp", vip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	l := checkCode(t, path, "t-udp", closed, "SC")
	if l.BytesIn != 4 || l.ConnectMs != nil {
		t.Errorf("line %+v: want bytes_in 4, no connect_ms", l)
	}
}
