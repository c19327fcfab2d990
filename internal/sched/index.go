package sched

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// This file holds the indexes that let Pick avoid IPVS's linear scans. Each
// is kept in list order and updated in O(log n) as a Dest reports a change,
// so a pick returns what the scan would have returned, without the scan.

// snapshot reads what the rules need from d, with counts below zero (a
// misuse of Unbind) read as zero so that comparisons stay well defined.
func snapshot(d *Dest) (active, inactive uint64, weight uint64, overloaded bool) {
	a, in, w := d.active.Load(), d.inactive.Load(), d.weight.Load()
	return uint64(max(a, 0)), uint64(max(in, 0)), uint64(max(w, 0)), d.overload.Load()
}

// overhead is IPVS's ip_vs_dest_conn_overhead: active x 256 + inactive.
func overhead(active, inactive uint64) uint64 { return active<<8 + inactive }

// rank orders servers for a least-X scheduler: only ok servers compete, a
// lower class wins, then a lower num/den. The ratio is compared by exact
// 128-bit cross-multiplication, as IPVS compares h1*w2 > h2*w1.
type rank struct {
	num, den uint64
	class    uint8
	ok       bool
}

// better reports whether a strictly beats b. Ties are not better, which is
// what keeps IPVS's "first in list order" rule.
func (a *rank) better(b *rank) bool {
	switch {
	case !a.ok:
		return false
	case !b.ok:
		return true
	case a.class != b.class:
		return a.class < b.class
	}
	return ratioLess(a.num, a.den, b.num, b.den)
}

// ratioLess reports n1/d1 < n2/d2, that is n1*d2 < n2*d1, without overflow.
func ratioLess(n1, d1, n2, d2 uint64) bool {
	h1, l1 := bits.Mul64(n1, d2)
	h2, l2 := bits.Mul64(n2, d1)
	return h1 < h2 || h1 == h2 && l1 < l2
}

// minTree is a tournament tree over list order: each inner node holds the
// better of its children's winners, the left one on a tie, so the root is
// the first best server in list order, exactly what IPVS's scan finds. The
// winner is published atomically so Pick reads it without a lock.
type minTree struct {
	key   func(d *Dest) rank
	dests []*Dest
	ranks []rank
	node  []int32 // heap order, root at 1, leaves from size; -1: none
	size  int
	best  atomic.Pointer[Dest]
}

// build indexes dests afresh. It runs under the watch lock.
func (t *minTree) build(dests []*Dest) {
	size := 1
	for size < len(dests) {
		size <<= 1
	}
	t.dests, t.size = dests, size
	t.ranks = make([]rank, len(dests))
	t.node = make([]int32, 2*size)
	for i := range size {
		t.node[size+i] = -1
	}
	for i, d := range dests {
		t.ranks[i] = t.key(d)
		if t.ranks[i].ok {
			t.node[size+i] = int32(i)
		}
	}
	for p := size - 1; p >= 1; p-- {
		t.node[p] = t.win(t.node[2*p], t.node[2*p+1])
	}
	t.publish()
}

// set re-ranks dests[i] and replays its path to the root. It runs under the
// watch lock.
func (t *minTree) set(i int) {
	t.ranks[i] = t.key(t.dests[i])
	p := t.size + i
	t.node[p] = -1
	if t.ranks[i].ok {
		t.node[p] = int32(i)
	}
	for p >>= 1; p >= 1; p >>= 1 {
		t.node[p] = t.win(t.node[2*p], t.node[2*p+1])
	}
	t.publish()
}

func (t *minTree) win(l, r int32) int32 {
	switch {
	case l < 0:
		return r
	case r < 0:
		return l
	case t.ranks[r].better(&t.ranks[l]):
		return r
	}
	return l
}

func (t *minTree) publish() {
	if w := t.node[1]; w >= 0 {
		t.best.Store(t.dests[w])
	} else {
		t.best.Store(nil)
	}
}

// maxTree keeps the maximum of a value per server over list order and finds
// the first server at or after a position whose value reaches a bound: the
// step rr and wrr take when they scan forward from their last pick.
type maxTree struct {
	val  []int64 // heap order, root at 1, leaves from size
	size int
}

func (t *maxTree) init(n int) {
	size := 1
	for size < n {
		size <<= 1
	}
	t.size = size
	t.val = make([]int64, 2*size)
}

// fix recomputes the inner nodes after the leaves were written directly.
func (t *maxTree) fix() {
	for p := t.size - 1; p >= 1; p-- {
		t.val[p] = max(t.val[2*p], t.val[2*p+1])
	}
}

