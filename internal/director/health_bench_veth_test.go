package director

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/test/netns"
)

// The veth topology of BenchmarkHealthChecks10k: the director's process
// in a namespace of its own, reaching the real servers' namespace over a
// veth pair. Each end of the pair receives in threaded NAPI, so that the
// kernel's receive work of each side runs in a kernel thread of its own
// (napi/DEV-ID) whose CPU time is read from /proc, apart from the
// director's process: what a NIC's softirq does on a real director, and
// what the real servers' own CPUs do. (Without threaded NAPI a veth
// delivers in the sender's softirq, which is charged to the sender's
// system call, as on loopback.)

// benchDirectorEnv makes TestHealthBenchDirector the director of the veth
// topology: the comma-separated listener addresses.
const benchDirectorEnv = "GOVS_HEALTH_BENCH_DIRECTOR"

// TestHealthBenchDirector is not a test: run by the benchmark inside the
// director's namespace, it runs measureChecks against the listeners,
// prints "start" and "end" around the window (the benchmark samples the
// NAPI threads then) and the figures as JSON.
func TestHealthBenchDirector(t *testing.T) {
	addrs := os.Getenv(benchDirectorEnv)
	if addrs == "" {
		t.Skip("helper process of BenchmarkHealthChecks10k")
	}
	f := measureChecks(t, strings.Split(addrs, ","), true, benchWindow(), func(at string) {
		fmt.Println(at)
		if at == "start" {
			// The benchmark samples the threads when it reads the line;
			// the process's own CPU is sampled after this.
			time.Sleep(10 * time.Millisecond)
		}
	})
	out, _ := json.Marshal(f)
	fmt.Printf("figures %s\n", out)
}

func benchChecksVeth(b *testing.B) {
	netns.Require(b)
	dns, sns := netns.New(b, "hcdir"), netns.New(b, "hcsrv")
	netns.Link(dns, "hcd0", "10.233.0.1/24", sns, "hcs0", "10.233.0.2/24")
	// 10,000 different real servers: 1,250 addresses (a local route in
	// the servers' namespace) times the listeners' 8 ports.
	sns.IP("route", "add", "local", "10.234.0.0/21", "dev", "lo")
	dns.IP("route", "add", "10.234.0.0/21", "via", "10.233.0.2")
	dirNAPI := threadedNAPI(b, dns, "hcd0")
	srvNAPI := threadedNAPI(b, sns, "hcs0")
	for _, end := range []struct {
		ns  *netns.NS
		dev string
	}{{dns, "hcd0"}, {sns, "hcs0"}} {
		// A queue, as a NIC has: a veth with a qdisc stops its queue when
		// its peer's ring is full instead of dropping.
		end.ns.IP("link", "set", end.dev, "txqueuelen", "10000")
		if out, err := end.ns.Exec("tc", "qdisc", "replace", "dev", end.dev, "root", "pfifo", "limit", "10000"); err != nil {
			b.Fatalf("qdisc on %s: %v: %s", end.dev, err, out)
		}
	}
	child, addrs := startBenchListeners(b, "0.0.0.0", "ip", "netns", "exec", sns.Name)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("ip", "netns", "exec", dns.Name, os.Args[0], "-test.run=^TestHealthBenchDirector$", "-test.v=false")
		cmd.Env = append(os.Environ(), benchDirectorEnv+"="+strings.Join(addrs, ","))
		cmd.Stderr = os.Stderr
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var d0, s0, l0, d1, s1, l1 time.Duration
		var drop0, drop1 int64
		var f benchFigures
		got := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "start":
				d0, s0, l0 = threadCPU(b, dirNAPI), threadCPU(b, srvNAPI), procCPU(child.Process.Pid)
				drop0 = vethDrops(b, dns, "hcd0") + vethDrops(b, sns, "hcs0")
			case line == "end":
				d1, s1, l1 = threadCPU(b, dirNAPI), threadCPU(b, srvNAPI), procCPU(child.Process.Pid)
				drop1 = vethDrops(b, dns, "hcd0") + vethDrops(b, sns, "hcs0")
			case strings.HasPrefix(line, "figures "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "figures ")), &f); err != nil {
					b.Fatal(err)
				}
				got = true
			}
		}
		io.Copy(io.Discard, stdout)
		if err := cmd.Wait(); err != nil || !got {
			b.Fatalf("director process: %v (figures: %v)", err, got)
		}
		f.report(b)
		b.ReportMetric(f.share(d1-d0), "director-kernel-cpu%")
		b.ReportMetric(f.share(f.CPU+d1-d0), "machine-cpu%")
		b.ReportMetric(float64(f.CPU+d1-d0)/float64(time.Microsecond)/float64(f.Checks), "machine-µs/check")
		b.ReportMetric(f.share(s1-s0), "servers-kernel-cpu%")
		b.ReportMetric(f.share(l1-l0), "listeners-cpu%")
		b.ReportMetric(float64(drop1-drop0), "veth-drops")
	}
}

