package health

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/govs-lb/govs/internal/script"
)

// check runs one check of s with a timeout.
func check(t *testing.T, s Spec) Result {
	t.Helper()
	if s.Timeout == 0 {
		s.Timeout = 2 * time.Second
	}
	c, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	return c.Check(ctx)
}

func wantPass(t *testing.T, r Result, msg string) {
	t.Helper()
	if !r.OK || !strings.Contains(r.Msg, msg) {
		t.Fatalf("got %+v, want a pass saying %q", r, msg)
	}
}

func wantFail(t *testing.T, r Result, msg string) {
	t.Helper()
	if r.OK || !strings.Contains(r.Msg, msg) {
		t.Fatalf("got %+v, want a failure saying %q", r, msg)
	}
}

// server is a TCP server on loopback that can go down and come back on the
// same address.
type server struct {
	t     *testing.T
	addr  netip.AddrPort
	serve func(net.Conn)
	mu    sync.Mutex
	ln    net.Listener
	wg    sync.WaitGroup
}

func startServer(t *testing.T, serve func(net.Conn)) *server {
	s := &server{t: t, serve: serve}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	s.run(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *server) run(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				s.serve(c)
			}()
		}
	}()
}

func (s *server) stop() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *server) restart() {
	ln, err := net.Listen("tcp", s.addr.String())
	if err != nil {
		s.t.Fatal(err)
	}
	s.run(ln)
}

func TestTCPCheck(t *testing.T) {
	s := startServer(t, func(net.Conn) {})
	spec := Spec{Type: "tcp", Target: s.addr}
	wantPass(t, check(t, spec), "connected")
	s.stop()
	wantFail(t, check(t, spec), "connect: connection refused")
	s.restart()
	wantPass(t, check(t, spec), "connected")
}

// httpServer serves any GET with a status and body the test sets; it can
// go down and come back on the same address.
type httpServer struct {
	t      *testing.T
	addr   netip.AddrPort
	tls    *tls.Config
	srv    *http.Server
	status atomic.Int32
	body   atomic.Value
	host   atomic.Value
}

func startHTTP(t *testing.T, tlsConfig *tls.Config) *httpServer {
	h := &httpServer{t: t, tls: tlsConfig}
	h.status.Store(200)
	h.body.Store("hello")
	h.host.Store("")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	h.serve(ln)
	t.Cleanup(h.stop)
	return h
}

func (h *httpServer) serve(ln net.Listener) {
	if h.tls != nil {
		ln = tls.NewListener(ln, h.tls)
	}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.host.Store(r.Host)
		w.WriteHeader(int(h.status.Load()))
		io.WriteString(w, h.body.Load().(string))
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go h.srv.Serve(ln)
}

func (h *httpServer) stop() { h.srv.Close() }

