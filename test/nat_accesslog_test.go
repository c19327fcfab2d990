package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// The access log of kernel-forwarded flows (internal/forward/nft/natlog.go):
// govs writes one line per nat or fullnat flow from conntrack's destroy
// events. The lab's director runs the kernel dataplane in this process, so
// the process's access-log writer (a file here) takes the lines.

// natLogLab is a NAT lab whose director writes its access log to a file,
// with short conntrack timeouts so that flows end soon after they close
// (TIME_WAIT 2 s, CLOSE 1 s), and conntrack accounting on in the client's
// namespace: the client's own conntrack counts the bytes of each of its
// connections, the independent figure the lines' bytes must equal.
type natLogLab struct {
	*natLab
	path   string
	target string // where the access log goes: path, or a syslog server
}

func newNATLogLab(t *testing.T, reals int) *natLogLab {
	t.Helper()
	return newNATLogLabTo(t, newNATLab(t, reals), "")
}

// newNATLogLabTo is newNATLogLab on the lab nl (IPv4 or IPv6) with the
// access log sent to target ("": the lab's file).
func newNATLogLabTo(t *testing.T, nl *natLab, target string) *natLogLab {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("nft not installed (apt-get install nftables)")
		}
		t.Fatal("nft not installed")
	}
	l := &natLogLab{natLab: nl, path: filepath.Join(t.TempDir(), "access.log")}
	l.Director.Sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "2")
	l.Director.Sysctl("net.netfilter.nf_conntrack_tcp_timeout_close", "1")
	l.Client.Sysctl("net.netfilter.nf_conntrack_acct", "1")
	if out, err := l.Client.Exec("nft", "add table inet count; add chain inet count out { type filter hook output priority 0; }; add rule inet count out ct state new counter"); err != nil {
		t.Fatalf("client conntrack: %v: %s", err, out)
	}
	if target == "" {
		target = l.path
	}
	l.target = target
	w, err := accesslog.OpenWriter(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	prev := accesslog.SetWriter(w)
	t.Cleanup(func() {
		accesslog.SetWriter(prev)
		w.Close()
	})
	accesslog.Terminations.Reset()
	return l
}

// config is natConfig's service with the access log to the lab's target.
func (l *natLogLab) config(body string) string {
	return fmt.Sprintf("logging: {access_log: %q}\n%s", l.target, body)
}

// apply loads the configuration, then waits for the access log's reader:
// the kernel attaches event delivery to a flow when it creates it, and
// only while someone listens (nf_conntrack_events=2, the default), so the
// flows of a connection opened before the reader subscribed have no
// destroy event. The reader installs its mark tables once subscribed.
func (l *natLogLab) apply(yaml string) {
	l.t.Helper()
	l.natLab.apply(yaml)
	loopback.WaitFor(l.t, "the access log's conntrack reader", func() bool {
		_, err := l.Director.Exec("nft", "list", "table", "ip6", "govs_log")
		return err == nil
	})
}

// lines are the access log's lines so far.
func (l *natLogLab) lines() []accesslog.Entry {
	l.t.Helper()
	b, err := os.ReadFile(l.path)
	if err != nil && !os.IsNotExist(err) {
		l.t.Fatal(err)
	}
	var out []accesslog.Entry
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e accesslog.Entry
		if err := accesslog.Parse(line, &e); err != nil {
			l.t.Fatalf("access log line %d %q: %v", i+1, line, err)
		}
		e.Service, e.Client, e.RealServer = bytes.Clone(e.Service), bytes.Clone(e.Client), bytes.Clone(e.RealServer)
		out = append(out, e)
	}
	return out
}

