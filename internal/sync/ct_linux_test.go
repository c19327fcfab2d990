package connsync

import (
	"net/netip"
	"testing"

	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/ctevent"
	"github.com/govs-lb/govs/test/netns"
)

// TestSinkInstallsNAT installs nat and fullnat flows into a namespace's
// conntrack table and reads them back: the reply tuple must carry the
// mapping and the status the NAT bits, or the kernel would not translate.
func TestSinkInstallsNAT(t *testing.T) {
	netns.Require(t)
	ns := netns.New(t, "sink")
	if out, err := ns.Exec("nft", "add table ip t; add chain ip t c { type nat hook prerouting priority -100; }"); err != nil {
		t.Skipf("nft nat: %v %s", err, out)
	}
	s, err := dialSink(ns.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ap := netip.MustParseAddrPort
	nat := Entry{Proto: 6, State: 3, Orig: Tuple{ap("10.1.0.2:40000"), ap("10.1.0.100:80")},
		Reply: Tuple{ap("10.2.0.21:8080"), ap("10.1.0.2:40000")}, Mark: 7, Timeout: 600}
	full := Entry{Proto: 17, Orig: Tuple{ap("10.1.0.3:5000"), ap("10.1.0.100:53")},
		Reply: Tuple{ap("10.2.0.22:53"), ap("10.2.0.1:61000")}, Timeout: 60}
	nat6 := Entry{Proto: 6, State: 3, Orig: Tuple{ap("[fd01::2]:40000"), ap("[fd01::100]:80")},
		Reply: Tuple{ap("[fd02::21]:8080"), ap("[fd01::2]:40000")}, Timeout: 600}
	for _, e := range []Entry{nat, full, nat6} {
		if err := s.apply(&e); err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
	}
	// Again: an update of a flow that exists.
	nat.State, nat.Timeout = 5, 100 // TIME_WAIT... CLOSE_WAIT
	if err := s.apply(&nat); err != nil {
		t.Fatalf("update: %v", err)
	}
	flows, err := s.ct.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[Key]conntrack.Flow{}
	for _, f := range flows {
		got[flowEntry(&f).Key()] = f
	}
	for _, e := range []Entry{nat, full, nat6} {
		f, ok := got[e.Key()]
		if !ok {
			t.Fatalf("%v not installed: %v", e.Orig, flows)
		}
		g := flowEntry(&f)
		if g.Reply != e.Reply || g.Mark != e.Mark || g.State != e.State {
			t.Errorf("installed %+v, want %+v", g, e)
		}
		if !f.Status.DstNAT() || (e.Reply.Dst != e.Orig.Src) != f.Status.SrcNAT() {
			t.Errorf("%v: status %v", e.Orig, f.Status)
		}
		if e.Proto == 6 && (f.ProtoInfo.TCP.OriginalFlags>>8)&ctevent.TCPFlagBeLiberal == 0 { // dumps give {flags, 0}
			t.Errorf("%v: tcp flags %#x", e.Orig, f.ProtoInfo.TCP.OriginalFlags)
		}
	}
	del := nat
	del.Delete = true
	if err := s.apply(&del); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(&del); err != nil {
		t.Fatalf("delete of a flow already gone: %v", err)
	}
}