func (h *httpServer) restart() {
	ln, err := net.Listen("tcp", h.addr.String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.serve(ln)
}

func TestHTTPCheck(t *testing.T) {
	h := startHTTP(t, nil)
	spec := Spec{Type: "http", Target: h.addr, Path: "/health"}
	wantPass(t, check(t, spec), "status 200")

	h.status.Store(503)
	wantFail(t, check(t, spec), "status 503, want 2xx")
	spec.ExpectStatus = []int{200, 503}
	wantPass(t, check(t, spec), "status 503")

	h.status.Store(200)
	sum := md5.Sum([]byte("hello"))
	spec.ExpectDigest = hex.EncodeToString(sum[:])
	wantPass(t, check(t, spec), "status 200")
	h.body.Store("defaced")
	wantFail(t, check(t, spec), "body digest")

	spec.ExpectDigest, spec.Host = "", "www.example.test"
	wantPass(t, check(t, spec), "status 200")
	if got := h.host.Load(); got != "www.example.test" {
		t.Fatalf("Host header %q", got)
	}

	h.stop()
	wantFail(t, check(t, spec), "connection refused")
	h.restart()
	wantPass(t, check(t, spec), "status 200")
}

func TestHTTPCheckBoundsBody(t *testing.T) {
	h := startHTTP(t, nil)
	h.body.Store(strings.Repeat("x", 3*MaxBody))
	c, err := HTTPClient(Spec{Type: "http", Target: h.addr})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Fetch(context.Background(), c, URL(Spec{Type: "http", Target: h.addr, Path: "/"}), "")
	if err != nil || f.Length != MaxBody {
		t.Fatalf("fetched %+v, %v: want %d bytes read", f, err, MaxBody)
	}
}

// testPKI is a CA and a server certificate for www.example.test and 127.0.0.1.
type testPKI struct {
	caFile string
	server tls.Certificate
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "govs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "www.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"www.example.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return testPKI{caFile: caFile, server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

func TestHTTPSCheck(t *testing.T) {
	pki := newPKI(t)
	var sni atomic.Value
	sni.Store("")
	cfg := &tls.Config{Certificates: []tls.Certificate{pki.server}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	h := startHTTP(t, cfg)
	spec := Spec{Type: "https", Target: h.addr, Path: "/"}
	wantPass(t, check(t, spec), "status 200") // not verified by default, as keepalived

	spec.TLSVerify = true
	wantFail(t, check(t, spec), "certificate") // unknown authority
	spec.TLSCA = pki.caFile
	wantPass(t, check(t, spec), "status 200") // the IP is in the certificate
	spec.SNI = "www.example.test"
	wantPass(t, check(t, spec), "status 200")
	if got := sni.Load(); got != "www.example.test" {
		t.Fatalf("SNI %q", got)
	}
	spec.SNI = "other.example.test"
	wantFail(t, check(t, spec), "certificate")
	spec.SNI, spec.Host = "", "www.example.test" // SNI defaults to host
	wantPass(t, check(t, spec), "status 200")
	if got := sni.Load(); got != "www.example.test" {
		t.Fatalf("SNI from host: %q", got)
	}
	h.stop()
	wantFail(t, check(t, spec), "connection refused")
	h.restart()
	wantPass(t, check(t, spec), "status 200")
}

// dnsServer answers SOA for ".", A for www.example.test and NXDOMAIN otherwise.
func startDNS(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true, Authoritative: true}, Questions: q.Questions}
			qq := q.Questions[0]
			h := dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case qq.Name.String() == "." && qq.Type == dnsmessage.TypeSOA:
				ns, _ := dnsmessage.NewName("ns.example.test.")
				resp.Answers = []dnsmessage.Resource{{Header: h, Body: &dnsmessage.SOAResource{NS: ns, MBox: ns, Serial: 1, Refresh: 1, Retry: 1, Expire: 1, MinTTL: 1}}}
			case qq.Name.String() == "www.example.test." && qq.Type == dnsmessage.TypeA:
				resp.Answers = []dnsmessage.Resource{{Header: h, Body: &dnsmessage.AResource{A: [4]byte{127, 0, 0, 9}}}}
			case qq.Name.String() == "www.example.test.":
				// exists, no record of that type: an empty answer
			default:
				resp.RCode = dnsmessage.RCodeNameError
			}
			b, _ := resp.Pack()
			conn.WriteToUDPAddrPort(b, from)
		}
	}()
	return conn, conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestDNSCheck(t *testing.T) {
	conn, addr := startDNS(t)
	spec := Spec{Type: "dns", Target: addr, QueryName: ".", QueryType: "SOA"}
	wantPass(t, check(t, spec), "1 answers")
	wantPass(t, check(t, Spec{Type: "dns", Target: addr, QueryName: "www.example.test", QueryType: "A"}), "1 answers")
	wantFail(t, check(t, Spec{Type: "dns", Target: addr, QueryName: "www.example.test", QueryType: "MX"}), "no answer")
	wantFail(t, check(t, Spec{Type: "dns", Target: addr, QueryName: "nope.example.test", QueryType: "A"}), "NameError")
	conn.Close()
	wantFail(t, check(t, spec), "port unreachable")
	// Back on the same port.
	c2, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Skip("port taken meanwhile:", err)
	}
	c2.Close()
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "check.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScriptCheck(t *testing.T) {
	dir := t.TempDir()
	codeFile := filepath.Join(dir, "code")
	script := writeScript(t, `echo "checking $GOVS_REAL_SERVER"; exit $(cat `+codeFile+`)`)
	target := netip.MustParseAddrPort("127.0.0.1:80")
	spec := Spec{Type: "script", Target: target, Command: script, RunAs: asRoot}
	set := func(code int) { os.WriteFile(codeFile, []byte(strconv.Itoa(code)), 0o644) }

	set(0)
	wantPass(t, check(t, spec), "exit 0: checking 127.0.0.1:80")
	set(1)
	wantFail(t, check(t, spec), "exit 1")
	set(7)
	wantFail(t, check(t, spec), "exit 7") // without dynamic, anything but 0 is down
	spec.Dynamic = true
	r := check(t, spec)
	if !r.OK || r.WeightMode != WeightSet || r.Weight != 5 {
		t.Fatalf("dynamic exit 7: %+v, want up with weight 5", r)
	}
	set(1)
	wantFail(t, check(t, spec), "exit 1") // 1 is down even with dynamic
	set(0)
	wantPass(t, check(t, spec), "exit 0")
}

