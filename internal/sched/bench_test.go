package sched

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchServers makes n servers with weights 1..4 and some connections, as a
// busy service has.
func benchServers(n int) []*Dest {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	ds := make([]*Dest, n)
	for i := range ds {
		ds[i] = NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 80), 1+rng.IntN(4))
		setConns(ds[i], rng.IntN(20), rng.IntN(20))
	}
	return ds
}

func benchKeys() []Key {
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = *clientKey(i * 7919)
		keys[i].VIP = netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), 80)
	}
	return keys
}

// BenchmarkPick measures Pick for every scheduler at 10, 100 and 1,000
// servers. Hashing schedulers cycle through 1,024 clients; lblc and lblcr
// through 1,024 destinations already in their table.
func BenchmarkPick(b *testing.B) {
	keys := benchKeys()
	for _, name := range Names() {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				s, err := New(name, Options{})
				if err != nil {
					b.Fatal(err)
				}
				s.Update(benchServers(n))
				for i := range keys {
					s.Pick(&keys[i])
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if s.Pick(&keys[i&1023]) == nil {
						b.Fatal("no pick")
					}
					i++
				}
			})
		}
	}
}

// BenchmarkBindUnbind measures what the indexes move off Pick: a connection
// bound and released on a server that a scheduler indexes.
func BenchmarkBindUnbind(b *testing.B) {
	for _, name := range []string{"rr", "wlc", "twos"} {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				s, _ := New(name, Options{})
				ds := benchServers(n)
				s.Update(ds)
				d := ds[n/2]
				b.ReportAllocs()
				for b.Loop() {
					d.Bind()
					d.Unbind(false)
				}
			})
		}
	}
}

// BenchmarkMaglevBuild measures Update of mh at 1,000 servers with the
// default table of 65,537 entries.
func BenchmarkMaglevBuild(b *testing.B) {
	ds := benchServers(1000)
	s, _ := New("mh", Options{})
	b.ReportAllocs()
	for b.Loop() {
		s.Update(ds)
	}
}
