package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestAccessLogSyslog: govs run sends its access log to a real rsyslogd
// over UDP, then, after a reload that changes access_log, over TCP; every
// connection's line arrives once, parseable, through the input it was
// sent to.
func TestAccessLogSyslog(t *testing.T) {
	udp, tcp, out := loopback.Rsyslogd(t)
	dir := t.TempDir()
	a := loopback.LineServer(t, "a")
	vip := loopback.Addr(t, "tcp")
	cfg := filepath.Join(dir, "govs.yaml")
	conf := func(target string) string {
		return fmt.Sprintf(`logging: {access_log: "%s"}
virtual_servers: [{name: web, address: %s, real_servers: [{address: %s}]}]
`, target, vip, a)
	}
	writeFile(t, cfg, conf("syslog+udp://"+udp))
	d := startGovs(t, cfg)
	clients := map[string]string{} // client address: the input its line must come through
	load := func(input string) {
		for range 20 {
			c, err := net.Dial("tcp", vip)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "hi\n")
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			clients[c.LocalAddr().String()] = input
			c.Close()
		}
	}
	load("imudp")
	loopback.WaitFor(t, "the UDP lines at rsyslogd", func() bool { return len(syslogLines(t, out)) >= 20 })
	writeFile(t, cfg, conf("syslog+tcp://"+tcp))
	d.signal(t, syscall.SIGHUP)
	loopback.WaitFor(t, "the reload", func() bool { return strings.Contains(d.log(), "target=syslog+tcp://") })
	load("imtcp")
	loopback.WaitFor(t, "the TCP lines at rsyslogd", func() bool { return len(syslogLines(t, out)) >= 40 })
	time.Sleep(200 * time.Millisecond) // any duplicate would be there by now
	got := syslogLines(t, out)
	if len(got) != len(clients) {
		t.Errorf("%d lines at rsyslogd, want %d", len(got), len(clients))
	}
	for client, input := range clients {
		l, ok := got[client]
		if !ok {
			t.Errorf("no line for client %s", client)
			continue
		}
		if l.input != input || l.RealServer != a || l.Service != "web" || l.Termination != "--" || l.BytesIn != 3 {
			t.Errorf("client %s: %+v, want through %s, real server %s, --, 3 bytes in", client, l, input, a)
		}
	}
}

type syslogLine struct {
	input       string
	Service     string `json:"service"`
	Client      string `json:"client"`
	RealServer  string `json:"real_server"`
	BytesIn     int    `json:"bytes_in"`
	Termination string `json:"termination"`
	Time        string `json:"time"`
}

// syslogLines reads what rsyslogd wrote: govs's access lines by client.
func syslogLines(t *testing.T, out string) map[string]syslogLine {
	t.Helper()
	b, _ := os.ReadFile(out)
	got := map[string]syslogLine{}
	for _, l := range bytes.Split(b, []byte("\n")) {
		f := strings.SplitN(string(l), " ", 4)
		if len(f) < 4 || f[1] != "govs" || f[2] != "access" {
			continue // rsyslogd's own lines
		}
		var sl syslogLine
		if err := json.Unmarshal([]byte(strings.TrimSpace(f[3])), &sl); err != nil {
			t.Fatalf("unparseable message %q: %v", f[3], err)
		}
		if _, err := time.Parse(time.RFC3339, sl.Time); err != nil {
			t.Fatalf("time %q: %v", sl.Time, err)
		}
		sl.input = f[0]
		if _, dup := got[sl.Client]; dup {
			t.Errorf("client %s logged twice", sl.Client)
		}
		got[sl.Client] = sl
	}
	return got
}
