package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// nullDP is a dataplane that forwards nothing: the CLI tests need the
// director's table, not traffic (e2e_test.go runs the real daemon).
type nullDP struct{ director.NullDataplane }

const cliConfig = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    real_servers:
      - address: 127.0.0.1:9001
        weight: 1
      - address: 127.0.0.1:9002
        weight: 2
`

// daemonForTest serves a director's API on a socket in a temporary
// directory and returns the socket's path.
func daemonForTest(t *testing.T, yaml string) (string, *director.Director) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	d := director.New(log, nullDP{})
	cfg, err := config.Parse("govs.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	s := api.New(api.Options{Director: d, Log: log, RateInterval: time.Hour})
	sock := filepath.Join(t.TempDir(), "govs.sock")
	if err := s.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close(context.Background())
		d.Shutdown(0)
	})
	return sock, d
}

// govsadm runs the CLI in process.
func govsadm(t *testing.T, sock, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	argv := append([]string{"govsadm", "--socket", sock}, args...)
	code := run(argv, strings.NewReader(stdin), &out, &errb, func(string) string { return "" })
	return out.String(), errb.String(), code
}

func TestMessagesAndExitCodes(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	for _, tc := range []struct {
		args string
		code int
		msg  string
	}{
		{"-A -t 127.0.0.1:8080", 255, "Service already exists\n"},
		{"-E -t 127.0.0.1:1", 255, "No such service\n"},
		{"-D -t 127.0.0.1:1", 255, "No such service\n"},
		{"-Z -t 127.0.0.1:1", 255, "No such service\n"},
		{"-a -t 127.0.0.1:1 -r 127.0.0.2", 255, "Service not defined\n"},
		{"-a -t 127.0.0.1:8080 -r 127.0.0.1:9001", 255, "Destination already exists\n"},
		{"-e -t 127.0.0.1:8080 -r 127.0.0.1:9999", 255, "No such destination\n"},
		{"-d -t 127.0.0.1:8080 -r 127.0.0.1:9999", 255, "No such destination\n"},
		{"-A -t 127.0.0.1:8081 -s nope", 255, "Scheduler or persistence engine not found\n"},
		{"-E -t 127.0.0.1:8080 -s nope", 255, "Scheduler or persistence engine not found\n"},
		{"-a -t 127.0.0.1:8080 -r 127.0.0.1:9005 -i", 255, "forwarding method not supported: tunnelling (-i) needs IPIP tunnels (CONFIG_NET_IPIP), which govs does not offer; use -g (direct routing) or -m\n"},
		{"-a -t 127.0.0.1:8080 -r 127.0.0.1:9005 -m", 255, "forwarding: virtual service tcp/127.0.0.1:8080 forwards by proxy"},
		{"-e -t 127.0.0.1:8080 -r 127.0.0.1:9001 -x 5 -y 9", 255, "lower_threshold: lower_threshold 9 must be below upper_threshold 5\n"},
		{"-L -t 127.0.0.1:1", 1, "No such service\n"},
		{"-A -t 127.0.0.1", 2, "Zero port specified for non-persistent service\n"},
		{"-A -t 127.0.0.1:80 -o", 2, "One-Packet Scheduling is only for UDP virtual services\n"},
		{"-A -r 127.0.0.1:80", 2, "You need to supply the 'service-address' option for the 'add-service' command\n"},
		{"-A -t 127.0.0.1:80 -w 3", 2, "Illegal 'weight' option with the 'add-service' command\n"},
		{"-a -t 127.0.0.1:80", 2, "You need to supply the 'real-server' option for the 'add-server' command\n"},
		{"-L -c --stats", 2, "options conflicts in the list command\n"},
		{"-L -c -t 127.0.0.1:80", 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n"},
		{"-A -t 127.0.0.1:80 -s rr -s wlc", 2, "multiple 'scheduler' options specified\n"},
		{"-A -t 127.0.0.1:80 extra", 2, "unexpected argument extra\n"},
		{"-A -t 127.0.0.1:80 -L", 2, "invalid option `-L'\n"},
		{"-a -t 127.0.0.1:8080 -r 127.0.0.1:9009 -w 70000", 2, "illegal weight specified\n"},
		{"-A -t 127.0.0.1:80 -p 0", 2, "invalid timeout value `0' specified\n"},
		{"-A -t 127.0.0.1:80 -b sh-port", 2, "incompatible scheduler flag `sh-port'\n"},
		{"-A -t 127.0.0.1:80 -s sh -b nope", 2, "invalid scheduler flag `nope'\n"},
		{"-A -t 127.0.0.1:80 -p 60 -M 300.1.1.1", 2, "illegal virtual server persistent mask specified\n"},
		{"-A -t 127.0.0.1:80x", 2, "illegal virtual server address[:port] specified\n"},
		{"-a -t 127.0.0.1:8080 -r [::1]:80", 2, "Different address family is allowed only for tunneling servers\n"},
		{"-n -L", 255, "Try `govsadm -h' or 'govsadm --help' for more information.\n"},
		{"-L --bogus", 255, "--bogus: unknown option\n"},
		{"-A -t", 255, "-t: missing argument\n"},
		{"--set 1 x 3", 2, "invalid timeout value `x' specified\n"},
		{"--set 1 2", 2, "--set option requires 3 timeout values\n"},
		{"-A -f 0", 2, "invalid fwmark value `0' specified\n"},
		{"-A -f x1", 2, "invalid fwmark value `x1' specified\n"},
		{"-A -6 -f 1", 2, "-6 used before -f\n"},
		{"-a -f 1 -r [::1]:80", 2, "Different address family is allowed only for tunneling servers\n"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			_, stderr, code := govsadm(t, sock, "", strings.Fields(tc.args)...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Errorf("govsadm %s: exit %d, stderr %q; want exit %d, %q", tc.args, code, stderr, tc.code, tc.msg)
			}
		})
	}
	_, stderr, code := govsadm(t, filepath.Join(t.TempDir(), "none.sock"), "", "-L", "-n")
	if code != 2 || !strings.HasPrefix(stderr, "Can't initialize ipvs: ") {
		t.Errorf("no daemon: exit %d, %q", code, stderr)
	}
	out, _, code := govsadm(t, sock, "", "-h")
	if code != 0 || !strings.Contains(out, "Usage:") {
		t.Errorf("-h: exit %d, %q", code, out)
	}
}

