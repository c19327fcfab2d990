// Package agent is govs agent: the daemon that runs on each real server and
// answers HAProxy's agent-check protocol with a weight percentage computed
// from the server's measured state (docs/agent.md).
//
// The package is split as the rest of govs is: Sample and the Parse*
// functions read the kernel's text (pure, fed fixtures in tests); Estimator
// turns samples into smoothed figures and a reply line (pure, time passed
// in); Proc reads /proc (or a fixture tree) into a Sample; Server is the TCP
// side.
package agent

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading of the server's counters. Cumulative counters
// (CPU jiffies, PSI stall microseconds, disk IO milliseconds) only mean
// something as the difference between two samples: the Estimator takes
// those differences. A Has* flag is false when the kernel does not have the
// file (PSI needs CONFIG_PSI and psi=1; containers may hide diskstats).
type Sample struct {
	At time.Time

	HasCPU    bool
	CPUTotal  uint64 // jiffies, all CPUs: /proc/stat's "cpu" line summed
	CPUIdle   uint64 // idle + iowait jiffies
	NCPU      int    // "cpuN" lines
	HasLoad   bool
	Load1     float64 // /proc/loadavg, 1 minute
	HasMem    bool
	MemTotal  uint64 // kB
	MemAvail  uint64 // kB, MemAvailable
	HasPSI    [3]bool
	PSI       [3]uint64 // "some" total stall, microseconds: cpu, memory, io
	HasDisk   bool
	DiskBusy  map[string]uint64 // per whole disk: milliseconds spent doing IO (field 13)
	HasFlight bool
	InFlight  int // established connections to the service port
	// Probe is the round trip of the probe URL; ProbeErr is set when it failed.
	HasProbe bool
	Probe    time.Duration
	ProbeErr string
}

// PSI resources, indexes of Sample.PSI.
const (
	PSICPU = iota
	PSIMemory
	PSIIO
)

// PSINames are the files under /proc/pressure, by index.
var PSINames = [3]string{"cpu", "memory", "io"}

var errFormat = errors.New("unexpected format")

// ParseStat reads /proc/stat's aggregate "cpu" line: user nice system idle
// iowait irq softirq steal (guest and guest_nice are already in user and
// nice, so they are not added twice). Idle time is idle + iowait: a CPU
// waiting for IO could run something else.
func ParseStat(b []byte) (total, idle uint64, ncpu int, err error) {
	found := false
	for line := range bytes.Lines(b) {
		if !bytes.HasPrefix(line, []byte("cpu")) {
			continue
		}
		f := bytes.Fields(line)
		if len(f[0]) > 3 {
			ncpu++
			continue
		}
		if len(f) < 5 {
			return 0, 0, 0, fmt.Errorf("stat: cpu line: %w", errFormat)
		}
		for i, x := range f[1:] {
			if i >= 8 {
				break
			}
			n, err := strconv.ParseUint(string(x), 10, 64)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("stat: cpu field %d: %w", i+1, err)
			}
			total += n
			if i == 3 || i == 4 {
				idle += n
			}
		}
		found = true
	}
	if !found {
		return 0, 0, 0, fmt.Errorf("stat: no cpu line: %w", errFormat)
	}
	return total, idle, max(ncpu, 1), nil
}

// ParseLoadavg reads /proc/loadavg's 1-minute figure.
func ParseLoadavg(b []byte) (float64, error) {
	f := bytes.Fields(b)
	if len(f) < 1 {
		return 0, fmt.Errorf("loadavg: %w", errFormat)
	}
	v, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("loadavg: %q: %w", f[0], errFormat)
	}
	return v, nil
}

// ParseMeminfo reads MemTotal and MemAvailable (kB). MemAvailable is the
// kernel's estimate of what can be allocated without swapping (page cache
// that can be dropped included), the figure free(1) shows as "available".
func ParseMeminfo(b []byte) (total, avail uint64, err error) {
	var gotT, gotA bool
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch string(f[0]) {
		case "MemTotal:":
			total, err = strconv.ParseUint(string(f[1]), 10, 64)
			gotT = err == nil
		case "MemAvailable:":
			avail, err = strconv.ParseUint(string(f[1]), 10, 64)
			gotA = err == nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("meminfo: %s: %w", f[0], err)
		}
	}
	if !gotT || !gotA || total == 0 {
		return 0, 0, fmt.Errorf("meminfo: no MemTotal or MemAvailable: %w", errFormat)
	}
	return total, min(avail, total), nil
}

// ParsePressure reads the "some" line's total (microseconds during which at
// least one task stalled on the resource) from a /proc/pressure file.
func ParsePressure(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		if !bytes.HasPrefix(line, []byte("some ")) {
			continue
		}
		for _, f := range bytes.Fields(line) {
			if v, ok := bytes.CutPrefix(f, []byte("total=")); ok {
				n, err := strconv.ParseUint(string(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("pressure: total: %w", err)
				}
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("pressure: no some total: %w", errFormat)
}

// ParseDiskstats reads the milliseconds each whole disk spent doing IO
// (the 10th statistic, field 13 of the line). Partitions are skipped (their
// time is their disk's), and so are devices that are never busy on a real
// server's behalf: loop, ram, zram, device-mapper's and md's stacked
// devices (their IO is their members').
func ParseDiskstats(b []byte) (map[string]uint64, error) {
	m := map[string]uint64{}
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) < 14 {
			continue
		}
		name := string(f[2])
		if skipDisk(name) {
			continue
		}
		n, err := strconv.ParseUint(string(f[12]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("diskstats: %s: %w", name, err)
		}
		m[name] = n
	}
	return m, nil
}

func skipDisk(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "md", "sr", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	// Partitions: sda1, vda2, xvdb3 end in a digit where their disk ends
	// in a letter; nvme0n1p1 and mmcblk0p1 add pN to nvme0n1 and mmcblk0.
	if strings.HasPrefix(name, "nvme") || strings.HasPrefix(name, "mmcblk") {
		i := strings.LastIndexByte(name, 'p')
		return i > 0 && isDigits(name[i+1:])
	}
	last := name[len(name)-1]
	return last >= '0' && last <= '9'
}

// CountEstablished counts the established TCP connections whose local port
// is port in a /proc/net/tcp or tcp6 table: the requests in flight of a
// service on that port, seen from the kernel's socket table without
// touching the service. State 01 is TCP_ESTABLISHED.
func CountEstablished(b []byte, port uint16) (int, error) {
	n := 0
	first := true
	for line := range bytes.Lines(b) {
		if first {
			first = false
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 4 {
			continue
		}
		local, st := f[1], f[3]
		i := bytes.LastIndexByte(local, ':')
		if i < 0 {
			return 0, fmt.Errorf("net/tcp: local address %q: %w", local, errFormat)
		}
		p, err := strconv.ParseUint(string(local[i+1:]), 16, 16)
		if err != nil {
			return 0, fmt.Errorf("net/tcp: local port %q: %w", local[i+1:], errFormat)
		}
		if uint16(p) == port && string(st) == "01" {
			n++
		}
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
