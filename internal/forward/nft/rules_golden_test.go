package nft

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/desired"
)

var updateRules = flag.Bool("update", false, "rewrite testdata/rules/*.txt, the nft rule goldens")

// svc is a desired service for the goldens: VIP, forwarding, scheduler,
// real servers "addr/weight" (weight 0: quiesced; a trailing "!": down and
// out of the set).
func svc(vip string, fwd desired.Forwarding, sched string, reals ...string) *desired.Service {
	ap := netip.MustParseAddrPort(vip)
	s := &desired.Service{Key: "tcp/" + ap.String(), Name: "golden", Protocol: desired.TCP, VIP: ap, Forwarding: fwd,
		Scheduler: desired.Scheduler{Name: sched}}
	for _, r := range reals {
		down := strings.HasSuffix(r, "!")
		r = strings.TrimSuffix(r, "!")
		addr, w, _ := strings.Cut(r, "/")
		weight := 1
		if w != "" {
			fmt.Sscan(w, &weight)
		}
		rs := desired.RealServer{Addr: netip.MustParseAddrPort(addr), Weight: weight, LastWeight: max(weight, 1),
			InSet: !down, Available: weight > 0 && !down}
		if down {
			rs.Weight = 0
		}
		s.Reals = append(s.Reals, rs)
	}
	return s
}

func with(s *desired.Service, f func(*desired.Service)) *desired.Service { f(s); return s }

// fwm makes s the firewall-mark service of mark.
func fwm(s *desired.Service, mark uint32, v6 bool) *desired.Service {
	s.FWMark, s.IPv6, s.VIP, s.Key = mark, v6, netip.AddrPort{}, fmt.Sprintf("fwm/%d", mark)
	return s
}

// goldenCases are the snapshots whose rules are pinned: every forwarding,
// every kernel-run scheduler, the queue, the sorry server, persistence,
// IPv6, fullnat's source addresses.
func goldenCases() map[string][]*desired.Service {
	r3 := []string{"10.9.1.1:80/1", "10.9.1.2:80/2", "10.9.1.3:80/3"}
	return map[string][]*desired.Service{
		"nat-rr":     {svc("10.9.0.100:80", desired.NAT, "rr", r3...)},
		"nat-wrr":    {svc("10.9.0.100:80", desired.NAT, "wrr", r3...)},
		"nat-random": {svc("10.9.0.100:80", desired.NAT, "random", r3...)},
		"nat-sh":     {svc("10.9.0.100:80", desired.NAT, "sh", "10.9.1.1:80/2", "10.9.1.2:80/0", "10.9.1.3:80/1")},
		"nat-mh":     {svc("10.9.0.100:80", desired.NAT, "mh", r3...)},
		"nat-mh-flags": {with(svc("10.9.0.100:80", desired.NAT, "mh", "10.9.1.1:80/1", "10.9.1.2:80/0", "10.9.1.3:80/1"), func(s *desired.Service) {
			s.Scheduler.Flags, s.Scheduler.MHPort, s.Scheduler.MHFallback = []string{"mh-port", "mh-fallback"}, true, true
		})},
		"nat-wlc-queue":   {svc("10.9.0.100:80", desired.NAT, "wlc", "10.9.1.1:80/1", "10.9.1.2:80/0", "10.9.1.3:80!")},
		"nat-unavailable": {svc("10.9.0.100:80", desired.NAT, "rr", "10.9.1.1:80!", "10.9.1.2:80/0")},
		"nat-persistence": {with(svc("10.9.0.100:80", desired.NAT, "rr", r3...), func(s *desired.Service) {
			s.Persistence = &desired.Persistence{Timeout: 300 * time.Second, Netmask: "255.255.255.0"}
		})},
		"nat-sorry-standby": {with(svc("10.9.0.100:80", desired.NAT, "wlc", r3...), func(s *desired.Service) {
			s.Sorry = &desired.RealServer{Addr: netip.MustParseAddrPort("10.9.2.1:80"), Weight: 1, LastWeight: 1}
		})},
		"nat-sorry-active": {with(svc("10.9.0.100:80", desired.NAT, "mh", "10.9.1.1:80!", "10.9.1.2:80!"), func(s *desired.Service) {
			s.Sorry = &desired.RealServer{Addr: netip.MustParseAddrPort("10.9.2.1:80"), Weight: 1, LastWeight: 1, InSet: true, Available: true}
			s.SorryActive = true
		})},
		"fullnat-masquerade": {with(svc("10.9.0.101:53", desired.FullNAT, "rr", "10.9.1.1:53", "10.9.1.2:53"), func(s *desired.Service) {
			s.Protocol, s.Key = desired.UDP, "udp/10.9.0.101:53"
		})},
		"fullnat-range": {with(svc("10.9.0.101:80", desired.FullNAT, "sh", r3...), func(s *desired.Service) {
			s.SNAT = []desired.AddrRange{{First: netip.MustParseAddr("10.9.0.20"), Last: netip.MustParseAddr("10.9.0.29")}}
		})},
		"fullnat-list": {with(svc("10.9.0.101:80", desired.FullNAT, "wrr", r3...), func(s *desired.Service) {
			s.SNAT = []desired.AddrRange{{First: netip.MustParseAddr("10.9.0.10"), Last: netip.MustParseAddr("10.9.0.10")},
				{First: netip.MustParseAddr("10.9.0.12"), Last: netip.MustParseAddr("10.9.0.13")}}
		})},
		"ipv6-nat-rr": {svc("[fd00:9::100]:80", desired.NAT, "rr", "[fd00:9:1::1]:80", "[fd00:9:1::2]:80/2")},
		"ipv6-fullnat-mh": {with(svc("[fd00:9::101]:80", desired.FullNAT, "mh", "[fd00:9:1::1]:80", "[fd00:9:1::2]:80"), func(s *desired.Service) {
			s.SNAT = []desired.AddrRange{{First: netip.MustParseAddr("fd00:9::10"), Last: netip.MustParseAddr("fd00:9::11")}}
		})},
		"dr-rr":          {svc("10.9.0.102:80", desired.DR, "rr", "10.9.1.1:80", "10.9.1.2:80/2")},
		"dr-sh-udp":      {with(svc("10.9.0.102:53", desired.DR, "sh", "10.9.1.1:53", "10.9.1.2:53"), func(s *desired.Service) { s.Protocol, s.Key = desired.UDP, "udp/10.9.0.102:53" })},
		"dr-wlc-queue":   {svc("10.9.0.102:80", desired.DR, "wlc", "10.9.1.1:80", "10.9.1.2:80")},
		"ipv6-dr-mh":     {svc("[fd00:9::102]:80", desired.DR, "mh", "[fd00:9:1::1]:80", "[fd00:9:1::2]:80")},
		"fwmark-nat-wlc": {fwm(svc("0.0.0.0:0", desired.NAT, "wlc", "10.9.1.1:80", "10.9.1.2:80/2"), 7, false)},
		"fwmark-fullnat-noport": {with(fwm(svc("0.0.0.0:0", desired.FullNAT, "rr", "10.9.1.1:0", "10.9.1.2:0"), 3, false), func(s *desired.Service) {
			s.SNAT = []desired.AddrRange{{First: netip.MustParseAddr("10.9.0.20"), Last: netip.MustParseAddr("10.9.0.21")}}
		})},
		"fwmark-ipv6-dr-sh": {fwm(svc("[::]:0", desired.DR, "sh", "[fd00:9:1::1]:0", "[fd00:9:1::2]:0"), 5, true)},
		"fwmark-and-address": {
			svc("10.9.0.100:80", desired.NAT, "lc", r3...),
			fwm(svc("0.0.0.0:0", desired.NAT, "wlc", r3...), 1, false),
		},
		"mixed": {
			svc("10.9.0.100:80", desired.NAT, "rr", r3...),
			svc("10.9.0.101:80", desired.FullNAT, "lc", r3...),
			svc("10.9.0.102:80", desired.DR, "wrr", r3...),
			svc("[fd00:9::100]:80", desired.NAT, "random", "[fd00:9:1::1]:80"),
		},
	}
}

