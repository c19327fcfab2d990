package vrrp_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/vrrp"
)

// A caller owns the clock and the sockets: it feeds the machine received
// adverts and ticks at NextDeadline, then performs the actions from Ready.
func ExampleMachine() {
	self := netip.MustParseAddr("192.168.1.10")
	m, err := vrrp.NewMachine(vrrp.Config{
		Name: "VI_1", Version: vrrp.V3, VRID: 51, Priority: 100,
		PrimaryIP: self, VIPs: []netip.Addr{netip.MustParseAddr("192.168.1.100")},
	})
	if err != nil {
		panic(err)
	}
	start := time.Unix(0, 0)
	now := start
	buf := make([]byte, 0, vrrp.MaxLen)
	perform := func() {
		for _, a := range m.Ready() {
			switch a.Kind {
			case vrrp.ActSendAdvert:
				p := m.Advert(a.Priority)
				buf, _ = p.Append(buf[:0], self, vrrp.MulticastIPv4)
				fmt.Printf("+%v send % x\n", now.Sub(start), buf) // to the raw socket
			default:
				fmt.Printf("+%v %v\n", now.Sub(start), a) // netlink, arp, scripts, logs
			}
		}
	}

	m.Start(now)
	perform()
	for range 2 { // nobody else is there: Master_Down_Timer, then one advert
		now, _ = m.NextDeadline()
		m.Tick(now)
		perform()
	}

	// A higher priority router shows up: the socket layer hands over the
	// payload and the IP header facts.
	peer := netip.MustParseAddr("192.168.1.20")
	hp := vrrp.Packet{Version: vrrp.V3, VRID: 51, Priority: 200, AdverInt: 100,
		Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.100")}}
	wire, _ := hp.Append(nil, peer, vrrp.MulticastIPv4)
	var p vrrp.Packet
	err = vrrp.Decode(wire, vrrp.IPInfo{Src: peer, Dst: vrrp.MulticastIPv4, HopLimit: 255}, &p)
	if err == nil {
		err = m.Step(now, &p, peer)
	}
	fmt.Println("step:", err, vrrp.ReasonOf(err))
	perform()
	next, _ := m.NextDeadline()
	fmt.Println("state", m.State(), "master down in", next.Sub(now))

	// Output:
	// +0s notify BACKUP
	// +3.609375s log master down timer expired
	// +3.609375s add-vips accept=false
	// +3.609375s send 31 33 64 01 00 64 06 19 c0 a8 01 64
	// +3.609375s garp x5
	// +3.609375s notify MASTER
	// +4.609375s send 31 33 64 01 00 64 06 19 c0 a8 01 64
	// step: <nil> none
	// +4.609375s log higher priority advert received from 192.168.1.20 priority 200
	// +4.609375s remove-vips accept=false
	// +4.609375s notify BACKUP
	// state BACKUP master down in 3.609375s
}
