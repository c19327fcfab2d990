package sched

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// MaglevServer is one server of a Maglev lookup table.
type MaglevServer struct {
	// Addr places the server: its permutation of the table positions is
	// hashed from the port plus the folded address, as IPVS does.
	Addr netip.AddrPort
	// Weight sets how many positions the server takes per round (IPVS's
	// turns). mh passes IPVS's last_weight, the latest non-zero weight
	// (Dest.LastWeight), so a server quiesced to weight 0 keeps its
	// positions; 0 (or less) takes none.
	Weight int
}

// MaglevTable builds mh's lookup table of size positions as ip_vs_mh_permutate
// and ip_vs_mh_populate do (see mh.go for the rule): entry p is the index in
// servers of the server at position p, or -1 for every position when no
// server has a weight. It is the one implementation of the table: the mh
// scheduler builds its own with it, and the kernel dataplane programs the
// same table into an nftables map. size must be a prime between 2 and
// 16,777,216 (it panics otherwise: a permutation needs a prime size to reach
// every position). The table depends on the set of servers, not on their
// order in servers (the rounds go in address order), so every director
// given the same real servers builds the same table; with size 4093 it is
// IPVS's for the same servers listed in address order.
func MaglevTable(servers []MaglevServer, size uint32) []int {
	if size < 2 || size > maxMaglevTableSize || !isPrime(int(size)) {
		panic(fmt.Sprintf("sched.MaglevTable: size %d is not a prime between 2 and %d", size, maxMaglevTableSize))
	}
	table := make([]int, size)
	for i := range table {
		table[i] = -1
	}
	maglevPopulate(servers, size, func(pos uint32, i int) { table[pos] = i })
	return table
}

// LastWeight is IPVS's last_weight: the latest non-zero weight d had, which
// mh keeps a quiesced server's table positions with.
func (d *Dest) LastWeight() int { return int(d.lastWeight.Load()) }

// MaglevServers returns the servers an mh scheduler (one New("mh", ...)
// returned) holds, as given to its last Update, in that order; ok is false
// when s is not an mh scheduler. A dataplane that builds the table itself
// (the kernel's) reads the same set the scheduler builds from, so the set in
// service, and a sorry server standing in for it, stay the director's choice.
// The slice must not be modified.
func MaglevServers(s Scheduler) (dests []*Dest, ok bool) {
	m, ok := s.(*maglev)
	if !ok {
		return nil, false
	}
	m.w.mu.Lock()
	defer m.w.mu.Unlock()
	if m.w.cur == nil {
		return nil, true
	}
	return m.w.cur.dests, true
}

// maglevPopulate fills a table of m positions (a prime) with servers, calling
// set(p, i) when position p goes to servers[i]; every position is set once,
// unless no server has a weight, when none is.
func maglevPopulate(servers []MaglevServer, m uint32, set func(pos uint32, i int)) {
	var g, mw int64
	for _, s := range servers {
		if lw := int64(s.Weight); lw > 0 {
			if g == 0 {
				g = lw
			} else {
				g = gcd(lw, g)
			}
			mw = max(mw, lw)
		}
	}
	if g < 1 {
		return // no server has ever had a weight: nothing to place
	}
	// IPVS trims the turns so that the largest takes about half of the
	// table size's bits (ip_vs_mh_shift_weight).
	rshift := max(bits.Len64(uint64(mw/g))-bits.Len32(m)/2, 0)
	type setup struct {
		perm, skip uint32
		turns      int64
	}
	// The rounds go over the servers in address order, not the order given:
	// where two servers prefer the same free position, the one placed first
	// in a round takes it, so the list's order shapes the table. Directors
	// that got the same servers in another order (a discovery source, API
	// additions, an edited file) would otherwise build different tables and
	// send a flow the router moves between them to another real server.
	// The table is then a function of the set alone: addresses, ports,
	// weights and the fixed keys, never of process state or list order.
	order := make([]int, len(servers))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return servers[a].Addr.Compare(servers[b].Addr) })
	ds := make([]setup, len(servers))
	for k, i := range order {
		s := servers[i]
		v := uint32(s.Addr.Port()) + fold(s.Addr.Addr())
		lw := int64(max(s.Weight, 0))
		turns := (lw / g) >> rshift
		if turns == 0 && lw != 0 {
			turns = 1
		}
		ds[k] = setup{
			perm:  hsiphash32(v, mhKey1, mhKey1) % m,
			skip:  hsiphash32(v, mhKey2, mhKey2)%(m-1) + 1,
			turns: turns,
		}
	}
	filled := make([]uint64, (m+63)/64)
	var n uint32
	for {
		for k, count := 0, int64(0); k < len(servers); {
			s := &ds[k]
			if s.turns < 1 {
				k++
				continue
			}
			c := s.perm
			for filled[c>>6]&(1<<(c&63)) != 0 {
				if s.perm += s.skip; s.perm >= m {
					s.perm -= m
				}
				c = s.perm
			}
			filled[c>>6] |= 1 << (c & 63)
			set(c, order[k])
			if n++; n == m {
				return
			}
			if count++; count >= s.turns {
				k, count = k+1, 0
			}
		}
	}
}
