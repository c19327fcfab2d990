package health

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSYNLoopbackFloor is the floor under a SYN check on loopback:
// b.N SYNs sent from the raw socket to a listening loopback port (100
// every 10 ms, each 100 in one sendmmsg, as the Runner sends them), their
// SYN-ACKs read back at the next tick (recvmmsg, as the Runner's loop
// reads them) and parsed, without runner, matcher or report. On loopback
// the listener's side of the exchange (the SYN-ACK it builds, the RST it
// takes) and the kernel's RST are processed in the sender's system call,
// so this CPU time is the share of BenchmarkHealthChecks10k/loopback's
// that a remote real server would take on its own CPU, or that no check
// can avoid. Reports CPU µs per probe.
//
//	go test -run XXX -bench SYNLoopbackFloor ./internal/health/
func BenchmarkSYNLoopbackFloor(b *testing.B) {
	if syscall.Geteuid() != 0 {
		b.Skip("needs root (a raw socket)")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	p, err := openProber(true)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	rb := newRecvBatch(recvBatchSize)
	got := 0
	read := func() {
		for {
			m, err := rb.recv(p.fd)
			if err != nil {
				return
			}
			for i := range m {
				if _, ok := parseReply(rb.packet(i), true, rb.from(i)); ok {
					got++
				}
			}
		}
	}
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	src := dst.Addr()
	const perTick = 100 // 10,000 a second, in 10 ms ticks, as the benchmark
	var batch synBatch
	fail := func(_ *Job, _ uint32, err error) { b.Fatal(err) }
	cpu0 := rusageCPU()
	b.ResetTimer()
	next := time.Now()
	for i := 0; i < b.N; i++ {
		// The runner's way: the SYNs of a tick in one sendmmsg.
		batch.ents = append(batch.ents, synEnt{p: p, dst: dst.Addr()})
		buildSYN(batch.ents[len(batch.ents)-1].pkt[:], src, dst.Addr(), p.lo+uint16(i%int(p.hi-p.lo)), dst.Port(), uint32(i))
		if len(batch.ents) == perTick || i == b.N-1 {
			batch.flush(fail)
			next = next.Add(10 * time.Millisecond)
			time.Sleep(time.Until(next))
			read()
		}
	}
	b.StopTimer()
	cpu := rusageCPU() - cpu0
	if got < b.N*9/10 {
		b.Logf("only %d answers to %d SYNs", got, b.N)
	}
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/probe")
}

func rusageCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
