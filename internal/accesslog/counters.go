package accesslog

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// The process's access log and termination counts: the dataplane writes
// to them when a connection ends, govs run sets the writer, and the API
// reads both for /metrics.
var (
	current atomic.Pointer[Writer]
	// Terminations counts finished connections per service, real server
	// and termination code, whether or not an access log is written.
	Terminations Counters
)

// SetWriter makes w the process's access log (nil: none, the proxy then
// writes its lines to the log stream if access_log is true) and returns
// the one it replaces, for the caller to close.
func SetWriter(w *Writer) *Writer { return current.Swap(w) }

// Current is the process's access log, nil if none.
func Current() *Writer { return current.Load() }

type countKey struct {
	service string
	backend netip.AddrPort
	code    Termination
}

// Counters counts terminations by service, real server and code. Add does
// not allocate once a key has been seen.
type Counters struct {
	mu sync.RWMutex
	m  map[countKey]*atomic.Uint64
}

// maxCountKeys bounds the table (real servers come and go with
// discovery); past it new keys count under an empty backend.
const maxCountKeys = 100000

// Add counts one connection of service to backend ended with code.
func (c *Counters) Add(service string, backend netip.AddrPort, code Termination) {
	k := countKey{service, backend, code}
	c.mu.RLock()
	n := c.m[k]
	c.mu.RUnlock()
	if n == nil {
		c.mu.Lock()
		if n = c.m[k]; n == nil {
			if c.m == nil {
				c.m = map[countKey]*atomic.Uint64{}
			}
			if len(c.m) >= maxCountKeys {
				k.backend = netip.AddrPort{}
				n = c.m[k]
			}
			if n == nil {
				n = new(atomic.Uint64)
				c.m[k] = n
			}
		}
		c.mu.Unlock()
	}
	n.Add(1)
}

// Each calls f for every count.
func (c *Counters) Each(f func(service string, backend netip.AddrPort, code Termination, n uint64)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, n := range c.m {
		f(k.service, k.backend, k.code, n.Load())
	}
}

// Get is one count (tests).
func (c *Counters) Get(service string, backend netip.AddrPort, code Termination) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n := c.m[countKey{service, backend, code}]; n != nil {
		return n.Load()
	}
	return 0
}

// Emit is the dataplane's one call when a connection ends: it counts r's
// termination and queues r to the access log if one is set. It reports
// whether a writer took r (false: the caller may log it otherwise).
func Emit(r *Record, log bool) bool {
	Terminations.Add(r.Service, r.RealServer, r.Termination)
	if !log {
		return false
	}
	if w := current.Load(); w != nil {
		w.Write(r)
		return true
	}
	return false
}

// Reset forgets every count (tests).
func (c *Counters) Reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
