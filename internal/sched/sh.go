package sched

import (
	"math/bits"
	"sync/atomic"
)

// Source hashing (sh) sends every connection from one client address to the
// same server for as long as the set of servers stays the same: affinity
// without a persistence table, for caches and stateful backends.
//
// Rule (ip_vs_sh_schedule): a table of 256 buckets is filled in list order,
// each server taking as many consecutive buckets as its weight (a weight of
// 0 still takes one), the list repeated until the table is full; a server
// past the 256th bucket gets none. The client address (folded as IPVS does
// for IPv6) selects bucket ((port + address) x 2654435761) mod 256, port
// being the client's port with Port (sh-port) and 0 otherwise. If that
// server has weight 0 or is overloaded, the pick fails, unless Fallback
// (sh-fallback): then the buckets are tried from (2 x bucket) mod 256 upwards,
// wrapping, and the first available server wins (the kernel's offset sequence).
//
// Update rebuilds the table, as every add, removal or weight change does in
// IPVS, so a change of the set moves many clients. Use mh for a consistent
// hash. The fallback keeps a bitmap of available buckets, so it costs a few
// word scans where IPVS may probe all 256 buckets.
type sourceHash struct {
	w        watch
	fallback bool
	port     bool
	tab      atomic.Pointer[hashTable]
}

// hashTable is the 256-bucket table of sh and dh, swapped whole by Update.
type hashTable struct {
	bucket [256]*Dest
	owned  [][]uint8        // buckets of each server, by list index
	avail  [4]atomic.Uint64 // bit b: bucket b's server is available
	up     []bool           // availability last seen, by list index
}

func init() {
	Register("sh", func(o Options) (Scheduler, error) {
		return &sourceHash{fallback: o.Fallback, port: o.Port}, nil
	})
}

// fillHashTable assigns the buckets as ip_vs_sh_reassign does when weighted,
// or as ip_vs_dh_reassign (one bucket per server in turn) when not.
func fillHashTable(dests []*Dest, weighted bool) *hashTable {
	t := &hashTable{owned: make([][]uint8, len(dests)), up: make([]bool, len(dests))}
	if len(dests) == 0 {
		return t
	}
	i, count := 0, 0
	for b := range t.bucket {
		t.bucket[b] = dests[i]
		t.owned[i] = append(t.owned[i], uint8(b))
		count++
		if !weighted || count >= dests[i].Weight() {
			i, count = (i+1)%len(dests), 0
		}
	}
	for i, d := range dests {
		t.mark(i, d.Available())
	}
	return t
}

func (t *hashTable) mark(i int, up bool) {
	t.up[i] = up
	for _, b := range t.owned[i] {
		w := &t.avail[b>>6]
		if up {
			w.Or(1 << (b & 63))
		} else {
			w.And(^(1 << (b & 63)))
		}
	}
}

// firstAvailable tries the buckets from start upwards, wrapping, and returns
// the first available server, checked live in case the bitmap lags.
func (t *hashTable) firstAvailable(start uint8) *Dest {
	for n := 0; n < 256; {
		b := uint32(start) + uint32(n)
		word := t.avail[(b>>6)&3].Load() >> (b & 63)
		if word == 0 {
			n += 64 - int(b&63)
			continue
		}
		skip := bits.TrailingZeros64(word)
		n += skip
		if n >= 256 {
			break
		}
		if d := t.bucket[uint8(start)+uint8(n)]; d != nil && d.Available() {
			return d
		}
		n++
	}
	return nil
}

func (s *sourceHash) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		s.tab.Store(fillHashTable(dests, true))
	}, func(i int) {
		// Counts change far more often than availability: only a change
		// of the latter touches the bitmap.
		t := s.tab.Load()
		if up := s.w.cur.dests[i].Available(); up != t.up[i] {
			t.mark(i, up)
		}
	})
}

func (s *sourceHash) Pick(k *Key) *Dest {
	t := s.tab.Load()
	if t == nil {
		return nil
	}
	v := fold(k.Client.Addr())
	if s.port {
		v += uint32(k.Client.Port())
	}
	h := uint8(v * goldenHash)
	d := t.bucket[h]
	if d == nil || d.Available() {
		return d
	}
	if !s.fallback {
		return nil
	}
	return t.firstAvailable(h * 2)
}