func TestScriptTimeoutKillsGroupAndReaps(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	// The command (run by the shell that is our child) starts a child in its
	// process group, records both PIDs and hangs.
	command := `sleep 30 & echo $$ $! > ` + pids + `.tmp; mv ` + pids + `.tmp ` + pids + `; sleep 30`
	start := time.Now()
	r := check(t, Spec{Type: "script", Command: command, Timeout: 300 * time.Millisecond, RunAs: asRoot})
	wantFail(t, r, "timed out")
	// Held by the script would be 30 s; 15 s leaves a loaded machine its
	// seconds of fork, exec and kill.
	if el := time.Since(start); el > 15*time.Second {
		t.Fatalf("the check took %s: the hung script held it", el)
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	var shell, child int
	fmt.Sscan(string(b), &shell, &child)
	// The shell was our child: reaped, so gone entirely (no zombie).
	if err := syscall.Kill(shell, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("shell %d still exists (kill 0: %v): not reaped", shell, err)
	}
	// Its child was killed with the group: gone, or a zombie of whoever
	// inherited it, but not running. (Generous: a loaded machine may take
	// a while to end a killed process.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			break // gone
		}
		fields := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the script's child %d still runs: %s", child, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// asRoot runs the scripts of these tests, which live in (and write to)
// test directories only root may enter, as root.
var asRoot = script.Policy{User: "root"}

func TestRunCommandEnvAndOutput(t *testing.T) {
	code, out, err := RunCommand(context.Background(), asRoot, `echo "$GOVS_X"; exit 3`, []string{"GOVS_X=hello"})
	if err != nil || code != 3 || out != "hello" {
		t.Fatalf("RunCommand = %d %q %v", code, out, err)
	}
	// A huge output is cut, never blocks.
	code, out, err = RunCommand(context.Background(), asRoot, `head -c 1000000 /dev/zero | tr '\0' x`, nil)
	if err != nil || code != 0 || len(out) != 512 {
		t.Fatalf("RunCommand of a big output = %d, %d bytes, %v", code, len(out), err)
	}
}

func agentServer(t *testing.T, reply *atomic.Value) *server {
	return startServer(t, func(c net.Conn) { io.WriteString(c, reply.Load().(string)) })
}

func TestAgentCheck(t *testing.T) {
	var reply atomic.Value
	reply.Store("up 75%\n")
	s := agentServer(t, &reply)
	spec := Spec{Type: "agent", Target: s.addr}
	r := check(t, spec)
	if !r.OK || !r.HasAgent || r.Agent.Percent != 75 || r.Agent.Op != OpUp || r.Msg != "agent: up 75%" {
		t.Fatalf("agent: %+v", r)
	}
	reply.Store("drain maxconn:12 # going away")
	r = check(t, spec)
	if !r.OK || r.Agent.Admin != AdminDrain || r.Agent.MaxConn != 12 || r.Agent.Desc != "going away" {
		t.Fatalf("agent: %+v", r)
	}
	s.stop()
	wantFail(t, check(t, spec), "agent: connection refused")
	s.restart()
	wantPass(t, check(t, spec), "agent: drain")
}

func TestAgentNextToAnotherCheck(t *testing.T) {
	var reply atomic.Value
	reply.Store("50%")
	agent := agentServer(t, &reply)
	web := startServer(t, func(net.Conn) {})
	spec := Spec{Type: "tcp", Target: web.addr, AgentPort: agent.addr.Port()}
	r := check(t, spec)
	if !r.OK || !r.HasAgent || r.Agent.Percent != 50 || r.Msg != "connected; agent: 50%" {
		t.Fatalf("tcp + agent: %+v", r)
	}
	agent.stop() // an agent that does not answer changes nothing
	r = check(t, spec)
	if !r.OK || r.HasAgent {
		t.Fatalf("tcp + dead agent: %+v", r)
	}
	web.stop()
	wantFail(t, check(t, spec), "connection refused")
}

func TestSMTPCheck(t *testing.T) {
	var banner atomic.Value
	banner.Store("220 mail.example.test ESMTP\r\n")
	var helo atomic.Value
	helo.Store("")
	s := startServer(t, func(c net.Conn) {
		io.WriteString(c, banner.Load().(string))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		helo.Store(strings.TrimSpace(line))
		io.WriteString(c, "250-mail.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		r.ReadString('\n') // QUIT
	})
	spec := Spec{Type: "smtp", Target: s.addr, HeloName: "lb.example.test"}
	wantPass(t, check(t, spec), "smtp 250")
	if got := helo.Load(); got != "EHLO lb.example.test" {
		t.Fatalf("server got %q", got)
	}
	banner.Store("554 go away\r\n")
	wantFail(t, check(t, spec), "smtp greeting 554 go away")
	s.stop()
	wantFail(t, check(t, spec), "connection refused")
}

func TestUDPCheck(t *testing.T) {
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	var answer atomic.Bool
	answer.Store(true)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if answer.Load() {
				echo.WriteToUDPAddrPort(append([]byte{0xAB, 0x12}, buf[:n]...), from)
			}
		}
	}()
	addr := echo.LocalAddr().(*net.UDPAddr).AddrPort()
	wantPass(t, check(t, Spec{Type: "udp", Target: addr, Payload: []byte("ping"), RequireReply: true}), "6 byte reply")
	pattern := []byte{0xA0, 0xF0, 0x12, 0xFF} // "Ax12": first nibble A, any, then 12
	wantPass(t, check(t, Spec{Type: "udp", Target: addr, RequireReply: true, ExpectReply: pattern}), "reply")
	wantFail(t, check(t, Spec{Type: "udp", Target: addr, RequireReply: true, ExpectReply: []byte{0xCD, 0xFF}}), "does not match")

	answer.Store(false)
	short := 300 * time.Millisecond
	wantPass(t, check(t, Spec{Type: "udp", Target: addr, Timeout: short}), "no reply, no error")
	wantFail(t, check(t, Spec{Type: "udp", Target: addr, Timeout: short, RequireReply: true}), "no reply")

	echo.Close()
	wantFail(t, check(t, Spec{Type: "udp", Target: addr, Timeout: time.Second}), "port unreachable")
}