func TestEditTheTable(t *testing.T) {
	sock, d := daemonForTest(t, cliConfig)
	steps := [][]string{
		{"-A", "-t", "127.0.0.1:8081", "-s", "rr", "-p"},
		{"-a", "-t", "127.0.0.1:8081", "-r", "127.0.0.1:9011", "-w", "5"},
		{"-a", "-t", "127.0.0.1:8081", "-r", "127.0.0.2", "-w", "0"}, // port from the service, as ipvsadm
		{"-e", "-t", "127.0.0.1:8080", "-r", "127.0.0.1:9002"},       // -e without -w: weight 1, as ipvsadm
		{"-d", "-t", "127.0.0.1:8080", "-r", "127.0.0.1:9001"},
		{"-A", "-u", "127.0.0.1:53", "-s", "sh", "-b", "sh-port", "-o"},
		{"--edit-service", "--tcp-service=127.0.0.1:8081", "--scheduler", "wrr", "--persistent=60", "-M", "255.255.0.0"},
	}
	for _, args := range steps {
		if _, stderr, code := govsadm(t, sock, "", args...); code != 0 {
			t.Fatalf("govsadm %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	out, _, _ := govsadm(t, sock, "", "-Ln")
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  127.0.0.1:8080 wlc
  -> 127.0.0.1:9002               Proxy   1      0          0         
TCP  127.0.0.1:8081 wrr persistent 60 mask 255.255.0.0
  -> 127.0.0.1:9011               Proxy   5      0          0         
  -> 127.0.0.2:8081               Proxy   0      0          0         
UDP  127.0.0.1:53 sh (sh-port) ops
`
	if out != want {
		t.Errorf("-Ln:\n%s\nwant:\n%s", out, want)
	}
	// The director runs what govsadm said.
	vs := d.Service("tcp/127.0.0.1:8081")
	if vs == nil || vs.Settings().SchedulerName != "wrr" || len(vs.RealServers()) != 2 {
		t.Fatalf("director: %+v", vs)
	}
	// -E without -p ends persistence, as with ipvsadm.
	govsadm(t, sock, "", "-E", "-t", "127.0.0.1:8081", "-s", "rr")
	out, _, _ = govsadm(t, sock, "", "-L", "-n", "-t", "127.0.0.1:8081")
	if !strings.Contains(out, "TCP  127.0.0.1:8081 rr\n") || strings.Contains(out, "IP Virtual Server") {
		t.Errorf("-L -t after -E:\n%s", out)
	}
	govsadm(t, sock, "", "-D", "-t", "127.0.0.1:8081")
	govsadm(t, sock, "", "-C")
	out, _, _ = govsadm(t, sock, "", "-L", "-n")
	if strings.Count(out, "\n") != 3 {
		t.Errorf("after -C:\n%s", out)
	}
}

func TestSaveRestoreRoundTrip(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	for _, args := range [][]string{
		{"-A", "-t", "127.0.0.2:443", "-s", "sh", "-b", "sh-fallback,sh-port", "-p", "600", "-M", "255.255.255.0"},
		{"-a", "-t", "127.0.0.2:443", "-r", "127.0.0.3:8443", "-w", "7", "-x", "100", "-y", "20"},
		{"-a", "-t", "127.0.0.2:443", "-r", "127.0.0.4:8443", "-w", "0"},
		{"-A", "-u", "127.0.0.2:53", "-s", "rr", "-o"},
		{"-a", "-u", "127.0.0.2:53", "-r", "127.0.0.5:5353"},
		{"-A", "-t", "[::1]:8080", "-s", "lc", "-p", "30", "-M", "64"},
		{"-a", "-t", "[::1]:8080", "-r", "[::1]:9001", "-w", "3"},
	} {
		if _, stderr, code := govsadm(t, sock, "", args...); code != 0 {
			t.Fatalf("govsadm %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}
	saved, _, code := govsadm(t, sock, "", "-S", "-n")
	if code != 0 {
		t.Fatal("-S failed")
	}
	listed, _, _ := govsadm(t, sock, "", "-L", "-n")
	if _, stderr, code := govsadm(t, sock, "", "-C"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := govsadm(t, sock, saved, "-R"); code != 0 {
		t.Fatalf("-R: exit %d: %s\n%s", code, stderr, saved)
	}
	again, _, _ := govsadm(t, sock, "", "-S", "-n")
	if again != saved {
		t.Errorf("-S after -R:\n%s\nwant:\n%s", again, saved)
	}
	if relisted, _, _ := govsadm(t, sock, "", "-L", "-n"); relisted != listed {
		t.Errorf("-L after -R:\n%s\nwant:\n%s", relisted, listed)
	}
	for _, want := range []string{
		"-A -t 127.0.0.2:443 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port\n",
		"-a -t 127.0.0.2:443 -r 127.0.0.3:8443 --proxy -w 7 -x 100 -y 20\n",
		"-A -u 127.0.0.2:53 -s rr -o\n",
		"-A -t [::1]:8080 -s lc -p 30 -M 64\n",
	} {
		if !strings.Contains(saved, want) {
			t.Errorf("-S lacks %q:\n%s", want, saved)
		}
	}
	// Rules as ipvsadm-save writes them, with comments and the program name.
	rules := "# saved\nipvsadm -A -t 127.0.0.9:80 -s rr\nipvsadm -a -t 127.0.0.9:80 -r 127.0.0.10:80 -w 2\n\n"
	if _, stderr, code := govsadm(t, sock, rules, "-R"); code != 0 {
		t.Fatalf("-R: %d %s", code, stderr)
	}
	out, _, _ := govsadm(t, sock, "", "-L", "-n", "-t", "127.0.0.9:80")
	if !strings.Contains(out, "  -> 127.0.0.10:80                Proxy   2") {
		t.Errorf("restored:\n%s", out)
	}
	// A refused line is reported and the restore goes on; the status is
	// the last line's.
	_, stderr, code := govsadm(t, sock, "-A -t 127.0.0.9:80\n-A -t 127.0.0.11:80\n", "-R")
	if code != 0 || stderr != "Service already exists\n" {
		t.Errorf("restore with a duplicate: exit %d, %q", code, stderr)
	}
	_, stderr, code = govsadm(t, sock, "-A -t 127.0.0.12:80 -w 1\n-A -t 127.0.0.13:80\n", "-R")
	if code != 2 || !strings.Contains(stderr, "Illegal 'weight' option") {
		t.Errorf("restore with a bad line: exit %d, %q", code, stderr)
	}
}

func TestZeroAndStats(t *testing.T) {
	sock, d := daemonForTest(t, cliConfig)
	vs := d.Service("tcp/127.0.0.1:8080")
	vs.Stats.Conns.Add(5)
	vs.RealServers()[0].Stats.Conns.Add(5)
	out, _, _ := govsadm(t, sock, "", "-L", "-n", "--stats")
	if !strings.Contains(out, "TCP  127.0.0.1:8080                      5        0") {
		t.Errorf("--stats:\n%s", out)
	}
	if _, stderr, code := govsadm(t, sock, "", "-Z"); code != 0 {
		t.Fatal(stderr)
	}
	out, _, _ = govsadm(t, sock, "", "-L", "-n", "--stats", "--exact")
	if !strings.Contains(out, "TCP  127.0.0.1:8080                      0        0") {
		t.Errorf("--stats after -Z:\n%s", out)
	}
	out, _, _ = govsadm(t, sock, "", "-L", "--timeout")
	if out != "Timeout (tcp tcpfin udp): 900 120 300\n" {
		t.Errorf("--timeout: %q", out)
	}
	out, stderr, code := govsadm(t, sock, "", "-L", "-n", "-c")
	if code != 0 || out != "IPVS connection entries\npro expire state       source             virtual            destination\n" || stderr != "" {
		t.Errorf("-c: %d %q %q", code, out, stderr)
	}
}

// --set tcp tcpfin udp sets the timeouts of every virtual service of its
// protocol through the API; 0 leaves one unchanged; -L --timeout shows them.
func TestSetTimeouts(t *testing.T) {
	sock, d := daemonForTest(t, `virtual_servers:
  - address: 127.0.0.1:8080
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.1:8081
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.1:53
    protocol: udp
    real_servers: [{address: 127.0.0.1:9053}]
`)
	if out, _, _ := govsadm(t, sock, "", "-L", "--timeout"); out != "Timeout (tcp tcpfin udp): 900 120 300\n" {
		t.Errorf("defaults: %q", out)
	}
	if _, stderr, code := govsadm(t, sock, "", "--set", "60", "10", "0"); code != 0 {
		t.Fatalf("--set: exit %d: %s", code, stderr)
	}
	if out, _, _ := govsadm(t, sock, "", "-L", "--timeout"); out != "Timeout (tcp tcpfin udp): 60 10 300\n" {
		t.Errorf("after --set 60 10 0: %q", out)
	}
	for _, vs := range d.Config().VirtualServers {
		idle, fin := vs.IdleTimeout.D(), vs.TCPFinTimeout.D()
		if vs.Protocol == config.UDP && idle != 300*time.Second {
			t.Errorf("%s: idle_timeout %v, want 300s unchanged", vs.Key(), idle)
		}
		if vs.Protocol == config.TCP && (idle != 60*time.Second || fin != 10*time.Second) {
			t.Errorf("%s: idle_timeout %v tcpfin_timeout %v, want 60s 10s", vs.Key(), idle, fin)
		}
	}
	if _, stderr, code := govsadm(t, sock, "", "--set", "0", "0", "30"); code != 0 {
		t.Fatalf("--set: exit %d: %s", code, stderr)
	}
	if out, _, _ := govsadm(t, sock, "", "-L", "--timeout"); out != "Timeout (tcp tcpfin udp): 60 10 30\n" {
		t.Errorf("after --set 0 0 30: %q", out)
	}
}
