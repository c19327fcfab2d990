package sched

import (
	"fmt"
	"sync/atomic"
)

// Maglev hashing (mh) sends every connection from one client address to the
// same server, like sh, but a change of the set moves only the clients of
// the servers that changed: consistent hashing for stateful backends and for
// several directors that must agree without talking.
//
// Rule (ip_vs_mh_schedule): each server gets a permutation of the table
// positions, offset = hsiphash(port + address, key1) mod M and
// skip = hsiphash(port + address, key2) mod (M - 1) + 1, with the kernel's
// fixed keys; the table is filled in rounds over the servers in address
// order (IPVS goes in list order: govs sorts, so that directors given the
// same set in different orders build the same table, see "Several
// directors" below), each server taking its next free preferred position
// "turns" times a round, where
// turns = (last weight / gcd of last weights) >> rshift, at least 1 for a
// non-zero last weight, and rshift trims the largest turns to about
// log2(M)/2 bits. The last weight is the latest non-zero weight, so a server
// quiesced to weight 0 keeps its positions and its clients come back to it.
// A client is looked up at hsiphash(port + address, key1) mod M, port being
// the client's port with Port (mh-port) and 0 otherwise; if that server has
// weight 0 or is overloaded the pick fails, unless Fallback (mh-fallback):
// then offsets o = 0, 1, ... are tried at hsiphash((o + first) mod M + port +
// address, key1) mod M until an available server is found.
//
// Options: Fallback, Port, TableSize (M, a prime; default 65537). IPVS's
// default is 4093, a build-time choice; with TableSize 4093 the table is the
// kernel's for the same servers. M should be well above the number of
// servers (Maglev suggests 100 times) for an even spread.
//
// The table is built by MaglevTable (maglev.go), which the kernel dataplane
// uses too to program the same algorithm into an nftables map.
//
// Several directors: the table is a pure function of the configuration
// (the real servers' addresses, ports and last weights, the table size,
// the fixed keys), never of process state, map iteration or list order, and
// the lookup hashes only the packet's client address (and port). So
// directors behind an ECMP router with the same real servers pick the same
// one for every flow, and a flow the router moves from one director to
// another keeps its real server (docs/bgp.md, "Several directors").
type maglev struct {
	w        watch
	fallback bool
	port     bool
	size     uint32
	tab      atomic.Pointer[mhTable]
}

type mhTable struct {
	lookup []*Dest
	up     atomic.Int64 // servers available, for the fallback to give up at once
	avail  []bool       // guarded by the watch lock
}

// DefaultMaglevTableSize is mh's table size when Options.TableSize is 0.
const DefaultMaglevTableSize = 65537

// The kernel's fixed hsiphash keys for mh (generate_hash_secret).
const (
	mhKey1 = 2654435761
	mhKey2 = 2654446892
)

// maxMaglevTableSize bounds the table at 16 M entries (128 MiB of pointers).
const maxMaglevTableSize = 1 << 24

func init() {
	Register("mh", func(o Options) (Scheduler, error) {
		m := o.TableSize
		if m == 0 {
			m = DefaultMaglevTableSize
		}
		if m < 2 || m > maxMaglevTableSize || !isPrime(m) {
			return nil, fmt.Errorf("mh: table size %d must be a prime between 2 and %d", o.TableSize, maxMaglevTableSize)
		}
		return &maglev{fallback: o.Fallback, port: o.Port, size: uint32(m)}, nil
	})
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for p := 2; p*p <= n; p++ {
		if n%p == 0 {
			return false
		}
	}
	return true
}

func (s *maglev) Update(dests []*Dest) {
	s.w.update(dests, func(dests []*Dest) {
		t := &mhTable{lookup: mhPopulate(dests, s.size), avail: make([]bool, len(dests))}
		var up int64
		for i, d := range dests {
			if t.avail[i] = d.Available(); t.avail[i] {
				up++
			}
		}
		t.up.Store(up)
		s.tab.Store(t)
	}, func(i int) {
		t := s.tab.Load()
		if up := s.w.cur.dests[i].Available(); up != t.avail[i] {
			t.avail[i] = up
			if up {
				t.up.Add(1)
			} else {
				t.up.Add(-1)
			}
		}
	})
}

// mhPopulate builds the lookup table as ip_vs_mh_permutate and
// ip_vs_mh_populate do, with MaglevTable's builder: each server takes turns
// by its last weight.
func mhPopulate(dests []*Dest, m uint32) []*Dest {
	servers := make([]MaglevServer, len(dests))
	for i, d := range dests {
		servers[i] = MaglevServer{Addr: d.Addr, Weight: d.LastWeight()}
	}
	table := make([]*Dest, m)
	maglevPopulate(servers, m, func(pos uint32, i int) { table[pos] = dests[i] })
	return table
}

func (s *maglev) Pick(k *Key) *Dest {
	t := s.tab.Load()
	if t == nil {
		return nil
	}
	v := fold(k.Client.Addr())
	if s.port {
		v += uint32(k.Client.Port())
	}
	first := hsiphash32(v, mhKey1, mhKey1) % s.size
	d := t.lookup[first]
	if d == nil || d.Available() {
		return d
	}
	if !s.fallback || t.up.Load() == 0 {
		return nil
	}
	for o := range s.size {
		r := (o + first) % s.size
		d := t.lookup[hsiphash32(r+v, mhKey1, mhKey1)%s.size]
		if d == nil {
			break
		}
		if d.Available() {
			return d
		}
	}
	return nil
}
