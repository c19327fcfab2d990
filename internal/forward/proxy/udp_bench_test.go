package proxy

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

func udpBenchDirector(b *testing.B, mode string) string {
	b.Setenv(loopsEnv, mode)
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(b, "udp"))
	d := newDirectorFromText(b, fmt.Sprintf("virtual_servers: [{address: %s, protocol: udp, idle_timeout: 60s, real_servers: [{address: %s}]}]",
		vip, udpEcho(b, "")))
	b.Cleanup(func() { d.Shutdown(0) })
	return vip
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var udpBenchModes = []struct{ name, env string }{{"loops", ""}, {"goroutines", "off"}}

// BenchmarkUDPRequest is one 64-byte datagram and its answer through the
// proxy, clients in parallel (one socket, so one flow, each), on each data
// path. cpu-µs/req is the whole process's CPU per request and answer: the
// clients' and the echo server's too, the same on both paths, so the
// difference between paths is the proxy's.
func BenchmarkUDPRequest(b *testing.B) {
	for _, m := range udpBenchModes {
		b.Run(m.name, func(b *testing.B) {
			vip := udpBenchDirector(b, m.env)
			var mu sync.Mutex
			var conns []net.Conn
			b.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			b.SetParallelism(4)
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("udp", vip)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				msg := make([]byte, 64)
				buf := make([]byte, 128)
				for pb.Next() {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					c.Write(msg)
					if _, err := c.Read(buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/req")
		})
	}
}

// BenchmarkUDPIdleFlow measures what 2,000 idle flows cost the proxy: Go
// heap and goroutine stacks per flow, and goroutines per flow. The client
// sockets are opened before the baseline, so only the flows are counted;
// the kernel's socket memory (one socket per flow on both paths) is not.
func BenchmarkUDPIdleFlow(b *testing.B) {
	for _, m := range udpBenchModes {
		b.Run(m.name, func(b *testing.B) {
			vip := udpBenchDirector(b, m.env)
			const n = 2000
			conns := make([]net.Conn, 0, n+1)
			b.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			ask := func(c net.Conn) {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("x"))
				if _, err := c.Read(make([]byte, 8)); err != nil {
					b.Fatal(err)
				}
			}
			for range n + 1 {
				c, err := net.Dial("udp", vip)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			ask(conns[n]) // the loops, the pools
			// One measurement whatever b.N (run it with -benchtime=1x): the
			// flows exist after the first.
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()
			for _, c := range conns[:n] {
				ask(c)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			mem := float64(after.HeapAlloc+after.StackInuse) - float64(before.HeapAlloc+before.StackInuse)
			b.ReportMetric(mem/n, "bytes/flow")
			b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/flow")
		})
	}
}
