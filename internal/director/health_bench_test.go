package director

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/health"
)

// benchListenersEnv makes TestHealthBenchListeners the listeners of
// BenchmarkHealthChecks10k, in a process of its own so that the
// benchmark's CPU figure is the director's alone; benchHostEnv is the
// address they listen on (127.0.0.1 by default).
const (
	benchListenersEnv = "GOVS_HEALTH_BENCH_LISTENERS"
	benchHostEnv      = "GOVS_HEALTH_BENCH_HOST"
)

// TestHealthBenchListeners is not a test: run by the benchmark, it listens
// on ports of one address, prints them, and accepts and closes connections
// until its standard input closes.
func TestHealthBenchListeners(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(benchListenersEnv))
	if n == 0 {
		t.Skip("helper process of BenchmarkHealthChecks10k")
	}
	host := os.Getenv(benchHostEnv)
	if host == "" {
		host = "127.0.0.1"
	}
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(ln.Addr())
		for j := 0; j < 2; j++ {
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// benchServices and benchPerService are BenchmarkHealthChecks10k's 10,000
// real servers: 1,250 services of 8, the 8 being the listeners' ports.
const benchServices, benchPerService = 1250, 8

// benchWindow is the measuring window: GOVS_HEALTH_BENCH_SECONDS, 10 s by
// default.
func benchWindow() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("GOVS_HEALTH_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

// startBenchListeners starts TestHealthBenchListeners in a child process
// (through prefix, e.g. "ip netns exec NS", when given), listening on
// host, and returns the child and its addresses; the child ends with tb.
func startBenchListeners(tb testing.TB, host string, prefix ...string) (*exec.Cmd, []string) {
	args := append(prefix, os.Args[0], "-test.run=^TestHealthBenchListeners$", "-test.v=false")
	child := exec.Command(args[0], args[1:]...)
	child.Env = append(os.Environ(), benchListenersEnv+"="+strconv.Itoa(benchPerService), benchHostEnv+"="+host)
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); child.Wait() })
	var addrs []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		addrs = append(addrs, sc.Text())
	}
	if len(addrs) != benchPerService {
		tb.Fatalf("listeners: %v", addrs)
	}
	go io.Copy(io.Discard, stdout)
	return child, addrs
}

// benchFigures is what measureChecks measured.
type benchFigures struct {
	CPU, Sys     time.Duration // the process's
	Elapsed      time.Duration
	Checks       uint64
	Down         int   // at the end
	WentDown     int64 // transitions to down in the window (a lost probe's timeout)
	RSS, HeapUse uint64
}

func (f benchFigures) share(d time.Duration) float64 { return 100 * float64(d) / float64(f.Elapsed) }

// measureChecks runs a director checking 10,000 real servers (the
// listeners' addrs, in 1,250 services) with tcp checks every second, and
// measures it for window after a warm-up; mark is called at the window's
// start and end (the caller samples other processes' CPU then). With
// spread, service s's real servers are the listeners' ports on an address
// of its own, 10.234.s/250.s%250+1 (the listeners listen on every address
// of a local route): 10,000 different real servers.
func measureChecks(tb testing.TB, addrs []string, spread bool, window time.Duration, mark func(string)) benchFigures {
	var y strings.Builder
	y.WriteString("virtual_servers:\n")
	for s := 0; s < benchServices; s++ {
		fmt.Fprintf(&y, "  - address: 10.%d.%d.1:80\n    health_check: {type: tcp, interval: 1s, timeout: 1s}\n    real_servers:\n",
			s/250, s%250)
		for _, a := range addrs {
			if spread {
				_, port, _ := net.SplitHostPort(a)
				a = net.JoinHostPort(fmt.Sprintf("10.234.%d.%d", s/250, s%250+1), port)
			}
			fmt.Fprintf(&y, "      - address: %s\n", a)
		}
	}
	cfg, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		tb.Fatal(err)
	}
	var downs downCounter
	d := New(slog.New(&downs), healthDataplane{})
	if err := d.Apply(cfg); err != nil {
		tb.Fatal(err)
	}
	cfg = nil                   // only the director holds it now
	time.Sleep(3 * time.Second) // every check started, first ones spread over a second
	// The configuration's garbage (~100 MB parsed once) is collected now,
	// not in the window: the window is the steady state's cost.
	runtime.GC()
	var f benchFigures
	checks0, downs0 := countChecks(d), downs.n.Load()
	mark("start")
	sys0, cpu0, t0 := selfSys(), selfCPU(), time.Now()
	time.Sleep(window)
	cpu1, sys1, el := selfCPU(), selfSys(), time.Since(t0)
	mark("end")
	f.CPU, f.Sys, f.Elapsed = cpu1-cpu0, sys1-sys0, el
	f.Checks = countChecks(d) - checks0
	f.WentDown = downs.n.Load() - downs0
	f.Down = countDown(d)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f.RSS, f.HeapUse = uint64(vmRSS()), ms.HeapInuse
	d.Shutdown(time.Second)
	return f
}

