package director

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/health"
)

// benchListenersEnv makes TestHealthBenchListeners the listeners of
// BenchmarkHealthChecks10k, in a process of its own so that the
// benchmark's CPU figure is the director's alone.
const benchListenersEnv = "GOVS_HEALTH_BENCH_LISTENERS"

// TestHealthBenchListeners is not a test: run by the benchmark, it listens
// on loopback ports, prints them, and accepts and closes connections until
// its standard input closes.
func TestHealthBenchListeners(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(benchListenersEnv))
	if n == 0 {
		t.Skip("helper process of BenchmarkHealthChecks10k")
	}
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
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

// BenchmarkHealthChecks10k checks 10,000 real servers (1,250 services of 8)
// with tcp checks every second, against 8 loopback listeners, for a window
// of GOVS_HEALTH_BENCH_SECONDS (default 10) after a warm-up, and reports the
// director's CPU as a share of one core, the checks it ran, and its memory.
// Run it alone: go test -run XXX -bench HealthChecks10k -benchtime 1x ./internal/director/
func BenchmarkHealthChecks10k(b *testing.B) {
	const services, perService = 1250, 8
	window := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("GOVS_HEALTH_BENCH_SECONDS")); err == nil && s > 0 {
		window = time.Duration(s) * time.Second
	}
	child := exec.Command(os.Args[0], "-test.run=^TestHealthBenchListeners$", "-test.v=false")
	child.Env = append(os.Environ(), benchListenersEnv+"="+strconv.Itoa(perService))
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	var addrs []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		addrs = append(addrs, sc.Text())
	}
	if len(addrs) != perService {
		b.Fatalf("listeners: %v", addrs)
	}
	go io.Copy(io.Discard, stdout)

	var y strings.Builder
	y.WriteString("virtual_servers:\n")
	for s := 0; s < services; s++ {
		fmt.Fprintf(&y, "  - address: 10.%d.%d.1:80\n    health_check: {type: tcp, interval: 1s, timeout: 1s}\n    real_servers:\n",
			s/250, s%250)
		for _, a := range addrs {
			fmt.Fprintf(&y, "      - address: %s\n", a)
		}
	}
	cfg, err := config.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	bare := bareChecks(b, addrs, services*perService, window)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := New(healthLog(), healthDataplane{})
		if err := d.Apply(cfg); err != nil {
			b.Fatal(err)
		}
		cfg = nil                   // only the director holds it now
		time.Sleep(3 * time.Second) // every check started, first ones spread over a second
		checks0 := countChecks(d)
		sys0 := selfSys()
		cpu0, childCPU0, t0 := selfCPU(), procCPU(child.Process.Pid), time.Now()
		time.Sleep(window)
		cpu1, childCPU1, el := selfCPU(), procCPU(child.Process.Pid), time.Since(t0)
		sys1 := selfSys()
		checks := countChecks(d) - checks0
		failed := countDown(d)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss := vmRSS()
		d.Shutdown(time.Second)

		b.ReportMetric(100*float64(cpu1-cpu0)/float64(el), "cpu%")
		b.ReportMetric(100*float64(sys1-sys0)/float64(el), "sys-cpu%")
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(checks), "cpu-µs/check")
		b.ReportMetric(bare, "bare-loop-cpu%")
		b.ReportMetric(100*float64(childCPU1-childCPU0)/float64(el), "listeners-cpu%")
		b.ReportMetric(float64(checks)/el.Seconds(), "checks/s")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(failed), "down")
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