// waitLines waits (30 s at most: flows end 2 s after their last packet,
// and the director reaps them at its next conntrack dump) until the log
// has n lines, then a moment more for any line too many.
func (l *natLogLab) waitLines(n int) []accesslog.Entry {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(l.lines()) < n {
		if time.Now().After(deadline) {
			l.t.Fatalf("%d access-log lines after 30s, want %d:\n%s", len(l.lines()), n, l.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	got := l.lines()
	if len(got) != n {
		l.t.Fatalf("%d access-log lines, want %d:\n%s", len(got), n, l.dump())
	}
	return got
}

func (l *natLogLab) dump() string { b, _ := os.ReadFile(l.path); return string(b) }

// clientFlows are the client namespace's conntrack flows to the VIP, by
// client port.
func (l *natLogLab) clientFlows() map[uint16]conntrack.Flow {
	l.t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: l.Client.FD()})
	if err != nil {
		l.t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		l.t.Fatal(err)
	}
	out := map[uint16]conntrack.Flow{}
	for _, f := range flows {
		if f.TupleOrig.IP.DestinationAddress.Unmap() == l.VIP.Unmap() {
			out[f.TupleOrig.Proto.SourcePort] = f
		}
	}
	return out
}

// TestNATAccessLog: N connections through nat, fullnat, and nat over IPv6 give
// N access-log lines, one per client port, each naming the real server
// that answered, with the bytes the client's own conntrack counted both
// ways (layer-3 bytes, as conntrack counts), the duration from the first
// packet to the last (not the 2 s of TIME_WAIT that follow), a normal end;
// and the termination counts of /metrics agree.
func TestNATAccessLog(t *testing.T) {
	for _, fwd := range []string{"nat", "fullnat", "nat6"} {
		t.Run(fwd, func(t *testing.T) {
			var l *natLogLab
			if fwd == "nat6" {
				l, fwd = newNATLogLabTo(t, newNATLab6(t, 2), ""), "nat"
			} else {
				l = newNATLogLab(t, 2)
			}
			l.serveTCP(8090)
			extra := ""
			if fwd == "fullnat" {
				extra = fmt.Sprintf("    local_addresses: [%s]\n", l.DirectorRealSide[0])
			}
			l.apply(l.config(natConfig(fwd, "rr", l.vip(8090), "tcp", l.RealAddrs, nil, extra)))
			const n = 20
			hold := 50 * time.Millisecond
			began := time.Now()
			served := map[uint16]netip.AddrPort{} // client port: the real server that answered
			sent := map[uint16]int{}
			for i := range n {
				cc, err := l.dial(8090)
				if err != nil {
					t.Fatal(err)
				}
				port := cc.c.LocalAddr().(*net.TCPAddr).AddrPort().Port()
				cc.c.SetDeadline(time.Now().Add(5 * time.Second))
				msg := "hi " + strings.Repeat("x", i*97) + "\n"
				io.WriteString(cc.c, msg)
				line, err := cc.r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				name, _, _ := strings.Cut(line, " ")
				var idx int
				if _, err := fmt.Sscanf(name, "rs%d", &idx); err != nil || idx < 1 || idx > 2 {
					t.Fatalf("answer %q", line)
				}
				served[port] = netip.AddrPortFrom(l.RealAddrs[idx-1], 8090)
				sent[port] = len(msg)
				time.Sleep(hold)
				cc.c.Close()
			}
			got := l.waitLines(n)
			flows := l.clientFlows()
			seen := map[uint16]bool{}
			perRS := map[netip.AddrPort]uint64{}
			for _, e := range got {
				client, err := netip.ParseAddrPort(string(e.Client))
				if err != nil || client.Addr() != l.ClientAddr {
					t.Fatalf("client %q, want %v:PORT", e.Client, l.ClientAddr)
				}
				p := client.Port()
				want, ok := served[p]
				if !ok || seen[p] {
					t.Fatalf("line for client port %d: unknown or twice", p)
				}
				seen[p] = true
				f, ok := flows[p]
				if !ok {
					t.Fatalf("the client's conntrack has no flow from port %d", p)
				}
				if string(e.Service) != "web" || string(e.RealServer) != want.String() || e.Termination.String() != "--" {
					t.Errorf("port %d: service %q real server %q code %s, want web %v --", p, e.Service, e.RealServer, e.Termination, want)
				}
				if e.BytesIn != f.CountersOrig.Bytes || e.BytesOut != f.CountersReply.Bytes {
					t.Errorf("port %d: bytes in/out %d/%d, the client's conntrack counted %d/%d", p, e.BytesIn, e.BytesOut,
						f.CountersOrig.Bytes, f.CountersReply.Bytes)
				}
				if e.BytesIn <= uint64(sent[p]) {
					t.Errorf("port %d: %d bytes in for a %d-byte request", p, e.BytesIn, sent[p])
				}
				if e.HasConnect {
					t.Errorf("port %d: connect_ms %v: the kernel does not time connects", p, e.ConnectMs)
				}
				// From the first packet to the last: at least the hold
				// (less the kernel's clock tick, 4 ms at HZ=250: conntrack
				// times its timeouts in jiffies), and without the 2 s
				// TIME_WAIT the flow spent after.
				if e.DurationMs < float64(hold.Milliseconds()-10) || e.DurationMs >= 2000 {
					t.Errorf("port %d: duration %vms, want %v up to 2s", p, e.DurationMs, hold)
				}
				if at := time.Unix(0, e.Time); at.Before(began.Add(-time.Second)) || at.After(time.Now()) {
					t.Errorf("port %d: time %v, not during the test", p, at)
				}
				perRS[want]++
			}
			for rs, c := range perRS {
				if g := accesslog.Terminations.Get("web", rs, accesslog.Normal); g != c {
					t.Errorf("termination count of %v: %d, want %d", rs, g, c)
				}
			}
			// govs logs reads these lines: its per-server report equals
			// the counts made here, bytes from the client's conntrack.
			rep := natLogsReport(t, l.path, "servers")
			if len(rep) != len(perRS) {
				t.Errorf("govs logs: %d real servers, want %d: %v", len(rep), len(perRS), rep)
			}
			for rs, c := range perRS {
				var in, out uint64
				for p, want := range served {
					if want == rs {
						in, out = in+flows[p].CountersOrig.Bytes, out+flows[p].CountersReply.Bytes
					}
				}
				r := rep[rs.String()]
				if r["conns"] != float64(c) || r["errors"] != 0.0 || r["bytes_in"] != float64(in) || r["bytes_out"] != float64(out) {
					t.Errorf("govs logs, %v: %v, want %d conns, 0 errors, %d bytes in, %d out", rs, r, c, in, out)
				}
			}
		})
	}
}

// natLogWant is the line a flow of TestNATAccessLogEnds must have.
type natLogWant struct {
	client netip.AddrPort // zero: the client's address, any port
	rs     netip.AddrPort
	code   string
}

// TestNATAccessLogEnds: the termination codes of kernel-forwarded flows,
// each made to happen for real: a client's reset (CD), a connect the
// real server refuses (SC), a real server's reset (SD: its process
// killed), and a flow govs deletes because its real server was removed
// with expire_nodest_conn (KD). Who reset comes from govs's label rules.
func TestNATAccessLogEnds(t *testing.T) {
	l := newNATLogLab(t, 2)
	rs1, rs2 := l.RealAddrs[0], l.RealAddrs[1]
	l.serveTCP(8090)
	doomed := serveKillable(t, l.Reals[1], "rs2", netip.AddrPortFrom(rs2, 8092))
	serveKillable(t, l.Reals[0], "rs1", netip.AddrPortFrom(rs1, 8093))
	serveKillable(t, l.Reals[1], "rs2", netip.AddrPortFrom(rs2, 8093))
	conf := func(gone string) string {
		return l.config(fmt.Sprintf(`grace_period: 5s
virtual_servers:
  - {name: web, address: "%[1]s:8090", protocol: tcp, scheduler: rr, forwarding: nat, real_servers: [{address: "%[2]s:8090"}]}
  - {name: refused, address: "%[1]s:8091", protocol: tcp, scheduler: rr, forwarding: nat, real_servers: [{address: "%[2]s:8091"}]}
  - {name: doomed, address: "%[1]s:8092", protocol: tcp, scheduler: rr, forwarding: nat, real_servers: [{address: "%[3]s:8092"}]}
  - {name: gone, address: "%[1]s:8093", protocol: tcp, scheduler: rr, forwarding: nat, expire_nodest_conn: true,
     real_servers: [%[4]s]}
`, l.VIP, rs1, rs2, gone))
	}
	l.apply(conf(fmt.Sprintf(`{address: "%s:8093"}, {address: "%s:8093"}`, rs1, rs2)))
	want := map[string]natLogWant{}
	port := func(c net.Conn) netip.AddrPort { return c.LocalAddr().(*net.TCPAddr).AddrPort() }

	// CD: the client resets an established connection.
	cc, err := l.dial(8090)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := cc.ask(); err != nil {
		t.Fatal(err)
	}
	cc.c.(*net.TCPConn).SetLinger(0)
	cc.c.Close()
	want["web"] = natLogWant{port(cc.c), netip.AddrPortFrom(rs1, 8090), "CD"}

	// SC: nothing listens on the real server's port: it refuses.
	if c, err := l.dial(8091); err == nil {
		c.c.Close()
		t.Fatal("connected to the refusing service")
	}
	want["refused"] = natLogWant{netip.AddrPort{}, netip.AddrPortFrom(rs1, 8091), "SC"}

	// SD: the real server's process dies with the connection open: the
	// kernel resets it.
	cd, err := l.dial(8092)
	if err != nil {
		t.Fatal(err)
	}
	defer cd.c.Close()
	if _, _, err := cd.ask(); err != nil {
		t.Fatal(err)
	}
	doomed.kill()
	cd.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cd.r.ReadByte(); err == nil {
		t.Fatal("the killed real server's connection still answers")
	}
	want["doomed"] = natLogWant{port(cd.c), netip.AddrPortFrom(rs2, 8092), "SD"}

	// KD: a reload removes the real server of an open connection, whose
	// flow govs then deletes (expire_nodest_conn).
	cg, err := l.dial(8093)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.c.Close()
	name, _, err := cg.ask()
	if err != nil {
		t.Fatal(err)
	}
	gone, kept := rs1, rs2
	if name == "rs2" {
		gone, kept = rs2, rs1
	}
	l.apply(conf(fmt.Sprintf(`{address: "%s:8093"}`, kept)))
	want["gone"] = natLogWant{port(cg.c), netip.AddrPortFrom(gone, 8093), "KD"}

	got := l.waitLines(len(want))
	for _, e := range got {
		w, ok := want[string(e.Service)]
		if !ok {
			t.Errorf("line of service %q", e.Service)
			continue
		}
		delete(want, string(e.Service))
		client, _ := netip.ParseAddrPort(string(e.Client))
		if (w.client.IsValid() && client != w.client) || client.Addr() != l.ClientAddr ||
			string(e.RealServer) != w.rs.String() || e.Termination.String() != w.code {
			t.Errorf("%s: client %s real server %s code %s, want %v %v %s", e.Service, e.Client, e.RealServer,
				e.Termination, w.client, w.rs, w.code)
		}
		// Reset at once: their duration is not the 1 s CLOSE timeout
		// that followed.
		if w.code != "KD" && e.DurationMs >= 500 {
			t.Errorf("%s: duration %vms, want well under the 1s CLOSE timeout", e.Service, e.DurationMs)
		}
		if g := accesslog.Terminations.Get(string(e.Service), w.rs, e.Termination); g != 1 {
			t.Errorf("%s: termination count %d, want 1", e.Service, g)
		}
	}
	if len(want) > 0 {
		t.Errorf("no line for %v", want)
	}
	// govs logs counts the four codes, each an error.
	rep := natLogsReport(t, l.path, "terminations")
	for _, code := range []string{"CD", "SC", "SD", "KD"} {
		if rep[code]["conns"] != 1.0 {
			t.Errorf("govs logs: %s: %v, want 1 connection", code, rep[code])
		}
	}
	if srv := natLogsReport(t, l.path, "servers"); srv[netip.AddrPortFrom(rs1, 8091).String()]["errors"] != 1.0 {
		t.Errorf("govs logs: the refusing real server's errors: %v", srv)
	}
}

// natLogsReport runs govs logs --report report --format json on path and
// returns the report's rows by their first column.
func natLogsReport(t *testing.T, path, report string) map[string]map[string]any {
	t.Helper()
	out, err := exec.Command(govsBin, "logs", "--report", report, "--format", "json", path).Output()
	if err != nil {
		t.Fatalf("govs logs: %v", err)
	}
	var doc struct {
		Bad     uint64                      `json:"bad_lines"`
		Reports map[string][]map[string]any `json:"reports"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("govs logs: %v: %s", err, out)
	}
	if doc.Bad != 0 {
		t.Errorf("govs logs: %d bad lines", doc.Bad)
	}
	key := map[string]string{"servers": "real_server", "terminations": "termination"}[report]
	rows := map[string]map[string]any{}
	for _, r := range doc.Reports[report] {
		rows[fmt.Sprint(r[key])] = r
	}
	return rows
}

// TestNATAccessLogSyslog: the lines of nat flows go to a real rsyslogd
// over TCP (RFC 5424, octet-counted), one per connection, with the real
// server that answered.
func TestNATAccessLogSyslog(t *testing.T) {
	_, tcp, out := loopback.Rsyslogd(t)
	l := newNATLogLabTo(t, newNATLab(t, 2), "syslog+tcp://"+tcp)
	l.serveTCP(8090)
	l.apply(l.config(natConfig("nat", "rr", l.vip(8090), "tcp", l.RealAddrs, nil, "")))
	served := map[string]string{} // client: real server
	for range 10 {
		cc, err := l.dial(8090)
		if err != nil {
			t.Fatal(err)
		}
		name, _, err := cc.ask()
		if err != nil {
			t.Fatal(err)
		}
		var idx int
		fmt.Sscanf(name, "rs%d", &idx)
		served[cc.c.LocalAddr().String()] = netip.AddrPortFrom(l.RealAddrs[idx-1], 8090).String()
		cc.c.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(syslogLines(t, out)) < len(served) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // any duplicate would be there by now
	got := syslogLines(t, out)
	if len(got) != len(served) {
		t.Fatalf("%d lines at rsyslogd, want %d", len(got), len(served))
	}
	for client, rs := range served {
		sl, ok := got[client]
		if !ok {
			t.Errorf("no line for client %s", client)
			continue
		}
		if sl.input != "imtcp" || sl.Service != "web" || sl.RealServer != rs || sl.Termination != "--" || sl.BytesIn <= 3 {
			t.Errorf("client %s: %+v, want through imtcp, web, %s, --", client, sl, rs)
		}
	}
}

// TestNATAccessLogAtStop: at a stop, the flows that have closed but wait
// out conntrack's TIME_WAIT (2 minutes here) get their lines, with their
// real duration, and leave conntrack: a govs started later would not log
// them again.
func TestNATAccessLogAtStop(t *testing.T) {
	l := newNATLogLab(t, 2)
	l.Director.Sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "120")
	l.serveTCP(8090)
	l.apply(l.config(natConfig("nat", "rr", l.vip(8090), "tcp", l.RealAddrs, nil, "")))
	const n = 6
	clients := map[string]bool{}
	for range n {
		cc, err := l.dial(8090)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := cc.ask(); err != nil {
			t.Fatal(err)
		}
		clients[cc.c.LocalAddr().String()] = true
		cc.c.Close()
	}
	time.Sleep(500 * time.Millisecond) // the closes complete
	if got := l.lines(); len(got) != 0 {
		t.Fatalf("%d lines before the stop: TIME_WAIT is 2 minutes", len(got))
	}
	if err := l.d.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	got := l.waitLines(n)
	for _, e := range got {
		if !clients[string(e.Client)] || e.Termination.String() != "--" || e.DurationMs >= 2000 {
			t.Errorf("line %s %s %vms, want one of the clients, --, its real duration", e.Client, e.Termination, e.DurationMs)
		}
		delete(clients, string(e.Client))
	}
	if out, _ := l.Director.Exec("conntrack", "-L", "-d", l.VIP.String()); strings.Contains(out, "TIME_WAIT") {
		t.Errorf("flows left in conntrack after the stop wrote them:\n%s", out)
	}
}

// TestNATAccessLogBinary: the govs binary in the director's namespace
// writes the lines of its nat flows to its access-log file; it turns
// conntrack's timestamps on there, and leaves no table of its own behind
// when it stops.
func TestNATAccessLogBinary(t *testing.T) {
	l := &natLogLab{natLab: &natLab{LVS: netns.NewLVS(t, 2), t: t}, path: filepath.Join(t.TempDir(), "access.log")}
	if rep := nft.ProbeKernel(l.Director.FD()); rep.Err() != nil {
		t.Skipf("kernel dataplane not available here: %v", rep.Err())
	}
	l.target = l.path
	l.Director.Sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "2")
	l.serveTCP(8090)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "govs.yaml")
	writeFile(t, cfg, l.config(natConfig("nat", "rr", l.vip(8090), "tcp", l.RealAddrs, nil, "")))
	gov := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", l.Director.Name, govsBin,
		"--socket", filepath.Join(dir, "govs.sock"), "run", "-c", cfg), 5*time.Second)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(gov.log(), "govs running") })
	loopback.WaitFor(t, "the access log's conntrack reader", func() bool {
		_, err := l.Director.Exec("nft", "list", "table", "ip", "govs_log")
		return err == nil
	})
	served := map[string]string{}
	for range 8 {
		cc, err := l.dial(8090)
		if err != nil {
			t.Fatal(err)
		}
		name, _, err := cc.ask()
		if err != nil {
			t.Fatal(err)
		}
		var idx int
		fmt.Sscanf(name, "rs%d", &idx)
		served[cc.c.LocalAddr().String()] = netip.AddrPortFrom(l.RealAddrs[idx-1], 8090).String()
		cc.c.Close()
	}
	for _, e := range l.waitLines(len(served)) {
		if rs, ok := served[string(e.Client)]; !ok || string(e.RealServer) != rs || e.Termination.String() != "--" || e.BytesIn == 0 {
			t.Errorf("line %s %s %s %d bytes in, want one of %v, --", e.Client, e.RealServer, e.Termination, e.BytesIn, served)
		}
	}
	if !strings.Contains(gov.log(), "enabled net.netfilter.nf_conntrack_timestamp") {
		t.Error("govs did not say it turned conntrack timestamps on")
	}
	gov.signal(t, syscall.SIGTERM)
	select {
	case <-gov.done:
	case <-time.After(20 * time.Second):
		t.Fatal("govs did not stop")
	}
	if out, _ := l.Director.Exec("nft", "list", "tables"); strings.Contains(out, "govs") {
		t.Errorf("tables left after the stop:\n%s", out)
	}
}