// report reports the figures common to both topologies.
func (f benchFigures) report(b *testing.B) {
	b.ReportMetric(f.share(f.CPU), "cpu%")
	b.ReportMetric(f.share(f.Sys), "sys-cpu%")
	b.ReportMetric(float64(f.CPU)/float64(time.Microsecond)/float64(f.Checks), "cpu-µs/check")
	b.ReportMetric(float64(f.Checks)/f.Elapsed.Seconds(), "checks/s")
	b.ReportMetric(float64(f.RSS)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(f.HeapUse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(f.Down), "down")
	b.ReportMetric(float64(f.WentDown), "went-down")
}

// downCounter is a log handler that counts the real servers' transitions
// to down: every check of the benchmark should pass.
type downCounter struct{ n atomic.Int64 }

func (c *downCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *downCounter) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "to" && a.Value.String() == "down" {
			if c.n.Add(1) <= 3 {
				fmt.Fprintln(os.Stderr, "went down:", r.Message, recordAttrs(r))
			}
			return false
		}
		return true
	})
	return nil
}
func recordAttrs(r slog.Record) string {
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String()); return true })
	return b.String()
}
func (c *downCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *downCounter) WithGroup(string) slog.Handler      { return c }

// BenchmarkHealthChecks10k checks 10,000 real servers (1,250 services of 8)
// with tcp checks every second, against 8 listeners, for a window of
// GOVS_HEALTH_BENCH_SECONDS (default 10) after a warm-up, and reports the
// director's CPU as a share of one core, the checks it ran, and its memory.
// Two topologies:
//
//   - loopback: the listeners on 127.0.0.1 in a child process. The kernel
//     processes both ends of each probe's packets (the real servers' side
//     too) in the director's system calls, so cpu% is everything: the
//     director, its kernel and the servers' kernel.
//   - veth (root): the director in a namespace of its own, the listeners
//     in another, joined by a veth pair whose two ends receive in threaded
//     NAPI (a kernel thread per end, as a NIC's receive runs in softirq, not
//     in the process): cpu% is the director process alone,
//     director-kernel-cpu% its end's receive path (answers, the raw socket's
//     copy, the kernel's RSTs), machine-cpu% their sum (the director
//     machine's whole cost), servers-kernel-cpu% the real servers' end.
//
// Run it alone: go test -run XXX -bench HealthChecks10k -benchtime 1x ./internal/director/
func BenchmarkHealthChecks10k(b *testing.B) {
	b.Run("loopback", benchChecksLoopback)
	b.Run("veth", benchChecksVeth)
}

func benchChecksLoopback(b *testing.B) {
	child, addrs := startBenchListeners(b, "127.0.0.1")
	window := benchWindow()
	bare := bareChecks(b, addrs, benchServices*benchPerService, window)
	var childCPU0, childCPU1 time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := measureChecks(b, addrs, false, window, func(at string) {
			if at == "start" {
				childCPU0 = procCPU(child.Process.Pid)
			} else {
				childCPU1 = procCPU(child.Process.Pid)
			}
		})
		f.report(b)
		b.ReportMetric(bare, "bare-loop-cpu%")
		b.ReportMetric(f.share(childCPU1-childCPU0), "listeners-cpu%")
	}
}

// bareChecks runs the same number of tcp checks a second from one paced
// loop, without runner or director, and returns the CPU share it took: the
// floor that the kernel's loopback handshakes set (on loopback the
// listener's side of each handshake is processed on the checker's CPU time).
func bareChecks(b *testing.B, addrs []string, perSecond int, window time.Duration) float64 {
	var checkers []health.Checker
	for _, a := range addrs {
		c, err := health.New(health.Spec{Type: "tcp", Target: netip.MustParseAddrPort(a)})
		if err != nil {
			b.Fatal(err)
		}
		checkers = append(checkers, c)
	}
	const tick = 10 * time.Millisecond
	perTick := perSecond * int(tick) / int(time.Second)
	cpu0, t0 := selfCPU(), time.Now()
	failed := 0
	for next := t0; time.Since(t0) < window; next = next.Add(tick) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		for i := 0; i < perTick; i++ {
			if !checkers[i%len(checkers)].Check(ctx).OK {
				failed++
			}
		}
		cancel()
		time.Sleep(time.Until(next.Add(tick)))
	}
	if failed > 0 {
		b.Fatalf("%d bare checks failed", failed)
	}
	return 100 * float64(selfCPU()-cpu0) / float64(time.Since(t0))
}

func countChecks(d *Director) uint64 {
	var n uint64
	for _, vs := range d.Services() {
		for _, rs := range vs.RealServers() {
			n += rs.Health().Checks
		}
	}
	return n
}

func countDown(d *Director) int {
	n := 0
	for _, vs := range d.Services() {
		for _, rs := range vs.RealServers() {
			if !rs.Health().Up {
				n++
			}
		}
	}
	return n
}

// selfCPU is the process's user and system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfSys is the process's system time: on loopback it includes the
// listeners' side of each check's packets, processed in the sender's
// system call.
func selfSys() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Stime.Nano())
}

// procCPU is another process's user and system time, from /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func vmRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
