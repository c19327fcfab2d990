package proxy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindCgroupCPU(t *testing.T) {
	for _, c := range []struct {
		name, cgroup, mountinfo string
		want                    cgroupCPU
		ok                      bool
	}{
		{"v1", "4:memory:/x\n1:cpu:/govs\n0::/\n",
			"30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n" +
				"31 25 0:27 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n",
			cgroupCPU{dir: "/sys/fs/cgroup/cpu/govs", mount: "/sys/fs/cgroup/cpu"}, true},
		{"v1 joined controllers", "3:cpu,cpuacct:/system.slice/govs.service\n",
			"30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
			cgroupCPU{dir: "/sys/fs/cgroup/cpu,cpuacct/system.slice/govs.service", mount: "/sys/fs/cgroup/cpu,cpuacct"}, true},
		{"v2", "0::/system.slice/govs.service\n",
			"35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
			cgroupCPU{dir: "/sys/fs/cgroup/system.slice/govs.service", mount: "/sys/fs/cgroup", v2: true}, true},
		{"v2 in a container (namespaced root)", "0::/\n",
			"35 24 0:30 /kubepods/pod1/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			cgroupCPU{dir: "/sys/fs/cgroup", mount: "/sys/fs/cgroup", v2: true}, false},
		{"v2 root mounted below", "0::/kubepods/pod1/abc\n",
			"35 24 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			cgroupCPU{dir: "/sys/fs/cgroup/abc", mount: "/sys/fs/cgroup", v2: true}, true},
		{"no cpu controller", "4:memory:/x\n", "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", cgroupCPU{}, false},
	} {
		got, ok := findCgroupCPU(strings.NewReader(c.cgroup), strings.NewReader(c.mountinfo))
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: %+v %v, want %+v %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestQuotaLoops(t *testing.T) {
	for _, c := range []struct {
		v2                 bool
		max, quota, period string
		procs, want        int
	}{
		{true, "max 100000\n", "", "", 2, 2},
		{true, "50000 100000\n", "", "", 2, 1},
		{true, "100000 100000", "", "", 2, 1},
		{true, "150000 100000", "", "", 2, 2},
		{true, "400000 100000", "", "", 2, 2}, // never more than GOMAXPROCS
		{false, "", "-1\n", "100000\n", 2, 2},
		{false, "", "50000\n", "100000\n", 4, 1},
		{false, "", "250000\n", "100000\n", 8, 3},
		{false, "", "junk", "100000", 2, 2},
		{true, "0 100000", "", "", 2, 2},
	} {
		cpus, limited := quotaOf(c.v2, c.max, c.quota, c.period)
		if got := quotaLoops(c.procs, cpus, limited); got != c.want {
			t.Errorf("%+v: %d loops, want %d", c, got, c.want)
		}
	}
}

// TestLoopsFollowQuota runs a child in a cgroup of the test's own with a
// CPU quota of one CPU: Go's GOMAXPROCS stays 2 there, the proxy runs one
// loop.
func TestLoopsFollowQuota(t *testing.T) {
	if !eventLoopSupported {
		t.Skip("event loops are Linux's")
	}
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup needs root")
	}
	var dir, procs string
	var set func() error
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		dir = filepath.Join("/sys/fs/cgroup/cpu", fmt.Sprintf("govs-test-%d", os.Getpid()))
		procs = filepath.Join(dir, "cgroup.procs")
		set = func() error {
			if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte("100000"), 0o644)
		}
	} else if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control"); err == nil && strings.Contains(string(b), "cpu") {
		dir = filepath.Join("/sys/fs/cgroup", fmt.Sprintf("govs-test-%d", os.Getpid()))
		procs = filepath.Join(dir, "cgroup.procs")
		set = func() error { return os.WriteFile(filepath.Join(dir, "cpu.max"), []byte("100000 100000"), 0o644) }
	} else {
		t.Skip("no writable cgroup CPU controller (v1 cpu, or v2 with cpu in the root's subtree_control)")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) }) // empty once the child has exited
	if err := set(); err != nil {
		t.Fatal(err)
	}
	// The shell joins the cgroup, then becomes the child.
	cmd := exec.Command("sh", "-c", `echo $$ > "$1" && exec "$2" -test.run='^TestHelperPrintLoops$' -test.count=1`, "sh", procs, os.Args[0])
	cmd.Env = append(os.Environ(), "GOVS_HELPER_PRINT_LOOPS=1", "GOMAXPROCS=", loopsEnv+"=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	want := "loops=1 "
	if !strings.Contains(string(out), want) {
		t.Errorf("under a quota of one CPU: %s, want %s", out, want)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
