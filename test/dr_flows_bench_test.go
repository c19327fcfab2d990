package test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// BenchmarkDRFlowMapCPU measures what a large DR flow map costs the
// director's own CPU: in the sync lab (forwarding dr, two directors, d1
// master), the client creates 1k, 10k and 100k idle UDP flows (one packet
// each, from distinct source addresses and ports, so each is an element of
// d1's flow map for 300 s), and each govs process's CPU (user+system, from
// /proc/PID/stat) is read over a fixed window while nothing else happens.
// With sync, d2 holds the same flows (installed from d1), and the lag of a
// new flow (from its first packet at d1 to its element in d2's map) is
// measured too. govs is built without the race detector.
//
//	flock /tmp/govs-bench.lock go test -run XXX -bench DRFlowMapCPU -benchtime 1x ./test/
//
// GOVS_DR_BENCH_BIN=PATH runs another govs binary instead (an older build,
// for a before/after comparison); GOVS_DR_BENCH_MODE=sync (or nosync) runs
// only that half.
func BenchmarkDRFlowMapCPU(b *testing.B) {
	bin := os.Getenv("GOVS_DR_BENCH_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "govs")
		if out, err := exec.Command("go", "build", "-o", bin, "../cmd/govs").CombinedOutput(); err != nil {
			b.Fatalf("build: %v %s", err, out)
		}
	}
	modes := []string{"nosync", "sync"}
	if m := os.Getenv("GOVS_DR_BENCH_MODE"); m != "" {
		modes = []string{m} // one of them
	}
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) { benchDRFlowMap(b, bin, mode == "nosync") })
	}
}

// drBenchWindow is how long each director's CPU is read at each size:
// longer at 100,000 flows, where a read of the whole map takes seconds
// and happens every tens of seconds.
func drBenchWindow(n int) time.Duration {
	if n >= 100000 {
		return time.Minute
	}
	return 20 * time.Second
}

func benchDRFlowMap(b *testing.B, bin string, noSync bool) {
	l := newSyncLabTB(b, "dr", false, false)
	l.bin, l.noSync = bin, noSync
	l.services = `  - name: dns
    address: ` + syncVIP + `:53
    protocol: udp
    forwarding: dr
    scheduler: rr
    real_servers: [{address: 10.92.0.21:53}, {address: 10.92.0.22:53}, {address: 10.92.0.23:53}]
`
	d1, d2 := l.dirs[0], l.dirs[1]
	l.start(d1, 150)
	l.waitMaster(d1, 8*time.Second)
	l.start(d2, 100)
	if !noSync {
		loopback.WaitFor(l.t, "d2's resync", func() bool { return d2.syncState(l.t).Resync.Result == "complete" })
	}
	send := drFlowSender(b, l.client)
	for _, n := range []int{0, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("flows=%d", n), func(b *testing.B) {
			// Each round sends every flow not yet sent; flows the
			// director's softirq dropped in a burst are sent again
			// (a flow already in the map is only refreshed).
			for round := 0; drMapLen(b, d1) < n; round++ {
				if round == 5 {
					b.Fatalf("d1's flow map holds %d of %d flows after 5 rounds", drMapLen(b, d1), n)
				}
				send(0, n)
				time.Sleep(500 * time.Millisecond)
			}
			if !noSync {
				deadline := time.Now().Add(2 * time.Minute)
				for drMapLen(b, d2) < n {
					if time.Now().After(deadline) {
						// (an older govs never gets there: measured all the same)
						b.Logf("d2 holds %d of d1's %d flows after 2 minutes", drMapLen(b, d2), n)
						break
					}
					time.Sleep(500 * time.Millisecond)
				}
			}
			time.Sleep(2 * time.Second) // the installs' and statistics' first reads
			load := loadAvg()
			before1, before2 := cpuOf(b, d1.govs), cpuOf(b, d2.govs)
			start := time.Now()
			time.Sleep(drBenchWindow(n))
			el := time.Since(start)
			cpu1, cpu2 := cpuOf(b, d1.govs)-before1, cpuOf(b, d2.govs)-before2
			b.ReportMetric(100*cpu1.Seconds()/el.Seconds(), "d1-cpu-%")
			b.ReportMetric(100*cpu2.Seconds()/el.Seconds(), "d2-cpu-%")
			if !noSync {
				lags := drSyncLags(b, d2, send, n+50000, 10)
				b.ReportMetric(float64(lags[len(lags)/2])/1e6, "lag-p50-ms")
				b.ReportMetric(float64(lags[len(lags)-1])/1e6, "lag-max-ms")
			}
			b.Logf("%d flows: d1 %.1f%% of a core, d2 %.1f%% (load average %s)", n,
				100*cpu1.Seconds()/el.Seconds(), 100*cpu2.Seconds()/el.Seconds(), load)
		})
	}
}