func (t *maxTree) set(i int, v int64) {
	p := t.size + i
	if t.val[p] == v {
		return
	}
	t.val[p] = v
	for p >>= 1; p >= 1; p >>= 1 {
		t.val[p] = max(t.val[2*p], t.val[2*p+1])
	}
}

func (t *maxTree) max() int64 { return t.val[1] }

// next returns the first index at or after from whose value is at least v
// (v >= 1), or -1.
func (t *maxTree) next(from int, v int64) int {
	if from < 0 {
		from = 0
	}
	if from >= t.size {
		return -1
	}
	i := t.size + from
	for {
		if t.val[i] >= v {
			for i < t.size {
				i <<= 1
				if t.val[i] < v {
					i++
				}
			}
			return i - t.size
		}
		for i&1 == 1 { // climb while i is a right child
			i >>= 1
		}
		if i == 0 {
			return -1
		}
		i++ // the subtree just right of the ones already seen
	}
}

// sumTree is a Fenwick tree of a value per server, for weighted random
// choice: search finds the first server whose running sum reaches r.
type sumTree struct {
	// tree is 1-based and padded to a power of two with values no draw
	// reaches, so that search needs no bounds test and compiles to
	// conditional moves.
	tree  []int64
	val   []int64
	total int64
	high  int // highest power of two <= len(val)
}

const sumPad = math.MaxInt64

func (f *sumTree) init(n int) {
	f.high = 1
	for f.high*2 <= n {
		f.high *= 2
	}
	f.tree = make([]int64, 2*f.high)
	for j := n + 1; j < len(f.tree); j++ {
		f.tree[j] = sumPad
	}
	f.val = make([]int64, n)
	f.total = 0
}

// set gives server i the value v and reports whether that changed anything.
func (f *sumTree) set(i int, v int64) bool {
	d := v - f.val[i]
	if d == 0 {
		return false
	}
	f.val[i] = v
	f.total += d
	for j := i + 1; j <= len(f.val); j += j & -j {
		f.tree[j] += d
	}
	return true
}

// search returns the first index whose prefix sum is at least r, for
// 1 <= r <= total.
func (f *sumTree) search(r int64) int {
	pos, t := 0, f.tree
	for step := f.high; step > 0; step >>= 1 {
		next := pos + step
		if v := t[next&(len(t)-1)]; v < r {
			pos, r = next, r-v
		}
	}
	return pos
}

// search2 is two searches at once, their loads interleaved.
func (f *sumTree) search2(r1, r2 int64) (int, int) {
	p1, p2, t := 0, 0, f.tree
	m := len(t) - 1
	for step := f.high; step > 0; step >>= 1 {
		n1, n2 := p1+step, p2+step
		v1, v2 := t[n1&m], t[n2&m]
		if v1 < r1 {
			p1, r1 = n1, r1-v1
		}
		if v2 < r2 {
			p2, r2 = n2, r2-v2
		}
	}
	return p1, p2
}

// guideTable answers the same question as sumTree.search in O(1) expected
// time, for values that change rarely: the running sums of the servers with
// a value above 0, and for each of as many equal slices of the total the
// first of them whose sum enters the slice. It is rebuilt in O(n).
type guideTable struct {
	idx   []int32 // servers with a value above 0, in list order
	sum   []int64 // running sum of their values
	start []int32 // start[g]: first position whose sum exceeds g x total / len
	total int64
}

func (g *guideTable) build(val []int64) {
	g.idx, g.sum = g.idx[:0], g.sum[:0]
	var t int64
	for i, v := range val {
		if v > 0 {
			t += v
			g.idx = append(g.idx, int32(i))
			g.sum = append(g.sum, t)
		}
	}
	g.total = t
	n := int64(len(g.idx))
	g.start = g.start[:0]
	j := 0
	for b := range n {
		for g.sum[j]*n <= b*t {
			j++
		}
		g.start = append(g.start, int32(j))
	}
}

// search returns the first index whose running sum is at least r, for
// 1 <= r <= total.
func (g *guideTable) search(r int64) int {
	j := g.start[(r-1)*int64(len(g.start))/g.total]
	for g.sum[j] < r {
		j++
	}
	return int(g.idx[j])
}

// minSched is a scheduler whose choice is the first best-ranked server in
// list order: lc, wlc, sed, nq, fo and ovf, which differ only by their rank.
// Pick is one atomic load; the work is done as counts change.
type minSched struct {
	w    watch
	tree minTree
}

func newMinSched(key func(d *Dest) rank) *minSched {
	return &minSched{tree: minTree{key: key}}
}

func (s *minSched) Update(dests []*Dest) { s.w.update(dests, s.tree.build, s.tree.set) }

func (s *minSched) Pick(*Key) *Dest { return s.tree.best.Load() }
