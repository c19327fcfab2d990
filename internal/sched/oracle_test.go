package sched

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The kernel's linear scans, kept as the oracle the indexes must agree with.
// They are written after the C loops, not after the indexes, on purpose.

func avail(d *Dest) bool { return !d.Overloaded() && d.Weight() > 0 }

func ovh(d *Dest) int64 { return int64(d.ActiveConns())*256 + int64(d.InactiveConns()) }

func scanLC(ds []*Dest) *Dest {
	var least *Dest
	var loh int64
	for _, d := range ds {
		if d.Overloaded() || d.Weight() == 0 {
			continue
		}
		if doh := ovh(d); least == nil || doh < loh {
			least, loh = d, doh
		}
	}
	return least
}

// scanWeighted is the two-stage loop of wlc and sed.
func scanWeighted(ds []*Dest, cost func(*Dest) int64) *Dest {
	i := 0
	var least *Dest
	var loh int64
	for ; i < len(ds); i++ {
		if d := ds[i]; !d.Overloaded() && d.Weight() > 0 {
			least, loh = d, cost(d)
			break
		}
	}
	if least == nil {
		return nil
	}
	for i++; i < len(ds); i++ {
		d := ds[i]
		if d.Overloaded() {
			continue
		}
		if doh := cost(d); loh*int64(d.Weight()) > doh*int64(least.Weight()) {
			least, loh = d, doh
		}
	}
	return least
}

func scanWLC(ds []*Dest) *Dest { return scanWeighted(ds, ovh) }

func scanSED(ds []*Dest) *Dest {
	return scanWeighted(ds, func(d *Dest) int64 { return int64(d.ActiveConns()) + 1 })
}

func scanNQ(ds []*Dest) *Dest {
	var least *Dest
	var loh int64
	for _, d := range ds {
		if d.Overloaded() || d.Weight() == 0 {
			continue
		}
		doh := int64(d.ActiveConns()) + 1
		if d.ActiveConns() == 0 {
			return d
		}
		if least == nil || loh*int64(d.Weight()) > doh*int64(least.Weight()) {
			least, loh = d, doh
		}
	}
	return least
}

func scanFO(ds []*Dest) *Dest {
	var h *Dest
	hw := 0
	for _, d := range ds {
		if !d.Overloaded() && d.Weight() > hw {
			h, hw = d, d.Weight()
		}
	}
	return h
}

func scanOVF(ds []*Dest) *Dest {
	var h *Dest
	hw := 0
	for _, d := range ds {
		w := d.Weight()
		if d.Overloaded() || d.ActiveConns() > w || w == 0 {
			continue
		}
		if h == nil || w > hw {
			h, hw = d, w
		}
	}
	return h
}

// kernelRR is ip_vs_rr_schedule over a slice, -1 standing for the list head.
type kernelRR struct{ cl int }

func (k *kernelRR) pick(ds []*Dest) *Dest {
	last, pass := k.cl, 0
	dest := last
	for {
		for dest++; dest < len(ds); dest++ {
			if avail(ds[dest]) {
				k.cl = dest
				return ds[dest]
			}
			if dest == last {
				return nil
			}
		}
		pass++
		dest = -1
		if pass >= 2 || last == -1 {
			return nil
		}
	}
}

// kernelWRR is ip_vs_wrr_schedule and ip_vs_wrr_dest_changed over a slice.
type kernelWRR struct{ cl, cw, mw, di int }

func (k *kernelWRR) changed(ds []*Dest) {
	g, mw := 0, 0
	for _, d := range ds {
		if w := d.Weight(); w > 0 {
			if g > 0 {
				g = int(gcd(int64(w), int64(g)))
			} else {
				g = w
			}
		}
		mw = max(mw, d.Weight())
	}
	if g == 0 {
		g = 1
	}
	k.cl, k.di, k.mw = -1, g, mw-(g-1)
	if k.cw > k.mw || k.cw == 0 {
		k.cw = k.mw
	} else if k.di > 1 {
		k.cw = (k.cw/k.di)*k.di + 1
	}
}

func (k *kernelWRR) pick(ds []*Dest) *Dest {
	dest := k.cl
	if k.mw == 0 {
		return nil
	}
	last, stop := dest, -2
	lastPass, restarted := false, false
	for {
		for dest++; dest < len(ds); dest++ {
			d := ds[dest]
			if !d.Overloaded() && d.Weight() >= k.cw {
				k.cl = dest
				return d
			}
			if dest == stop {
				k.cl = dest
				return nil
			}
		}
		dest = -1
		k.cw -= k.di
		if k.cw <= 0 {
			k.cw = k.mw
			if lastPass || last == -1 {
				k.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = k.cw <= k.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}

// world drives a pool of servers through random operations.
type world struct {
	rng  *rand.Rand
	pool []*Dest
	list []*Dest
}

func newWorld(seed uint64, n int) *world {
	w := &world{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b9))}
	for i := range n {
		d := NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80), w.rng.IntN(6))
		w.pool = append(w.pool, d)
	}
	w.list = append([]*Dest(nil), w.pool...)
	return w
}