// renderRules is the first transaction that serves services (the one that
// replaces the table), then the one that drains them, as the kernel would
// be sent them.
func renderRules(t *testing.T, services []*desired.Service) string {
	t.Helper()
	var desc strings.Builder
	next := uint32(0)
	marks := map[string]uint32{}
	fwmarks := fwmarksOf(services)
	plans, err := planAll(services, func(key string, a netip.AddrPort) uint32 {
		if m, ok := marks[key+" "+a.String()]; ok {
			return m
		}
		for next++; fwmarks[next]; next++ {
		}
		marks[key+" "+a.String()] = next
		return next
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		p.describe(&desc)
	}
	q := queueConfig{base: DefaultQueueBase, total: 2}
	rec := &recorder{}
	r := &ruleset{table: "govs"}
	rec.line("# plans")
	rec.b.WriteString(desc.String())
	rec.line("# serve")
	if err := r.program(rec, plans, q, false); err != nil {
		t.Fatal(err)
	}
	rec.line("# drain")
	if err := r.program(rec, plans, q, true); err != nil {
		t.Fatal(err)
	}
	return rec.b.String()
}

// TestRulesGolden: a snapshot in, the nftables objects the kernel
// dataplane programs out, compared with testdata/rules/NAME.txt, so that a
// change of the rules is reviewed as a diff. go test -run TestRulesGolden
// -update rewrites the files.
func TestRulesGolden(t *testing.T) {
	cases := goldenCases()
	seen := map[string]bool{}
	for name, services := range cases {
		seen[name+".txt"] = true
		t.Run(name, func(t *testing.T) {
			got := renderRules(t, services)
			path := filepath.Join("testdata", "rules", name+".txt")
			if *updateRules {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRulesGolden -update to write it)", err)
			}
			if string(want) != got {
				t.Errorf("rules of %s differ from %s (go test -run TestRulesGolden -update rewrites it):\n%s", name, path, lineDiff(string(want), got))
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "rules", "*.txt"))
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			if *updateRules {
				os.Remove(f)
				continue
			}
			t.Errorf("%s has no case (go test -run TestRulesGolden -update removes it)", f)
		}
	}
}

// lineDiff lists the lines only in want (-) or only in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	inW, inG := map[string]int{}, map[string]int{}
	for _, l := range w {
		inW[l]++
	}
	for _, l := range g {
		inG[l]++
	}
	var b strings.Builder
	for _, l := range w {
		if inG[l] == 0 {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if inW[l] == 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// BenchmarkPlanSnapshot is the planning a health decision's Apply costs
// the kernel dataplane: every service of the snapshot is planned again
// (only the rules of a changed description are sent to the kernel).
func BenchmarkPlanSnapshot(b *testing.B) {
	for _, tc := range []struct {
		name  string
		sched string
		n     int
	}{{"rr-100", "rr", 100}, {"mh-10", "mh", 10}} {
		var services []*desired.Service
		for i := range tc.n {
			services = append(services, svc(fmt.Sprintf("10.9.%d.%d:80", i/200, i%200+1), desired.NAT, tc.sched,
				"10.8.1.1:80/1", "10.8.1.2:80/2", "10.8.1.3:80/3", "10.8.1.4:80/1"))
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for i, s := range services {
					if _, err := planService(i, s, func(netip.AddrPort) uint32 { return 1 }); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
