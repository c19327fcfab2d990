package sched

import (
	"fmt"
	"net/netip"
	"testing"
)

func maglevServers(ds []*Dest) []MaglevServer {
	out := make([]MaglevServer, len(ds))
	for i, d := range ds {
		out[i] = MaglevServer{Addr: d.Addr, Weight: d.LastWeight()}
	}
	return out
}

// The exported table is the scheduler's: the mh scheduler looks clients up
// in the same positions.
func TestMaglevTableIsTheSchedulers(t *testing.T) {
	ds := dests(1, 2, 3, 4)
	ds[1].SetWeight(0) // quiesced: keeps its positions by its last weight
	s := must(t, "mh", Options{TableSize: 4093})
	s.Update(ds)
	table := MaglevTable(maglevServers(ds), 4093)
	mine := s.(*maglev).tab.Load().lookup
	count := make([]int, len(ds))
	for p, i := range table {
		if i < 0 || mine[p] != ds[i] {
			t.Fatalf("position %d: table has %d, the scheduler %v", p, i, mine[p])
		}
		count[i]++
	}
	// Turns follow the last weights 1:2:3:4, to within a position a round.
	for i, c := range count {
		want := 4093 * (i + 1) / 10
		if c < want-5 || c > want+5 {
			t.Errorf("server %d has %d positions, want about %d", i, c, want)
		}
	}
	got, ok := MaglevServers(s)
	if !ok || len(got) != len(ds) || got[0] != ds[0] {
		t.Fatalf("MaglevServers = %v, %v", got, ok)
	}
	if _, ok := MaglevServers(must(t, "rr", Options{})); ok {
		t.Fatal("rr is not an mh scheduler")
	}
}

func TestMaglevTableEdges(t *testing.T) {
	for _, tab := range [][]int{
		MaglevTable(nil, 251),
		MaglevTable([]MaglevServer{{Addr: netip.MustParseAddrPort("10.0.0.1:80")}}, 251),
	} {
		for p, i := range tab {
			if i != -1 {
				t.Fatalf("position %d holds %d without any weight", p, i)
			}
		}
	}
	for _, size := range []uint32{0, 1, 4, 4095, 1<<24 + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("size %d accepted", size)
				}
			}()
			MaglevTable(nil, size)
		}()
	}
}

// Removing a server moves its positions and few others: the Maglev bound
// that the kernel's table, built by MaglevTable, keeps too.
func TestMaglevTableDisruption(t *testing.T) {
	var servers []MaglevServer
	for i := range 10 {
		servers = append(servers, MaglevServer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}), 80), Weight: 1})
	}
	before := MaglevTable(servers, 4093)
	after := MaglevTable(append(servers[:4:4], servers[5:]...), 4093)
	moved := 0
	for p, i := range before {
		j := after[p]
		if j >= 4 {
			j++ // index in the list with server 4 removed
		}
		if i != 4 && i != j {
			moved++
		}
	}
	if moved > 4093*3/100 {
		t.Fatalf("removing 1 of 10 servers moved %d positions of the others", moved)
	}
	t.Logf("removing 1 of 10 moved %d of 4093 positions of the others", moved)
}

// BenchmarkMaglevTable measures MaglevTable, the kernel dataplane's table
// build (4093 positions) and the scheduler's (65537).
func BenchmarkMaglevTable(b *testing.B) {
	for _, size := range []uint32{4093, 65537} {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("size=%d/servers=%d", size, n), func(b *testing.B) {
				servers := maglevServers(benchServers(n))
				b.ReportAllocs()
				for b.Loop() {
					MaglevTable(servers, size)
				}
			})
		}
	}
}
