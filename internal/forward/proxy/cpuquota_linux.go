package proxy

import (
	"os"
	"path/filepath"
	"strings"
)

// cgroupQuota is the smallest CPU quota of the process's cgroup and its
// ancestors up to the controller's mount; false when none applies or it
// cannot be read.
func cgroupQuota() (float64, bool) {
	cg, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	defer cg.Close()
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0, false
	}
	defer mi.Close()
	c, ok := findCgroupCPU(cg, mi)
	if !ok {
		return 0, false
	}
	read := func(dir, name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	best, limited := 0.0, false
	for dir := c.dir; ; dir = filepath.Dir(dir) {
		var cpus float64
		var ok bool
		if c.v2 {
			cpus, ok = quotaOf(true, read(dir, "cpu.max"), "", "")
		} else {
			cpus, ok = quotaOf(false, "", read(dir, "cpu.cfs_quota_us"), read(dir, "cpu.cfs_period_us"))
		}
		if ok && (!limited || cpus < best) {
			best, limited = cpus, true
		}
		if dir == c.mount || !strings.HasPrefix(dir, c.mount) || dir == "/" {
			break
		}
	}
	return best, limited
}
