package sched

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Locality-based least connection (lblc) sends the connections for one
// destination address to the same server while that server copes, so a
// cache cluster keeps each origin's objects on one cache; it moves the
// destination to the least loaded server when its server is overloaded or
// gone.
//
// Rule (ip_vs_lblc_schedule): the destination address (Key.VIP, the virtual
// or original destination) is looked up in a table of destination -> server.
// An entry is used, and its last use set to now, if its server is still in
// the list, has weight > 0 and is not "overloaded" in lblc's sense: more
// active connections than its weight while some server of the list has
// active x 2 < weight. The overload flag of the thresholds is not consulted
// for an entry's server, as in IPVS. Otherwise the choice is wlc's (weight
// > 0, not overloaded, least overhead / weight, first in list order) and the
// entry is created or pointed at it.
//
// Expiry, as the kernel's periodic check every minute, run lazily by Pick or
// at once by Expire: every 30th check drops the entries unused for
// Options.Expiration (24 h by default); the other checks, when the table
// holds more than 16384 entries, drop entries unused for 6 minutes until
// 4/3 of the excess (at most 8192) is gone. Unlike the kernel, an entry
// unused for the expiration is never used again even before a check removes
// it, so the rule does not depend on when checks run.
//
// Options: Clock, Expiration. Pick allocates only when it creates an entry.
type localityLeastConn struct {
	locality
	table map[netip.Addr]*lblcEntry // guarded by mu
}

type lblcEntry struct {
	dest    *Dest
	lastuse int64
	seen    uint64 // generation in which dest was last found in the list
}

func init() {
	Register("lblc", func(o Options) (Scheduler, error) {
		s := &localityLeastConn{table: make(map[netip.Addr]*lblcEntry)}
		s.locality.init(o)
		return s, nil
	})
}

// The kernel's constants for the lblc and lblcr tables.
const (
	checkExpireInterval = int64(60 * time.Second)
	entryTimeout        = int64(6 * 60 * time.Second)
	defaultExpiration   = 24 * time.Hour
	fullExpirationEvery = 30
	localityMaxSize     = 1024 * 16 // IP_VS_LBLC_TAB_SIZE * 16
)

// locality is what lblc and lblcr share: the wlc index of the list, the
// count behind their overload rule, the clock and the expiry schedule.
type locality struct {
	w       watch
	tree    minTree      // wlc over the list
	under   atomic.Int64 // servers with active x 2 < weight
	underOf []bool       // guarded by w.mu
	member  atomic.Pointer[map[*Dest]struct{}]
	gen     atomic.Uint64 // bumped by each Update, so entries can cache membership

	clock      func() time.Time // nil: real time
	epoch      time.Time
	expiration int64

	mu        sync.Mutex // guards the table of the embedding scheduler and:
	nextCheck int64
	counter   int
}

func (l *locality) init(o Options) {
	l.tree.key = wlcRank
	l.clock = o.Clock // nil: the monotonic clock, read more cheaply than time.Now
	l.epoch = time.Now()
	if o.Clock != nil {
		l.epoch = o.Clock()
	}
	l.expiration = int64(o.Expiration)
	if l.expiration <= 0 {
		l.expiration = int64(defaultExpiration)
	}
	l.nextCheck = checkExpireInterval
	l.counter = 1
}

// now is the clock's reading as nanoseconds since the scheduler was made:
// monotonic with a real clock, and simple to drive with a fake one.
func (l *locality) now() int64 {
	if l.clock == nil {
		return int64(time.Since(l.epoch))
	}
	return int64(l.clock().Sub(l.epoch))
}

func underloaded(d *Dest) bool {
	a, _, w, _ := snapshot(d)
	return a*2 < w
}

func (l *locality) Update(dests []*Dest) {
	l.w.update(dests, func(dests []*Dest) {
		l.tree.build(dests)
		l.underOf = make([]bool, len(dests))
		var n int64
		m := make(map[*Dest]struct{}, len(dests))
		for i, d := range dests {
			if l.underOf[i] = underloaded(d); l.underOf[i] {
				n++
			}
			m[d] = struct{}{}
		}
		l.under.Store(n)
		l.member.Store(&m)
		l.gen.Add(1)
	}, func(i int) {
		l.tree.set(i)
		if u := underloaded(l.tree.dests[i]); u != l.underOf[i] {
			l.underOf[i] = u
			if u {
				l.under.Add(1)
			} else {
				l.under.Add(-1)
			}
		}
	})
}

// inServiceCached is inService for a table entry that remembers the
// generation in which its server was last found in the list.
func (l *locality) inServiceCached(d *Dest, seen *uint64) bool {
	g := l.gen.Load()
	if *seen == g {
		return true
	}
	if !l.inService(d) {
		return false
	}
	*seen = g
	return true
}

// inService reports whether d is in the list: IPVS's IP_VS_DEST_F_AVAILABLE.
func (l *locality) inService(d *Dest) bool {
	m := l.member.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[d]
	return ok
}

// overloaded is lblc's and lblcr's is_overloaded: more active connections
// than weight while another server is below half its weight.
func (l *locality) overloaded(d *Dest) bool {
	a, _, w, _ := snapshot(d)
	return a > w && l.under.Load() > 0
}

// due reports whether the periodic check is due at now, and schedules the
// next one. It runs under mu.
func (l *locality) due(now int64) bool {
	if now < l.nextCheck {
		return false
	}
	l.nextCheck = now + checkExpireInterval
	return true
}

// sweep runs the kernel's periodic check over a table of entries with their
// last use: every 30th check drops the entries past the expiration; the
// others, when the table is over its size, drop entries idle for 6 minutes
// until the goal is met. It runs under mu and returns how many it removed.
func sweep[E any](l *locality, table map[netip.Addr]E, lastuse func(E) int64, now int64) int {
	removed := 0
	if l.counter%fullExpirationEvery == 0 {
		for k, e := range table {
			if now >= lastuse(e)+l.expiration {
				delete(table, k)
				removed++
			}
		}
		l.counter = 1
		return removed
	}
	if len(table) <= localityMaxSize {
		l.counter++
		return 0
	}
	goal := min((len(table)-localityMaxSize)*4/3, localityMaxSize/2)
	for k, e := range table {
		if now >= lastuse(e)+entryTimeout {
			delete(table, k)
			removed++
			if goal--; goal <= 0 {
				break
			}
		}
	}
	return removed
}

func lblcLastUse(e *lblcEntry) int64 { return e.lastuse }

// Expire runs the periodic check at now.
func (s *localityLeastConn) Expire(now time.Time) int {
	t := int64(now.Sub(s.epoch))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextCheck = t + checkExpireInterval
	return sweep(&s.locality, s.table, lblcLastUse, t)
}

func (s *localityLeastConn) Pick(k *Key) *Dest {
	addr := k.VIP.Addr().Unmap()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due(now) {
		sweep(&s.locality, s.table, lblcLastUse, now)
	}
	en := s.table[addr]
	if en != nil {
		if now >= en.lastuse+s.expiration {
			en.dest = nil // expired: schedule afresh, reusing the entry
		}
		en.lastuse = now
		if d := en.dest; d != nil && s.inServiceCached(d, &en.seen) && d.Weight() > 0 && !s.overloaded(d) {
			return d
		}
	}
	d := s.tree.best.Load()
	if d == nil {
		return nil
	}
	if en != nil {
		en.dest, en.seen = d, 0
	} else {
		s.table[addr] = &lblcEntry{dest: d, lastuse: now}
	}
	return d
}
