package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Proc reads a Sample from a /proc tree: the real one, or a fixture
// directory laid out the same way (govs agent --proc-root), which is how
// the tests drive the agent deterministically.
type Proc struct {
	Root        string // "/proc" by default
	ServicePort uint16 // 0: no in-flight count
	ProbeURL    string // "": no latency probe
	Client      *http.Client
}

func (p *Proc) root() string {
	if p.Root == "" {
		return "/proc"
	}
	return p.Root
}

// maxProcFile bounds what is read of one /proc file: /proc/net/tcp of a
// busy server is the largest (150 bytes a socket).
const maxProcFile = 64 << 20

func (p *Proc) read(name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(p.root(), name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxProcFile))
}

// Sample reads everything at now. Files the kernel does not have leave
// their Has* flag false; other errors are returned joined, with whatever
// could be read.
func (p *Proc) Sample(ctx context.Context, now time.Time) (Sample, error) {
	s := Sample{At: now}
	var errs []error
	note := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if b, err := p.read("stat"); err == nil {
		s.CPUTotal, s.CPUIdle, s.NCPU, err = ParseStat(b)
		s.HasCPU = err == nil
		note(err)
	} else {
		note(err)
	}
	if b, err := p.read("loadavg"); err == nil {
		s.Load1, err = ParseLoadavg(b)
		s.HasLoad = err == nil
		note(err)
	} else {
		note(err)
	}
	if b, err := p.read("meminfo"); err == nil {
		s.MemTotal, s.MemAvail, err = ParseMeminfo(b)
		s.HasMem = err == nil
		note(err)
	} else {
		note(err)
	}
	for i, name := range PSINames {
		if b, err := p.read(filepath.Join("pressure", name)); err == nil {
			s.PSI[i], err = ParsePressure(b)
			s.HasPSI[i] = err == nil
			note(err)
		} else if !errors.Is(err, syscall.EOPNOTSUPP) {
			// EOPNOTSUPP: a kernel booted with psi=0, which is no PSI.
			note(err)
		}
	}
	if b, err := p.read("diskstats"); err == nil {
		s.DiskBusy, err = ParseDiskstats(b)
		s.HasDisk = err == nil
		note(err)
	} else {
		note(err)
	}
	if p.ServicePort != 0 {
		n, ok := 0, false
		for _, name := range []string{"net/tcp", "net/tcp6"} {
			b, err := p.read(name)
			if err != nil {
				note(err)
				continue
			}
			c, err := CountEstablished(b, p.ServicePort)
			note(err)
			if err == nil {
				n, ok = n+c, true
			}
		}
		s.InFlight, s.HasFlight = n, ok
	}
	if p.ProbeURL != "" {
		s.HasProbe = true
		s.Probe, s.ProbeErr = p.probe(ctx)
	}
	return s, errors.Join(errs...)
}

// probe times one GET of the probe URL, body read to the end (up to 1 MiB).
func (p *Proc) probe(ctx context.Context) (time.Duration, string) {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.ProbeURL, nil)
	if err != nil {
		return 0, err.Error()
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, err.Error()
	}
	if resp.StatusCode >= 500 {
		return 0, fmt.Sprintf("status %d", resp.StatusCode)
	}
	return d, ""
}
