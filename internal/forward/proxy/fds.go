package proxy

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
)

// fdBudget shares the process's file descriptors out. Every proxied TCP
// connection holds two, every UDP flow one, every pipe in use two. Past the
// open-file limit accept(2) fails and the control API, health checks and
// new listeners go down with the dataplane, so the proxy admits new work
// only within a budget that leaves a reserve for them, and sheds new UDP
// flows first: UDP flows may use three quarters of the budget, TCP
// connections (which wait in the listen backlog rather than being refused)
// and pipes all of it.
type fdBudget struct {
	limit   atomic.Int64 // RLIMIT_NOFILE
	reserve atomic.Int64 // left to listeners, the API, health checks
	used    atomic.Int64 // held by connections, flows and pipes
}

// fds is the process's budget: descriptors are a process-wide resource.
var fds fdBudget

var fdsOnce sync.Once

// initFDs sizes the budget to the open-file limit the process has (govs run
// raises it first) and logs the figures, once.
func initFDs(log *slog.Logger) {
	fdsOnce.Do(func() {
		limit := int64(1024)
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur > 0 && lim.Cur < 1<<40 {
			limit = int64(lim.Cur)
		}
		fds.setLimit(limit)
		log.Info("file descriptor budget", "limit", limit, "reserve", fds.reserve.Load(),
			"max_tcp_connections", fds.total()/2, "max_udp_flows", fds.udpCeiling())
	})
}

// setLimit sizes the budget for an open-file limit: a reserve of 64 plus
// 1/16 of the limit (1,314 of 20,000), at most half of it.
func (b *fdBudget) setLimit(limit int64) {
	b.reserve.Store(min(64+limit/16, limit/2))
	b.limit.Store(limit)
}

// total is what connections, flows and pipes may hold together.
func (b *fdBudget) total() int64 { return b.limit.Load() - b.reserve.Load() }

// udpCeiling is the use above which new UDP flows are shed.
func (b *fdBudget) udpCeiling() int64 { return b.total() * 3 / 4 }

// take reserves n descriptors if use stays within ceiling.
func (b *fdBudget) take(n, ceiling int64) bool {
	for {
		u := b.used.Load()
		if u+n > ceiling && b.limit.Load() != 0 { // 0: not sized yet, no limit
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *fdBudget) takeTCP() bool  { return b.take(2, b.total()) }
func (b *fdBudget) takeUDP() bool  { return b.take(1, b.udpCeiling()) }
func (b *fdBudget) takePipe() bool { return b.take(2, b.total()) }

func (b *fdBudget) give(n int64) { b.used.Add(-n) }

// clientCount counts connections or flows per client address, for the
// per-client limits (HAProxy's per-source limits).
type clientCount struct {
	mu sync.Mutex
	m  map[netip.Addr]int
}

// add counts one more for a, unless a already has max (0: no limit).
func (cc *clientCount) add(a netip.Addr, max int) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil {
		cc.m = map[netip.Addr]int{}
	}
	if max > 0 && cc.m[a] >= max {
		return false
	}
	cc.m[a]++
	return true
}

func (cc *clientCount) remove(a netip.Addr) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if n := cc.m[a]; n <= 1 {
		delete(cc.m, a)
	} else {
		cc.m[a] = n - 1
	}
}