// threadedNAPI makes dev (in ns) receive in a NAPI kernel thread: GRO on
// (a veth then receives through NAPI) and TSO off (a veth hands a TSO
// device's packets to NAPI only in special cases), then "threaded"; it
// returns the thread's pid. The thread keeps its normal priority: a
// real-time one preempts the sender at each packet and polls them one by
// one (tried: twice the kernel's CPU, and its ring overflowed), where a
// NIC's interrupt moderation batches them.
func threadedNAPI(tb testing.TB, ns *netns.NS, dev string) int {
	tb.Helper()
	if err := ns.Do(func() error {
		if err := ethtoolSet(dev, ethtoolSTSO, 0); err != nil {
			return fmt.Errorf("tso off: %w", err)
		}
		return ethtoolSet(dev, ethtoolSGRO, 1)
	}); err != nil {
		tb.Fatalf("%s: %v", dev, err)
	}
	// sysfs shows the namespace of the process that mounted it: ip netns
	// exec mounts the namespace's.
	if out, err := ns.Exec("sh", "-c", "echo 1 > /sys/class/net/"+dev+"/threaded"); err != nil {
		tb.Fatalf("%s threaded: %v: %s", dev, err, out)
	}
	// Kernel thread names are global; the device names are this
	// benchmark's own.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		comms, _ := filepath.Glob("/proc/[0-9]*/comm")
		for _, c := range comms {
			if b, err := os.ReadFile(c); err == nil && strings.HasPrefix(string(b), "napi/"+dev+"-") {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
				return pid
			}
		}
	}
	tb.Fatalf("no NAPI thread for %s", dev)
	return 0
}

// vethDrops is the packets dropped by dev (in ns) either way.
func vethDrops(tb testing.TB, ns *netns.NS, dev string) int64 {
	tb.Helper()
	out, err := ns.Exec("cat", "/sys/class/net/"+dev+"/statistics/tx_dropped", "/sys/class/net/"+dev+"/statistics/rx_dropped")
	if err != nil {
		tb.Fatalf("%s statistics: %v: %s", dev, err, out)
	}
	var n int64
	for _, f := range strings.Fields(out) {
		v, _ := strconv.ParseInt(f, 10, 64)
		n += v
	}
	return n
}

// The legacy ethtool requests (linux/ethtool.h) that set one feature.
const (
	ethtoolSTSO = 0x1f
	ethtoolSGRO = 0x2c
)

// ethtoolSet sets one of dev's features with SIOCETHTOOL, in the calling
// thread's namespace.
func ethtoolSet(dev string, cmd, value uint32) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ev := struct{ cmd, data uint32 }{cmd, value}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer // a pointer, not a uintptr: ev moves with the stack, or to the heap
		_    [16]byte
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&ev)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// threadCPU is a thread's CPU time to the nanosecond (/proc/PID/schedstat).
func threadCPU(tb testing.TB, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		tb.Fatalf("schedstat of %d: %q", pid, b)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ns)
}