// drFlowSender returns a function that sends one UDP datagram to the VIP's
// port 53 for each flow number in [from, to): flow i comes from
// 10.91.0.(30 + i/60000), port 1024 + i%60000, addresses inside the lab's
// client network that nothing else uses (the real servers' ICMP errors for
// them are dropped by the client). A raw socket makes any number of flows
// without a socket each.
func drFlowSender(b *testing.B, client *netns.NS) func(from, to int) {
	var fd int
	if err := client.Do(func() (err error) { fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW); return err }); err != nil {
		b.Fatalf("raw socket: %v", err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	vip := netip.MustParseAddr(syncVIP).As4()
	to := &unix.SockaddrInet4{Addr: vip}
	pkt := make([]byte, 20+8+4)
	return func(from, n int) {
		for i := from; i < n; i++ {
			src, port := drBenchFlow(i)
			pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
			binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
			copy(pkt[12:16], src.AsSlice())
			copy(pkt[16:20], vip[:])
			binary.BigEndian.PutUint16(pkt[20:], port)
			binary.BigEndian.PutUint16(pkt[22:], 53)
			binary.BigEndian.PutUint16(pkt[24:], 8+4)
			if err := unix.Sendto(fd, pkt, 0, to); err != nil {
				b.Fatalf("sending flow %d: %v", i, err)
			}
			if i%200 == 199 {
				// veth hands packets on through a backlog of 1000:
				// let the director's softirq keep up.
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// drBenchFlow is flow i's client address and port (drFlowSender).
func drBenchFlow(i int) (netip.Addr, uint16) {
	return netip.AddrFrom4([4]byte{10, 91, 0, byte(30 + i/60000)}), uint16(1024 + i%60000)
}

// drMapLen is the number of elements in d's IPv4 DR flow map.
func drMapLen(b *testing.B, d *syncDirector) int {
	c, err := nftables.New(nftables.WithNetNSFd(d.ns.FD()))
	if err != nil {
		b.Fatal(err)
	}
	es, err := c.GetSetElements(&nftables.Set{Table: &nftables.Table{Name: "govs", Family: nftables.TableFamilyIPv4}, Name: "flows"})
	if err != nil {
		return 0 // (no table yet)
	}
	return len(es)
}

// drSyncLags sends k new flows from flow number first on, one at a time,
// and returns, sorted, the time from each one's packet to its install on
// d2 (d2's count of DR flows installed from peers goes up by one: nothing
// else installs meanwhile, the lab is idle). A flow not installed within
// 30 s counts 30 s (an older govs at 100,000 flows).
func drSyncLags(b *testing.B, d2 *syncDirector, send func(from, to int), first, k int) []time.Duration {
	installed := func() float64 { return counter(d2.syncState(b).Counters, "dr_flows_installed") }
	var lags []time.Duration
	for i := first; i < first+k; i++ {
		before := installed()
		t0 := time.Now()
		send(i, i+1)
		for installed() <= before {
			if time.Since(t0) > 30*time.Second {
				b.Logf("flow %d not installed on d2 after 30 s", i)
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		lags = append(lags, time.Since(t0))
		time.Sleep(100 * time.Millisecond)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	return lags
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	var a, b, c string
	fmt.Sscan(string(raw), &a, &b, &c)
	return a + " " + b + " " + c
}
