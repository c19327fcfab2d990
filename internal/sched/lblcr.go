package sched

import (
	"net/netip"
	"time"
)

// Locality-based least connection with replication (lblcr) is lblc for a
// destination too popular for one server: each destination address maps to
// a set of servers that grows when its members are overloaded and shrinks
// when it has been stable for a while.
//
// Rule (ip_vs_lblcr_schedule): the destination address (Key.VIP) is looked
// up in a table of destination -> server set, the most recently added server
// first. If an entry exists its last use is set to now and:
//  1. d is the set's weighted least-connection server: the first, in set
//     order, that is in the list, has weight > 0 and is not overloaded, then
//     any later one in the list and not overloaded with a strictly smaller
//     overhead / weight;
//  2. if the set has more than one server and was last changed more than
//     Options.Expiration ago, its weighted most-connection server (first with
//     weight > 0, then strictly larger overhead / weight among weight > 0) is
//     removed and the set counts as changed now;
//  3. if d exists and is not overloaded in lblc's sense (more active
//     connections than weight while some server of the list has active x 2
//     < weight), d is the choice;
//  4. otherwise the choice is wlc's over the list, added to the set (and the
//     set changed now) if not already in it.
//
// Without an entry the choice is wlc's, stored as a set of one. Expiry of
// unused entries follows lblc's rules. Note that step 1 runs before step 2,
// so a pick can return the server step 2 has just removed, as in IPVS.
//
// Options: Clock, Expiration. Pick allocates only when a set changes.
type localityLeastConnRepl struct {
	locality
	table map[netip.Addr]*lblcrEntry // guarded by mu
}

type lblcrEntry struct {
	set     []*Dest // most recently added first
	lastmod int64
	lastuse int64
	in      []bool // in[i]: set[i] is in the list, as of generation seen
	seen    uint64
}

func init() {
	Register("lblcr", func(o Options) (Scheduler, error) {
		s := &localityLeastConnRepl{table: make(map[netip.Addr]*lblcrEntry)}
		s.locality.init(o)
		return s, nil
	})
}

func lblcrLastUse(e *lblcrEntry) int64 { return e.lastuse }

// Expire runs the periodic check at now.
func (s *localityLeastConnRepl) Expire(now time.Time) int {
	t := int64(now.Sub(s.epoch))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextCheck = t + checkExpireInterval
	return sweep(&s.locality, s.table, lblcrLastUse, t)
}

// members refreshes which servers of en's set are in the list, when the
// list or the set changed since it last looked.
func (s *localityLeastConnRepl) members(en *lblcrEntry) []bool {
	if g := s.gen.Load(); en.seen != g || len(en.in) != len(en.set) {
		en.in = en.in[:0]
		for _, d := range en.set {
			en.in = append(en.in, s.inService(d))
		}
		en.seen = g
	}
	return en.in
}

// setMin is ip_vs_dest_set_min.
func (s *localityLeastConnRepl) setMin(en *lblcrEntry) *Dest {
	set, member := en.set, s.members(en)
	var least *Dest
	var loh, lw uint64
	i := 0
	for ; i < len(set); i++ {
		a, in, w, over := snapshot(set[i])
		if !over && w > 0 && member[i] {
			least, loh, lw = set[i], overhead(a, in), w
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(set); i++ {
		a, in, w, over := snapshot(set[i])
		if over {
			continue
		}
		if doh := overhead(a, in); ratioLess(doh, w, loh, lw) && member[i] {
			least, loh, lw = set[i], doh, w
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max.
func setMax(set []*Dest) int {
	most := -1
	var moh, mw uint64
	for i, d := range set {
		a, in, w, _ := snapshot(d)
		if w == 0 {
			continue
		}
		if doh := overhead(a, in); most < 0 || ratioLess(moh, mw, doh, w) {
			most, moh, mw = i, doh, w
		}
	}
	return most
}

func (s *localityLeastConnRepl) Pick(k *Key) *Dest {
	addr := k.VIP.Addr().Unmap()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due(now) {
		sweep(&s.locality, s.table, lblcrLastUse, now)
	}
	en := s.table[addr]
	if en != nil && now >= en.lastuse+s.expiration {
		delete(s.table, addr) // expired: schedule afresh
		en = nil
	}
	if en == nil {
		d := s.tree.best.Load()
		if d == nil {
			return nil
		}
		s.table[addr] = &lblcrEntry{set: []*Dest{d}, lastmod: now, lastuse: now}
		return d
	}
	en.lastuse = now
	d := s.setMin(en)
	if len(en.set) > 1 && now > en.lastmod+s.expiration {
		if m := setMax(en.set); m >= 0 {
			en.set = append(en.set[:m:m], en.set[m+1:]...)
			en.lastmod, en.seen = now, 0
		}
	}
	if d != nil && !s.overloaded(d) {
		return d
	}
	d = s.tree.best.Load()
	if d == nil {
		return nil
	}
	for _, x := range en.set {
		if x == d {
			return d
		}
	}
	en.set = append([]*Dest{d}, en.set...)
	en.lastmod, en.seen = now, 0
	return d
}
