package test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/govs-lb/govs/internal/sched"
	"github.com/govs-lb/govs/test/loopback"
)

// Every scheduler in nat forwarding, three real servers of weights 3, 2
// and 1, one virtual service (a port of its own) per scheduler:
//
//   - the kernel's (rr, wrr, random, sh): 30 connections one after the
//     other, each closed before the next, spread as the rule says;
//   - those run by govs through NFQUEUE: six connections held open one
//     after the other, each waiting until the director's counts (read
//     from conntrack) show the ones before it; the spread must equal what
//     the same scheduler code gives for the same sequence of picks with
//     the same counts (internal/sched, whose rules are unit-tested against
//     IPVS's formulas);
//   - the adaptive ones, which draw at random or learn from latencies the
//     kernel path does not show: every connection served, and more than
//     one real server used.
func TestNATSchedulers(t *testing.T) {
	l := newNATLab(t, 3)
	weights := []int{3, 2, 1}
	const basePort = 9200
	names := []string{"rr", "wrr", "random", "sh", "lc", "wlc", "sed", "nq", "dh", "lblc", "lblcr", "fo", "ovf",
		"twos", "pewma", "prequal", "adaptive-weights"}
	for i := range names {
		l.serveTCP(basePort + i)
	}
	for i, name := range names {
		port := basePort + i
		t.Run(name, func(t *testing.T) {
			parent := l.t
			l.t = t // the lab's helpers report to the subtest
			defer func() { l.t = parent }()
			l.apply(natConfig("nat", name, l.vip(port), "tcp", l.RealAddrs, weights, ""))
			switch name {
			case "rr", "wrr", "random", "sh":
				got := map[string]int{}
				n := 30
				if name == "random" {
					n = 60
				}
				for range n {
					rs, _, err := l.askOnce(port)
					if err != nil {
						t.Fatal(err)
					}
					got[rs]++
				}
				checkKernelSpread(t, name, got, n)
			case "twos", "pewma", "prequal", "adaptive-weights":
				got := l.holdConnections(t, port, 6, false)
				if len(got) < 2 {
					t.Errorf("%s sent all six held connections to one real server: %v", name, got)
				}
			default:
				got := l.holdConnections(t, port, 6, true)
				want := referenceSpread(t, name, l.vip(port), netip.AddrPortFrom(l.ClientAddr, 0), weights, 6)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s spread %v in the kernel path, the scheduler gives %v", name, got, want)
				}
			}
		})
	}
}

func checkKernelSpread(t *testing.T, name string, got map[string]int, n int) {
	t.Helper()
	switch name {
	case "rr": // weights play no part
		if got["rs1"] != n/3 || got["rs2"] != n/3 || got["rs3"] != n/3 {
			t.Errorf("rr spread %v, want %d each", got, n/3)
		}
	case "wrr": // 3:2:1 exactly, over whole periods
		if got["rs1"] != n/2 || got["rs2"] != n/3 || got["rs3"] != n/6 {
			t.Errorf("wrr spread %v, want %d:%d:%d", got, n/2, n/3, n/6)
		}
	case "random": // uniform, weights above 0 play no part: each gets some
		if len(got) != 3 {
			t.Errorf("random spread %v over %d, want all three", got, n)
		}
	case "sh": // one client address: one real server
		if len(got) != 1 {
			t.Errorf("sh spread one client's connections over %v", got)
		}
	}
}

// holdConnections opens n connections to port one after the other, keeps
// them open until the test ends, and returns how many each real server
// answered. With settle, before each new connection it waits until the
// director's counts show every connection held so far as active and none
// inactive, so the scheduler decides on the same counts a reference does.
func (l *natLab) holdConnections(t *testing.T, port, n int, settle bool) map[string]int {
	t.Helper()
	vs := l.d.Service("tcp/" + l.vip(port).String())
	if vs == nil {
		t.Fatalf("no service on port %d", port)
	}
	got := map[string]int{}
	for i := range n {
		if settle {
			loopback.WaitFor(t, fmt.Sprintf("%d connections counted active", i), func() bool {
				active, inactive := 0, 0
				for _, rs := range vs.RealServers() {
					active += rs.Dest.ActiveConns()
					inactive += rs.Dest.InactiveConns()
				}
				return active == i && inactive == 0
			})
		}
		cc, err := l.dial(port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.c.Close() })
		name, _, err := cc.ask()
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	return got
}

// referenceSpread runs the scheduler of that name over real servers of
// those weights for n new connections that all stay open.
func referenceSpread(t *testing.T, name string, vip, client netip.AddrPort, weights []int, n int) map[string]int {
	t.Helper()
	s, err := sched.New(name, sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var dests []*sched.Dest
	for i, w := range weights {
		d := sched.NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 77, byte(i + 1), 2}), vip.Port()), w)
		d.Owner = fmt.Sprintf("rs%d", i+1)
		dests = append(dests, d)
	}
	s.Update(dests)
	got := map[string]int{}
	for range n {
		d := s.Pick(&sched.Key{Client: client, VIP: vip})
		if d == nil {
			t.Fatalf("reference %s picked nothing", name)
		}
		d.Bind()
		d.Activate()
		got[d.Owner.(string)]++
	}
	return got
}

// Persistence in nat: each client address keeps its real server for all
// its connections while its template lives, and different clients are
// still spread.
func TestNATPersistence(t *testing.T) {
	l := newNATLab(t, 3)
	l.serveTCP(9300)
	l.apply(natConfig("nat", "rr", l.vip(9300), "tcp", l.RealAddrs, nil, "    persistence_timeout: 60s\n"))
	clients := l.AddClientAddrs(6)
	used := map[string]bool{}
	for _, src := range clients {
		first := ""
		for range 4 {
			name, _, err := l.askFrom(src, 9300)
			if err != nil {
				t.Fatal(err)
			}
			if first == "" {
				first = name
			} else if name != first {
				t.Fatalf("client %v went to %s, then %s: persistence broken", src, first, name)
			}
		}
		used[first] = true
	}
	if len(used) != 3 {
		t.Errorf("six persistent clients used real servers %v; rr should give all three", used)
	}
}
