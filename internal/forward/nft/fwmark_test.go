package nft

import (
	"net/netip"
	"testing"
)

// A fwmark service's plans: tcp and udp, ahead of the address services
// (IPVS looks marks up first), real servers without a port put in maps by
// address alone, and the real servers' NFQUEUE marks never equal to a
// fwmark service's mark (conntrack's mark names a fwmark flow's service).
func TestPlanFWMark(t *testing.T) {
	plans := planOf(t, `virtual_servers:
  - address: 10.9.0.100:80
    forwarding: nat
    scheduler: wlc
    real_servers: [{address: 10.9.1.1:80}, {address: 10.9.1.2:80}]
  - fwmark: 2
    forwarding: fullnat
    scheduler: wlc
    persistence_timeout: 1m
    real_servers: [{address: 10.9.2.1}, {address: 10.9.2.2}]
  - fwmark: 1
    family: ipv6
    forwarding: dr
    scheduler: rr
    real_servers: [{address: "fd00::1"}]
`)
	if len(plans) != 5 {
		t.Fatalf("%d plans, want 5 (two per fwmark service)", len(plans))
	}
	for i, want := range []struct {
		fwmark uint32
		proto  uint8
		chain  string
	}{{2, 6, "s1"}, {2, 17, "s1u"}, {1, 6, "s2"}, {1, 17, "s2u"}, {0, 6, "s0"}} {
		if p := plans[i]; p.fwmark != want.fwmark || p.proto != want.proto || p.chain != want.chain {
			t.Errorf("plan %d: fwmark %d proto %d chain %s; want %+v", i, p.fwmark, p.proto, p.chain, want)
		}
	}
	fw, v6 := plans[0], plans[2]
	if fw.mode != modeQueue || !fw.noPort || !fw.fullnat || fw.v6 || fw.key() != markKey(2, false) {
		t.Errorf("fwmark 2: mode %v noPort %v fullnat %v v6 %v", fw.mode, fw.noPort, fw.fullnat, fw.v6)
	}
	if v6.mode != modeInc || !v6.dr || !v6.v6 || v6.slots[0] != netip.MustParseAddrPort("[fd00::1]:0") {
		t.Errorf("fwmark 1 ipv6: mode %v dr %v v6 %v slots %v", v6.mode, v6.dr, v6.v6, v6.slots)
	}
	// The queue-scheduled services' real servers are marked 1, 3, 4, ...:
	// never 1 or 2, the fwmark services' marks.
	for _, p := range plans {
		for m := range p.marks {
			if m == 1 || m == 2 {
				t.Errorf("%s: a real server's NFQUEUE mark %d is a fwmark service's", p.svc, m)
			}
		}
	}
	if got := natData(fw, netip.MustParseAddrPort("10.9.2.1:0")); len(got) != 4 {
		t.Errorf("a port-less real server's map value is %d bytes, want the address alone", len(got))
	}
}
