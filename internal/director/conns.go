package director

import (
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/persist"
)

type persistEntry = persist.Entry[netip.AddrPort]

// Connection is one entry of the connection table, a line of ipvsadm -L -c:
// a connection or UDP flow as its dataplane sees it, or a persistence
// template.
type Connection struct {
	Service  string // the virtual service's key
	Protocol config.Protocol
	// State is IPVS's name for the entry's state: the TCP states
	// (ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, CLOSE_WAIT, LAST_ACK,
	// TIME_WAIT, CLOSE), UDP for a UDP flow and NONE for a persistence
	// template, as /proc/net/ip_vs_conn shows them.
	State string
	// Expires is how long the entry lives on if nothing more happens: the
	// rest of the idle timeout in the proxy, the conntrack timeout in the
	// kernel, the rest of the persistence timeout for a template.
	Expires    time.Duration
	Client     netip.AddrPort // a template's client group, port 0
	Virtual    netip.AddrPort
	RealServer netip.AddrPort
	Template   bool
	// Bytes and packets so far; packets are known to the kernel only.
	InBytes, OutBytes     uint64
	InPackets, OutPackets uint64
}

// Connections lists the connections of every dataplane, then the
// persistence templates of the persistent services, until yield returns
// false.
func (d *Director) Connections(yield func(Connection) bool) error {
	stopped := false
	y := func(c Connection) bool {
		if !yield(c) {
			stopped = true
		}
		return !stopped
	}
	if err := d.dp.Connections(y); err != nil {
		return err
	}
	for _, vs := range d.Services() {
		if stopped {
			return nil
		}
		vs.templates(y)
	}
	return nil
}

// templates lists vs's persistence templates as IPVS shows them: client
// port 0, state NONE.
func (vs *VirtualService) templates(yield func(Connection) bool) {
	p := vs.persist.Load()
	if p == nil {
		return
	}
	p.table.Templates(func(e persistEntry) bool {
		// The table is keyed by VIP:port, which all of a service's
		// templates share; the service is vs.
		return yield(Connection{
			Service: vs.Key, Protocol: vs.Protocol, State: "NONE", Template: true,
			Expires: e.Expires, Client: netip.AddrPortFrom(e.Client, 0), Virtual: vs.Address,
			RealServer: e.Dest.Addr,
		})
	})
}
