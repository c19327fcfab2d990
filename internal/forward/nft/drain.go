package nft

import (
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// What a stop and a reload promise the kernel's established flows: their
// translation, both ways, for the whole grace period.
//
//   - The table holds a rule that keeps conntrack running in the
//     namespace (holdConntrack) for as long as the table exists, whatever
//     the services: draining and removing the last service delete every
//     other expression that needs conntrack.
//   - A service a reload removes is retired: its flows keep going through
//     conntrack, and a stop waits for them too, until its VirtualService
//     context ends (the director ends it at the end of its grace period).
//   - When no service is left the table stays while retired services have
//     live flows, and goes when they have none (dropIdleTable): a
//     configuration without kernel services leaves the namespace as if
//     govs had never served one.
//   - On a stop, Shutdown makes the VIPs drop new flows and returns when no
//     flow of a served or retired service is left; Close then removes the
//     table.

// retiredAfter is the retired services once services are served: those
// served now that services no longer holds (a reload removed them), and
// those retired already, less those that came back and those whose grace
// period is over. Called with d.mu held; changes nothing.
func (d *Dataplane) retiredAfter(services []director.ServiceSnapshot) map[*director.VirtualService]retiredService {
	now := make(map[*director.VirtualService]bool, len(services))
	for _, e := range services {
		now[e.Live] = true
	}
	out := make(map[*director.VirtualService]retiredService, len(d.retired))
	for vs, r := range d.retired {
		if !now[vs] && vs.Context().Err() == nil {
			out[vs] = r
		}
	}
	for _, e := range d.services {
		if vs := e.Live; !now[vs] && vs.Context().Err() == nil {
			out[vs] = retiredService{serviceKey(e.Desired), e.Desired.Forwarding == desired.DR}
		}
	}
	return out
}

// pruneRetired forgets the retired services whose grace period is over.
// Called with d.mu held.
func (d *Dataplane) pruneRetired() {
	for vs := range d.retired {
		if vs.Context().Err() != nil {
			delete(d.retired, vs)
		}
	}
}

// retiredVIPs is the VIPs of the retired services still in their grace
// period. Called with d.mu held.
func (d *Dataplane) retiredVIPs() map[vipKey]bool {
	d.pruneRetired()
	out := make(map[vipKey]bool, len(d.retired))
	for _, r := range d.retired {
		out[r.vip] = true
	}
	return out
}

// dropIdleTable removes the table when no service is left and no retired
// service has a live flow any more (their grace period over, or their
// connections closed). Holding conntrack on for nothing would make every
// packet of the namespace pay for it.
func (d *Dataplane) dropIdleTable() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.draining || d.idle || len(d.services) > 0 {
		return
	}
	retired := d.retiredVIPs()
	if len(retired) > 0 {
		flows, err := d.dump()
		if err != nil {
			d.log.Warn("conntrack dump failed, table kept", "err", err)
			return
		}
		if n := countLive(flows, nil, retired); n > 0 {
			return
		}
	}
	if err := removeTable(d.nft, d.opts.Table); err != nil {
		d.log.Warn("removing the idle nftables table", "table", d.opts.Table, "err", err)
		return
	}
	// The next commit with a service creates the table again.
	d.rules.kept, d.programmed, d.idle = false, "", true
	d.log.Info("no kernel service and no flow left: nftables table removed", "table", d.opts.Table)
}

// countLive counts the TCP connections to the VIPs of v or in extra that
// have not finished closing (TIME_WAIT and CLOSE do not count). UDP flows
// are not waited for: they end only by timeout.
func countLive(flows []conntrack.Flow, v *view, extra map[vipKey]bool) int {
	n := 0
	for i := range flows {
		f := &flows[i]
		if f.TupleOrig.Proto.Protocol != 6 || f.ProtoInfo.TCP == nil ||
			f.ProtoInfo.TCP.State < tcpSynSent || f.ProtoInfo.TCP.State > tcpLastAck {
			continue
		}
		if v != nil {
			if _, _, ok := flowService(v, f); ok {
				n++
				continue
			}
		}
		if extra[origVIP(f)] || (f.Mark != 0 && extra[flowMarkKey(f)]) {
			n++
		}
	}
	return n
}