func TestPingCheck(t *testing.T) {
	for _, network := range []string{"udp4", "ip4:icmp"} {
		c, err := net.ListenPacket(network, "127.0.0.1")
		if err == nil {
			c.Close()
			wantPass(t, check(t, Spec{Type: "ping", Target: netip.MustParseAddrPort("127.0.0.1:0")}), "echo reply")
			return
		}
	}
	t.Skip("ping check not tested: neither an unprivileged ICMP socket (net.ipv4.ping_group_range) nor a raw socket (root) is allowed here")
}

func TestFileCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "weight")
	spec := Spec{Type: "file", File: p, FileWeight: 1}
	wantFail(t, check(t, spec), "no such file")
	os.WriteFile(p, []byte("25\n"), 0o644)
	r := check(t, spec)
	if !r.OK || r.WeightMode != WeightKeep {
		t.Fatalf("file without dynamic: %+v", r)
	}
	spec.Dynamic, spec.FileWeight = true, 2
	r = check(t, spec)
	if !r.OK || r.WeightMode != WeightAdd || r.Weight != 50 {
		t.Fatalf("file with dynamic: %+v", r)
	}
	os.WriteFile(p, []byte("lots"), 0o644)
	wantFail(t, check(t, spec), "not a whole number")
	spec.FileWeight = 0 // 0 up, anything else down
	os.WriteFile(p, []byte("0"), 0o644)
	wantPass(t, check(t, spec), ": 0")
	os.WriteFile(p, []byte("1"), 0o644)
	wantFail(t, check(t, spec), ": 1")
}

func TestNewUnknownType(t *testing.T) {
	if _, err := New(Spec{Type: "telepathy"}); err == nil || !strings.Contains(err.Error(), "unknown health check type") {
		t.Fatalf("New: %v", err)
	}
	want := "agent dns file http https ping script smtp tcp udp"
	if got := strings.Join(Types(), " "); got != want {
		t.Fatalf("Types() = %s, want %s", got, want)
	}
}
