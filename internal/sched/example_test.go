package sched_test

import (
	"fmt"
	"net/netip"

	"github.com/govs-lb/govs/internal/sched"
)

// Weighted round robin with weights 4, 3 and 2 interleaves the servers over
// a cycle of 9 connections.
func Example() {
	servers := []*sched.Dest{
		sched.NewDest(netip.MustParseAddrPort("10.0.0.1:80"), 4),
		sched.NewDest(netip.MustParseAddrPort("10.0.0.2:80"), 3),
		sched.NewDest(netip.MustParseAddrPort("10.0.0.3:80"), 2),
	}
	s, err := sched.New("wrr", sched.Options{})
	if err != nil {
		panic(err)
	}
	s.Update(servers)
	for range 9 {
		fmt.Print(s.Pick(&sched.Key{}).Addr.Addr().As4()[3], " ")
	}
	fmt.Println()
	// Output: 1 1 2 1 2 3 1 2 3
}

// Weighted least connection follows the connection counts as they change.
func Example_wlc() {
	a := sched.NewDest(netip.MustParseAddrPort("10.0.0.1:80"), 1)
	b := sched.NewDest(netip.MustParseAddrPort("10.0.0.2:80"), 2)
	s, _ := sched.New("wlc", sched.Options{})
	s.Update([]*sched.Dest{a, b})
	for range 4 {
		d := s.Pick(nil)
		fmt.Print(d.Addr, " ")
		d.Bind()     // the connection is opening
		d.Activate() // and established
	}
	fmt.Println()
	// Output: 10.0.0.1:80 10.0.0.2:80 10.0.0.2:80 10.0.0.1:80
}
