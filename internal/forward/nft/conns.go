package nft

import (
	"net/netip"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/director"
)

// tcpStateNames are IPVS's names for conntrack's TCP states
// (TCP_CONNTRACK_*): the same words, except SYN_SENT2 (a simultaneous
// open), which IPVS has no state for and is shown as SYN_SENT.
var tcpStateNames = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
	"LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT"}

// Connections implements director.Dataplane: the conntrack flows of
// the services served, from one dump. The client and the VIP are the
// original direction's source and destination, the real server the reply
// direction's source (in fullnat the reply goes to the local address, which
// the listing does not show, as ipvsadm does not).
func (d *Dataplane) Connections(yield func(director.Connection) bool) error {
	d.mu.Lock()
	running := d.started && !d.closed
	d.mu.Unlock()
	v := d.view.Load()
	if !running || v == nil {
		return nil
	}
	flows, err := d.dump()
	if err != nil {
		return err
	}
	for i := range flows {
		f := &flows[i]
		vs, rs, ok := flowService(v, f)
		if !ok {
			continue
		}
		if !yield(flowEntry(vs, rs, f)) {
			return nil
		}
	}
	return d.drConnections(v, yield)
}

func flowEntry(vs *director.VirtualService, rs netip.AddrPort, f *conntrack.Flow) director.Connection {
	o := f.TupleOrig
	if rs.Port() == 0 {
		// A fwmark service's real server without a port: the port this
		// flow reached, as IPVS's connection entry shows it.
		rs = netip.AddrPortFrom(rs.Addr(), f.TupleReply.Proto.SourcePort)
	}
	c := director.Connection{
		Service: vs.Key, Protocol: vs.Protocol, State: "UDP",
		Expires:    time.Duration(f.Timeout) * time.Second,
		Client:     netip.AddrPortFrom(o.IP.SourceAddress.Unmap(), o.Proto.SourcePort),
		Virtual:    netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort), // a fwmark flow's own VIP:port
		RealServer: rs,
		InBytes:    f.CountersOrig.Bytes, OutBytes: f.CountersReply.Bytes,
		InPackets: f.CountersOrig.Packets, OutPackets: f.CountersReply.Packets,
	}
	if o.Proto.Protocol == 6 {
		c.State = "NONE"
		if t := f.ProtoInfo.TCP; t != nil && int(t.State) < len(tcpStateNames) {
			c.State = tcpStateNames[t.State]
		}
	}
	return c
}
