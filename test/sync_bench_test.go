package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"

	"github.com/govs-lb/govs/test/loopback"
)

// BenchmarkSyncLag opens b.N short connections through the master of the
// sync lab (nat, rr, 3 real servers) at a steady rate and measures, for
// each, the time from the client's connect to the flow's creation in the
// backup's conntrack (its NEW event there), the bytes the master sent on
// the sync link per connection, and both directors' CPU. govs is built
// without the race detector for it.
//
//	go test -run XXX -bench SyncLag -benchtime 3000x ./test/
func BenchmarkSyncLag(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "govs")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/govs").CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	b.Run("sync", func(b *testing.B) { benchSyncLag(b, bin, false) })
	b.Run("nosync", func(b *testing.B) { benchSyncLag(b, bin, true) })
}

func benchSyncLag(b *testing.B, bin string, noSync bool) {
	l := newSyncLabTB(b, "nat", false, false)
	l.bin, l.noSync = bin, noSync
	d1, d2 := l.dirs[0], l.dirs[1]
	l.start(d1, 150)
	l.waitMaster(d1, 8*time.Second)
	l.start(d2, 100)
	if noSync {
		// The baseline: the same traffic, directors without sync.
		time.Sleep(time.Second)
		before1, before2 := cpuOf(b, d1.govs), cpuOf(b, d2.govs)
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / syncBenchRate)))
			l.shortOne(b, i)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		time.Sleep(2 * time.Second)
		n := float64(b.N)
		b.ReportMetric((cpuOf(b, d1.govs)-before1).Seconds()*1000/n*1000, "master-cpu-ms/1k-conn")
		b.ReportMetric((cpuOf(b, d2.govs)-before2).Seconds()*1000/n*1000, "backup-cpu-ms/1k-conn")
		b.ReportMetric(n/elapsed.Seconds(), "conn/s")
		return
	}
	loopback.WaitFor(l.t, "d2's resync", func() bool { return d2.syncState(l.t).Resync.Result == "complete" })

	// The backup's conntrack events: when each client port's flow appears.
	ct, err := conntrack.Dial(&netlink.Config{NetNS: d2.ns.FD()})
	if err != nil {
		b.Fatal(err)
	}
	defer ct.Close()
	evs := make(chan conntrack.Event, 65536)
	if _, err := ct.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew}); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint16]time.Time{}
	go func() {
		for ev := range evs {
			if ev.Flow != nil && ev.Flow.TupleOrig.Proto.DestinationPort == 80 {
				mu.Lock()
				if _, ok := seen[ev.Flow.TupleOrig.Proto.SourcePort]; !ok {
					seen[ev.Flow.TupleOrig.Proto.SourcePort] = time.Now()
				}
				mu.Unlock()
			}
		}
	}()

	before1, before2 := cpuOf(b, d1.govs), cpuOf(b, d2.govs)
	sent0 := counter(d1.syncState(l.t).Counters, "bytes_sent")
	entries0 := counter(d1.syncState(l.t).Counters, "entries_sent")
	started := map[uint16]time.Time{}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / syncBenchRate)))
		t0 := time.Now()
		started[l.shortOne(b, i)] = t0
	}
	elapsed := time.Since(start)
	b.StopTimer()
	time.Sleep(2 * time.Second) // the last flows' deletions, and their events
	cpu1, cpu2 := cpuOf(b, d1.govs)-before1, cpuOf(b, d2.govs)-before2
	st := d1.syncState(l.t)
	var lags []time.Duration
	mu.Lock()
	for port, t0 := range started {
		if at, ok := seen[port]; ok {
			lags = append(lags, at.Sub(t0))
		}
	}
	mu.Unlock()
	if len(lags) < b.N*99/100 {
		b.Fatalf("only %d of %d flows appeared on the backup", len(lags), b.N)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	n := float64(b.N)
	b.ReportMetric(float64(lags[len(lags)/2])/1e6, "lag-p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100])/1e6, "lag-p99-ms")
	// The backup's own view: from the master's send (the message's
	// timestamp) to the install, over its last 1024 installs. What the
	// end-to-end lag has beyond it is the master's side (conntrack's
	// event, the read, the batching) and the handshake.
	st2 := d2.syncState(l.t)
	b.ReportMetric(st2.LagP99Ms, "send-to-install-p99-ms")
	b.ReportMetric((counter(st.Counters, "bytes_sent")-sent0)/n, "sync-bytes/conn")
	b.ReportMetric((counter(st.Counters, "entries_sent")-entries0)/n, "entries/conn")
	b.ReportMetric(cpu1.Seconds()*1000/n*1000, "master-cpu-ms/1k-conn")
	b.ReportMetric(cpu2.Seconds()*1000/n*1000, "backup-cpu-ms/1k-conn")
	b.ReportMetric(n/elapsed.Seconds(), "conn/s")
}

const syncBenchRate = 500 // connections a second

// shortOne makes one short connection and returns its client port.
func (l *syncLab) shortOne(b *testing.B, i int) uint16 {
	c, err := l.dial()
	if err != nil {
		b.Fatalf("connection %d: %v", i, err)
	}
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	p, _ := strconv.Atoi(port)
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r.ReadString('\n')
	fmt.Fprintf(c, "1\n")
	r.ReadString('\n')
	c.Close()
	return uint16(p)
}

func counter(m map[string]any, k string) float64 {
	v, _ := m[k].(float64)
	return v
}

// cpuOf is the user+system CPU time of the daemon's process so far.
func cpuOf(b *testing.B, d *daemon) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}
