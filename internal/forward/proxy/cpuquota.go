package proxy

import (
	"bufio"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
)

// The CPU quota of the process's cgroup, read as Go's runtime reads it for
// GOMAXPROCS, because the runtime never sizes GOMAXPROCS below 2 from a
// quota: under a quota of one CPU, two loops would take turns being
// throttled. The proxy runs ceil(quota) loops there (docs/proxy.md#threads).

// cgroupCPU is where the process's CPU controller is: the directory of its
// cgroup as mounted here, the mount point above which no limit applies,
// and whether it is cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us).
type cgroupCPU struct {
	dir, mount string
	v2         bool
}

// findCgroupCPU reads /proc/self/cgroup and /proc/self/mountinfo.
func findCgroupCPU(cgroup, mountinfo io.Reader) (cgroupCPU, bool) {
	var v1Path, v2Path string
	haveV1, haveV2 := false, false
	sc := bufio.NewScanner(cgroup)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2Path, haveV2 = f[2], true
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "cpu" {
				v1Path, haveV1 = f[2], true
			}
		}
	}
	sc = bufio.NewScanner(mountinfo)
	var v2 cgroupCPU
	foundV2 := false
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 {
			continue
		}
		root, point := unescapeMount(lf[3]), unescapeMount(lf[4])
		switch rf[0] {
		case "cgroup":
			if !haveV1 {
				continue
			}
			for _, o := range strings.Split(rf[2], ",") {
				if o == "cpu" {
					if rel, ok := under(v1Path, root); ok {
						return cgroupCPU{dir: path.Join(point, rel), mount: point}, true
					}
				}
			}
		case "cgroup2":
			if rel, ok := under(v2Path, root); haveV2 && ok && !foundV2 {
				v2, foundV2 = cgroupCPU{dir: path.Join(point, rel), mount: point, v2: true}, true
			}
		}
	}
	// A v1 cpu controller, where there is one, is the one that limits.
	return v2, foundV2
}

// under is p relative to the mount's root, if it is below it.
func under(p, root string) (string, bool) {
	if root == "/" {
		return p, true
	}
	if p == root {
		return "/", true
	}
	if rel, ok := strings.CutPrefix(p, root+"/"); ok {
		return "/" + rel, true
	}
	return "", false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// quotaOf is the CPUs a cgroup's files allow (cpu.max's "QUOTA PERIOD", or
// v1's quota and period); false for no limit or a value not understood.
func quotaOf(v2 bool, cpuMax, cfsQuota, cfsPeriod string) (float64, bool) {
	var q, p string
	if v2 {
		f := strings.Fields(cpuMax)
		if len(f) != 2 {
			return 0, false
		}
		q, p = f[0], f[1]
	} else {
		q, p = strings.TrimSpace(cfsQuota), strings.TrimSpace(cfsPeriod)
	}
	quota, err1 := strconv.ParseInt(q, 10, 64)
	period, err2 := strconv.ParseInt(p, 10, 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return 0, false // "max", -1: no limit
	}
	return float64(quota) / float64(period), true
}

// quotaLoops caps n loops at the quota's CPUs, rounded up.
func quotaLoops(n int, cpus float64, limited bool) int {
	if !limited || n <= 1 {
		return n
	}
	return max(1, min(n, int(math.Ceil(cpus))))
}
