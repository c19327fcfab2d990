package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/govs-lb/govs/test/netns"
)

// drTestMap makes, in a new namespace, the DR table of a family with its
// flow map (as drBegin makes it) holding n flows: client 10.0.x.y (or
// fd00::x:y) port 1000+i%50000 to VIP:80, real server .21 to .23, each
// with its own timeout. It returns the namespace's fd.
func drTestMap(tb testing.TB, v6 bool, n int) int {
	tb.Helper()
	netns.Require(tb)
	ns := netns.New(tb, "nftdump")
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(ns.FD()), nftables.WithSockOptions(bigBuffers))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.CloseLasting() })
	fam := nftables.TableFamilyIPv4
	if v6 {
		fam = nftables.TableFamilyIPv6
	}
	t := c.AddTable(&nftables.Table{Name: "govs", Family: fam})
	s := &nftables.Set{Table: t, Name: drFlowsMap, IsMap: true, Dynamic: true, HasTimeout: true,
		Timeout: drTCPTimeout, Size: drFlowsMax, Counter: true, KeyType: drKeyType(v6), DataType: addrType(v6)}
	if err := c.AddSet(s, nil); err != nil {
		tb.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		tb.Fatal(err)
	}
	var elems []nftables.SetElement
	for i := range n {
		f := drTestFlow(v6, i)
		e, _, err := drElement(f)
		if err != nil {
			tb.Fatal(err)
		}
		elems = append(elems, e)
	}
	for len(elems) > 0 {
		k := min(len(elems), maxElemsPerMsg)
		if err := c.SetAddElements(s, elems[:k]); err != nil {
			tb.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			tb.Fatal(err)
		}
		elems = elems[k:]
	}
	return ns.FD()
}

// drTestFlow is drTestMap's flow i.
func drTestFlow(v6 bool, i int) DRFlow {
	vip, client, rs := netip.MustParseAddr("10.9.0.100"), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), netip.AddrFrom4([4]byte{10, 9, 1, byte(21 + i%3)})
	if v6 {
		var c [16]byte
		copy(c[:], netip.MustParseAddr("fd00::").AsSlice())
		binary.BigEndian.PutUint32(c[12:], uint32(i))
		vip, client, rs = netip.MustParseAddr("fd00:9::100"), netip.AddrFrom16(c), netip.MustParseAddr(fmt.Sprintf("fd00:9:1::%d", 21+i%3))
	}
	proto := uint8(6)
	if i%4 == 3 {
		proto = 17
	}
	return DRFlow{Proto: proto, Client: netip.AddrPortFrom(client, uint16(1000+i%50000)), VIP: netip.AddrPortFrom(vip, 80),
		RealServer: rs, Expires: time.Duration(100+i%700) * time.Second}
}

// drDumper reads every element as google/nftables's GetSetElements does,
// in either family, across many netlink messages, and twice in a row on
// the same socket.
func TestDRDumperMatchesGetSetElements(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fam2name(v6), func(t *testing.T) {
			const n = 3000
			fd := drTestMap(t, v6, n)
			dd, err := newDRDumper(fd)
			if err != nil {
				t.Fatal(err)
			}
			defer dd.close()
			var flows []drFlow
			for range 2 {
				if flows, err = dd.dump("govs", drFlowsMap, v6, flows); err != nil {
					t.Fatal(err)
				}
			}
			if len(flows) != n {
				t.Fatalf("dumped %d flows, want %d", len(flows), n)
			}
			c, err := nftables.New(nftables.WithNetNSFd(fd))
			if err != nil {
				t.Fatal(err)
			}
			elems, err := c.GetSetElements(drFlowSet("govs", v6))
			if err != nil {
				t.Fatal(err)
			}
			byKey := map[drFlowKey]drFlow{}
			for _, f := range flows {
				byKey[f.key()] = f
			}
			byElem := map[string]DRFlow{}
			for i := range n {
				f := drTestFlow(v6, i)
				e, _, _ := drElement(f)
				byElem[string(e.Key)] = f
			}
			for _, e := range elems {
				f, ok := byElem[string(e.Key)]
				if !ok {
					t.Fatalf("GetSetElements found an element %x that was not added", e.Key)
				}
				got, ok := byKey[drFlowKey{proto: f.Proto, client: f.Client, vip: f.VIP}]
				if !ok {
					t.Fatalf("element %x (flow %+v) not dumped", e.Key, f)
				}
				// (the dumps were taken apart: the time left differs a little)
				if got.rs != f.RealServer || got.v6 != v6 || got.expires > f.Expires || (got.expires-e.Expires).Abs() > 5*time.Second {
					t.Fatalf("flow %+v dumped as %+v (GetSetElements: expires %v)", f, got, e.Expires)
				}
				if e.Counter == nil || got.pkts != e.Counter.Packets || got.bytes != e.Counter.Bytes {
					t.Fatalf("flow %+v: counters %d/%d, GetSetElements %+v", f, got.pkts, got.bytes, e.Counter)
				}
			}
			if len(elems) != n {
				t.Fatalf("GetSetElements found %d elements, want %d", len(elems), n)
			}
		})
	}
}

// A flow map of a missing table is an error, and the socket still works
// afterwards.
func TestDRDumperMissingTable(t *testing.T) {
	fd := drTestMap(t, false, 10)
	dd, err := newDRDumper(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.close()
	if _, err := dd.dump("nosuchtable", drFlowsMap, false, nil); err == nil {
		t.Fatal("a dump of a missing table succeeded")
	}
	flows, err := dd.dump("govs", drFlowsMap, false, nil)
	if err != nil || len(flows) != 10 {
		t.Fatalf("after an error: %d flows, %v", len(flows), err)
	}
}

// BenchmarkDRDump compares a dump of a 100,000-flow map by drDumper with
// google/nftables's GetSetElements (what the statistics and the sync used
// before), in CPU per dump and allocations.
//
//	go test -run XXX -bench DRDump -benchmem ./internal/forward/nft/
func BenchmarkDRDump(b *testing.B) {
	const n = 100000
	fd := drTestMap(b, false, n)
	b.Run("drDumper", func(b *testing.B) {
		dd, err := newDRDumper(fd)
		if err != nil {
			b.Fatal(err)
		}
		defer dd.close()
		var flows []drFlow
		b.ReportAllocs()
		for b.Loop() {
			if flows, err = dd.dump("govs", drFlowsMap, false, flows); err != nil || len(flows) != n {
				b.Fatalf("%d flows, %v", len(flows), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/flow")
	})
	b.Run("GetSetElements", func(b *testing.B) {
		c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(fd), nftables.WithSockOptions(bigBuffers))
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseLasting()
		b.ReportAllocs()
		for b.Loop() {
			elems, err := c.GetSetElements(drFlowSet("govs", false))
			if err != nil || len(elems) != n {
				b.Fatalf("%d flows, %v", len(elems), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/flow")
	})
}
