package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Fixture is a fake /proc tree's content: what a --proc-root directory
// holds. The tests of the agent and of the director's use of it write one
// and rewrite it to move the figures without loading the machine; an
// operator can do the same to see how the agent would answer.
type Fixture struct {
	NCPU       int
	User, Idle uint64 // cumulative jiffies of the "cpu" line (other fields 0)
	Load1      float64
	MemTotalKB uint64
	MemAvailKB uint64
	PSI        *[3]uint64 // "some" totals (µs) of cpu, memory, io; nil: no /proc/pressure
	DiskIOMs   uint64     // io_ticks of one disk, sda
	Conns      []TCPConn  // sockets in net/tcp
}

// TCPConn is a row of /proc/net/tcp.
type TCPConn struct {
	LocalPort uint16
	State     uint8 // 1 established, 10 listen
}

// Write writes the tree into dir, each file replaced atomically.
func (f Fixture) Write(dir string) error {
	ncpu := max(f.NCPU, 1)
	var stat strings.Builder
	fmt.Fprintf(&stat, "cpu  %d 0 0 %d 0 0 0 0 0 0\n", f.User, f.Idle)
	for i := range ncpu {
		fmt.Fprintf(&stat, "cpu%d %d 0 0 %d 0 0 0 0 0 0\n", i, f.User/uint64(ncpu), f.Idle/uint64(ncpu))
	}
	stat.WriteString("intr 0\nctxt 0\n")
	files := map[string]string{
		"stat":      stat.String(),
		"loadavg":   fmt.Sprintf("%.2f 0.00 0.00 1/100 1234\n", f.Load1),
		"meminfo":   fmt.Sprintf("MemTotal: %d kB\nMemFree: %d kB\nMemAvailable: %d kB\n", f.MemTotalKB, f.MemAvailKB/2, f.MemAvailKB),
		"diskstats": fmt.Sprintf("   8       0 sda 1 0 8 0 1 0 8 0 0 %d %d 0 0 0 0\n   8       1 sda1 1 0 8 0 1 0 8 0 0 999999 0 0 0 0 0\n   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", f.DiskIOMs, f.DiskIOMs),
	}
	var tcp strings.Builder
	tcp.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i, c := range f.Conns {
		fmt.Fprintf(&tcp, "%4d: 0100007F:%04X 0100007F:%04X %02X 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1\n",
			i, c.LocalPort, 40000+i, c.State, 1000+i)
	}
	files["net/tcp"] = tcp.String()
	files["net/tcp6"] = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	if f.PSI != nil {
		for i, name := range PSINames {
			files["pressure/"+name] = fmt.Sprintf("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", f.PSI[i])
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}
