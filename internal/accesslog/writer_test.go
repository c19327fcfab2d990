package accesslog

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testRecord(i int) Record {
	return Record{Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Service: "web", Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i >> 16)}), uint16(i)),
		RealServer: netip.MustParseAddrPort("10.0.0.1:80"), ConnectMs: 0.25, DurationMs: 12.5,
		BytesIn: uint64(i), BytesOut: 2 * uint64(i), Termination: Termination{ByServer, InData}}
}

// lines parses every line of b, failing on any bad one.
func lines(t *testing.T, b []byte) []Entry {
	t.Helper()
	var out []Entry
	for _, l := range bytes.Split(b, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var e Entry
		if err := Parse(l, &e); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		e.Client = append([]byte(nil), e.Client...)
		out = append(out, e)
	}
	return out
}

func TestParseTarget(t *testing.T) {
	for _, bad := range []string{"relative/file", "syslog+udp://", "syslog+udp://host", "syslog+sctp://h:514",
		"syslog+tcp://h:0", "syslog+tcp://h:70000", "http://x/y", "/var/log/"} {
		if _, _, err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]string{"/var/log/govs/access.log": "file /var/log/govs/access.log",
		"syslog+udp://127.0.0.1:514": "udp 127.0.0.1:514", "syslog+tcp://[::1]:6514": "tcp [::1]:6514",
		"syslog+tcp://logs.example:514": "tcp logs.example:514"} {
		k, w, err := ParseTarget(in)
		if err != nil || k+" "+w != want {
			t.Errorf("%q: %s %s %v, want %s", in, k, w, err, want)
		}
	}
}

// TestFileWriterReopen is logrotate's cycle: the file is renamed, the
// writer reopens, and the lines after go to a new file of the same name.
func TestFileWriterReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := OpenWriter(path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 100 {
		r := testRecord(i)
		w.Write(&r)
	}
	loopback.WaitFor(t, "100 lines written", func() bool { return w.Written() == 100 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Reopen()
	loopback.WaitFor(t, "the file reopened", func() bool { _, err := os.Stat(path); return err == nil })
	for i := 100; i < 150; i++ {
		r := testRecord(i)
		w.Write(&r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if n, m := len(lines(t, old)), len(lines(t, cur)); n != 100 || m != 50 {
		t.Errorf("rotated file has %d lines, new file %d; want 100 and 50", n, m)
	}
	if w.Dropped() != 0 {
		t.Errorf("%d dropped", w.Dropped())
	}
}

// TestWriterNeverBlocks: with a syslog server that takes the connection
// and never reads, Write returns at once; what cannot be sent is counted
// as dropped, and every record is either written or dropped.
func TestWriterNeverBlocks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held, never read
		}
	}()
	w, err := OpenWriter("syslog+tcp://"+ln.Addr().String(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200000
	for i := range n {
		r := testRecord(i)
		w.Write(&r)
	}
	w.Close()
	if w.Dropped() == 0 || w.Written()+w.Dropped() != n {
		t.Errorf("written %d + dropped %d, want %d with some dropped", w.Written(), w.Dropped(), n)
	}
}

func TestWriteAllocs(t *testing.T) {
	w, err := OpenWriter(filepath.Join(t.TempDir(), "a.log"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := testRecord(1)
	if a := testing.AllocsPerRun(1000, func() { w.Write(&r) }); a != 0 {
		t.Errorf("Write allocates %v per record", a)
	}
}

// received reads rsyslogd's file: per input, the records that came as
// govs access-log messages.
func received(t *testing.T, out string) map[string][]Entry {
	t.Helper()
	got := map[string][]Entry{}
	f, err := os.Open(out)
	if err != nil {
		return got
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		input, rest, _ := strings.Cut(sc.Text(), " ")
		app, rest, _ := strings.Cut(rest, " ")
		msgid, msg, _ := strings.Cut(rest, " ")
		if app != "govs" || msgid != "access" {
			continue // rsyslogd's own messages
		}
		got[input] = append(got[input], lines(t, []byte(strings.TrimSpace(msg)))...)
	}
	return got
}

// TestSyslogRsyslogd sends records over UDP and TCP to a real rsyslogd:
// every record arrives, parseable, with govs's APP-NAME and MSGID.
func TestSyslogRsyslogd(t *testing.T) {
	udp, tcp, out := loopback.Rsyslogd(t)
	const n = 50
	for _, c := range []struct{ input, target string }{{"imudp", "syslog+udp://" + udp}, {"imtcp", "syslog+tcp://" + tcp}} {
		w, err := OpenWriter(c.target, quiet())
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			r := testRecord(i)
			if c.input == "imtcp" {
				r.Service = "web \"tcp\"" // escapes survive the framing
			}
			w.Write(&r)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if w.Written() != n || w.Dropped() != 0 {
			t.Errorf("%s: written %d, dropped %d", c.target, w.Written(), w.Dropped())
		}
		loopback.WaitFor(t, c.input+" records at rsyslogd", func() bool { return len(received(t, out)[c.input]) >= n })
		got := received(t, out)[c.input]
		if len(got) != n {
			t.Fatalf("%s: %d records, want %d", c.input, len(got), n)
		}
		seen := map[string]bool{}
		for _, e := range got {
			want := testRecord(int(e.BytesIn))
			if string(e.Client) != want.Client.String() || e.BytesOut != want.BytesOut ||
				e.Termination != want.Termination || string(e.RealServer) != "10.0.0.1:80" {
				t.Errorf("%s: record %+v does not match what was sent", c.input, e)
			}
			seen[string(e.Client)] = true
		}
		if len(seen) != n {
			t.Errorf("%s: %d distinct records of %d", c.input, len(seen), n)
		}
	}
}