// mutate changes one server's counts, weight or thresholds.
func (w *world) mutate() {
	d := w.list[w.rng.IntN(len(w.list))]
	if len(w.list) == 0 {
		return
	}
	switch r := w.rng.IntN(100); {
	case r < 35:
		d.Bind()
	case r < 55:
		if d.InactiveConns() > 0 {
			d.Activate()
		}
	case r < 62:
		if d.ActiveConns() > 0 {
			d.Deactivate()
		}
	case r < 75:
		if d.ActiveConns() > 0 {
			d.Unbind(true)
		}
	case r < 88:
		if d.InactiveConns() > 0 {
			d.Unbind(false)
		}
	case r < 95:
		d.SetWeight(w.rng.IntN(6))
	default:
		d.SetThresholds(w.rng.IntN(8), w.rng.IntN(4), 0)
	}
}

// reshape removes some servers and appends others, keeping relative order
// as IPVS's list does.
func (w *world) reshape() []*Dest {
	var next []*Dest
	in := map[*Dest]bool{}
	for _, d := range w.list {
		if w.rng.IntN(5) > 0 {
			next = append(next, d)
			in[d] = true
		}
	}
	for _, d := range w.pool {
		if !in[d] && w.rng.IntN(3) == 0 {
			next = append(next, d)
		}
	}
	if len(next) == 0 {
		next = append(next, w.pool[0])
	}
	w.list = next
	return append([]*Dest(nil), next...)
}

func TestIndexesMatchKernelScans(t *testing.T) {
	oracles := map[string]func([]*Dest) *Dest{
		"lc": scanLC, "wlc": scanWLC, "sed": scanSED, "nq": scanNQ, "fo": scanFO, "ovf": scanOVF,
	}
	for name, scan := range oracles {
		for _, n := range []int{1, 2, 3, 7, 64, 200} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				w := newWorld(uint64(n)*31+uint64(len(name)), n)
				s, err := New(name, Options{})
				if err != nil {
					t.Fatal(err)
				}
				s.Update(w.reshape())
				for step := range 20000 {
					if step%500 == 499 {
						s.Update(w.reshape())
					} else {
						w.mutate()
					}
					if got, want := s.Pick(nil), scan(w.list); got != want {
						t.Fatalf("step %d: Pick = %v, kernel scan = %v", step, addrOf(got), addrOf(want))
					}
				}
			})
		}
	}
}

func TestRoundRobinMatchesKernel(t *testing.T) {
	for _, n := range []int{1, 2, 5, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w := newWorld(uint64(n)+7, n)
			s, _ := New("rr", Options{})
			k := &kernelRR{cl: -1}
			s.Update(w.reshape())
			for step := range 20000 {
				if step%300 == 299 {
					old := w.list
					list := w.reshape()
					k.cl = kernelDelDest(old, k.cl, w.list)
					s.Update(list)
				} else {
					w.mutate()
				}
				if got, want := s.Pick(nil), k.pick(w.list); got != want {
					t.Fatalf("step %d: Pick = %v, kernel = %v", step, addrOf(got), addrOf(want))
				}
			}
		})
	}
}

// kernelDelDest replays ip_vs_rr_del_dest for each removed server, one at a
// time, and finds the position in the new list.
func kernelDelDest(old []*Dest, cl int, next []*Dest) int {
	cur := append([]*Dest(nil), old...)
	keep := map[*Dest]bool{}
	for _, d := range next {
		keep[d] = true
	}
	for i := 0; i < len(cur); {
		if keep[cur[i]] {
			i++
			continue
		}
		if cl == i {
			cl = i - 1 // the entry before, or the head
		} else if cl > i {
			cl--
		}
		cur = append(cur[:i], cur[i+1:]...)
	}
	if cl < 0 {
		return -1
	}
	for i, d := range next {
		if d == cur[cl] {
			return i
		}
	}
	return -1
}

func TestWeightedRoundRobinMatchesKernel(t *testing.T) {
	for _, n := range []int{1, 2, 3, 9, 60} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w := newWorld(uint64(n)+99, n)
			s, _ := New("wrr", Options{})
			k := &kernelWRR{cl: -1}
			list := w.reshape()
			s.Update(list)
			k.changed(w.list)
			for step := range 30000 {
				switch {
				case step%400 == 399:
					list := w.reshape()
					k.changed(w.list)
					s.Update(list)
				case step%3 == 0:
					w.mutate()
				}
				if got, want := s.Pick(nil), k.pick(w.list); got != want {
					t.Fatalf("step %d: Pick = %v, kernel = %v", step, addrOf(got), addrOf(want))
				}
			}
		})
	}
}

func addrOf(d *Dest) string {
	if d == nil {
		return "<nil>"
	}
	return d.Addr.String()
}

func TestWeightedDrawIndexes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		n := 1 + rng.IntN(70)
		val := make([]int64, n)
		var f sumTree
		f.init(n)
		for i := range val {
			if rng.IntN(3) > 0 {
				val[i] = int64(rng.IntN(9))
			}
			f.set(i, val[i])
		}
		var g guideTable
		g.build(val)
		if f.total != g.total || f.total == 0 {
			continue
		}
		for r := int64(1); r <= f.total; r++ {
			// The oracle: the kernel's subtraction loop.
			want, left := -1, r
			for i, v := range val {
				if v <= 0 {
					continue
				}
				if left -= v; left <= 0 {
					want = i
					break
				}
			}
			a, b := f.search2(r, r)
			if f.search(r) != want || a != want || b != want || g.search(r) != want {
				t.Fatalf("round %d, r %d: fenwick %d, %d/%d, guide %d, want %d", round, r, f.search(r), a, b, g.search(r), want)
			}
		}
	}
}
