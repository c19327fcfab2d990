package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
)

// The connection sync's access to the DR flow maps (docs/sync.md): the
// flows are listed from the maps (dr_stats.go's dump) and peers' flows are
// added to them, so that after a failover a DR flow keeps its real server
// whatever this director's scheduler would pick.

// DRFlow is one DR flow as the connection sync carries it.
type DRFlow struct {
	Proto      uint8
	Client     netip.AddrPort
	VIP        netip.AddrPort
	RealServer netip.Addr
	Expires    time.Duration // what it has left
}

// DRFlows lists the flows of the DR flow maps of the families that have
// DR services, from a new dump, until yield returns false. The statistics
// then take that dump instead of one of their own (drSnapshot). yield runs
// with the DR dump lock held: it must not call the Dataplane.
func (d *Dataplane) DRFlows(yield func(DRFlow) bool) error {
	fams := d.drServed()
	d.drDumpMu.Lock()
	defer d.drDumpMu.Unlock()
	var errs []error
	for f, ok := range fams {
		if !ok {
			continue
		}
		flows, err := d.drFlows(f == 1, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range flows {
			f := &flows[i]
			if !yield(DRFlow{Proto: f.proto, Client: f.client, VIP: f.vip, RealServer: f.rs, Expires: f.expires}) {
				return errors.Join(errs...)
			}
		}
	}
	return errors.Join(errs...)
}

// DRNewFlows lists the flows created in the last few seconds (the fresh
// map, dr.go: each new flow for drFreshTimeout after its first packet),
// until yield returns false: a read whose cost follows the rate of new
// flows, not the size of the flow map, so the sync can read it every 50 ms
// and the whole map (DRFlows) seldom. Expires is the flow's timeout less
// the time since its first packet (it may have closed since: the whole
// map's next read tells). yield runs with the DR lock held.
func (d *Dataplane) DRNewFlows(yield func(DRFlow) bool) error {
	fams := d.drServed()
	d.drDumpMu.Lock()
	defer d.drDumpMu.Unlock()
	dd, err := d.dumper()
	if err != nil {
		return err
	}
	var errs []error
	for f, ok := range fams {
		if !ok {
			continue
		}
		snap := &d.drSnap[f]
		flows, err := dd.dump(d.opts.Table, drFreshMap, f == 1, snap.fresh)
		snap.fresh = flows[:0]
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the dr fresh map (%s): %w", fam2name(f == 1), err))
			continue
		}
		for i := range flows {
			fl := &flows[i]
			to := drTCPTimeout
			if fl.proto != 6 {
				to = drUDPTimeout
			}
			if !yield(DRFlow{Proto: fl.proto, Client: fl.client, VIP: fl.vip, RealServer: fl.rs,
				Expires: to - (drFreshTimeout - fl.expires)}) {
				return errors.Join(errs...)
			}
		}
	}
	return errors.Join(errs...)
}

// drServed reports which families have DR services now.
func (d *Dataplane) drServed() [2]bool {
	if v := d.view.Load(); v != nil {
		return drFamilies(v)
	}
	return [2]bool{}
}

// drFlowSet names the flow map of a family, for element changes.
func drFlowSet(table string, v6 bool) *nftables.Set {
	fam := nftables.TableFamilyIPv4
	if v6 {
		fam = nftables.TableFamilyIPv6
	}
	return &nftables.Set{Table: &nftables.Table{Name: table, Family: fam}, Name: drFlowsMap, IsMap: true,
		KeyType: drKeyType(v6), DataType: addrType(v6), HasTimeout: true}
}

// drElement is f as an element of its family's flow map (dr.go's key:
// proto . client addr . client port . VIP . VIP port, each padded to 4
// bytes; the real server's address as the value).
func drElement(f DRFlow) (nftables.SetElement, bool, error) {
	v6 := f.Client.Addr().Is6() && !f.Client.Addr().Is4In6()
	ca, va, ra := f.Client.Addr().Unmap(), f.VIP.Addr().Unmap(), f.RealServer.Unmap()
	if ca.Is6() != v6 || va.Is6() != v6 || ra.Is6() != v6 || !ra.IsValid() {
		return nftables.SetElement{}, v6, fmt.Errorf("dr flow %v -> %v via %v: mixed families", f.Client, f.VIP, f.RealServer)
	}
	k := make([]byte, 4, 44)
	k[0] = f.Proto
	port := func(p uint16) { k = binary.BigEndian.AppendUint16(k, p); k = append(k, 0, 0) }
	k = append(k, ca.AsSlice()...)
	port(f.Client.Port())
	k = append(k, va.AsSlice()...)
	port(f.VIP.Port())
	to := max(f.Expires, time.Second)
	return nftables.SetElement{Key: k, Val: ra.AsSlice(), Timeout: to}, v6, nil
}

// InstallDRFlows adds peers' flows to the flow maps, each for what it had
// left. A flow already in a map keeps its real server (the kernel refuses
// another value for a key: those flows are counted in the error).
func (d *Dataplane) InstallDRFlows(flows []DRFlow) error {
	var byFam [2][]nftables.SetElement
	var errs []error
	for _, f := range flows {
		e, v6, err := drElement(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byFam[famIndex(v6)] = append(byFam[famIndex(v6)], e)
	}
	d.drMu.Lock()
	defer d.drMu.Unlock()
	c, err := d.drConn()
	if err != nil {
		return err
	}
	for f, elems := range byFam {
		if len(elems) == 0 {
			continue
		}
		s := drFlowSet(d.opts.Table, f == 1)
		for len(elems) > 0 {
			n := min(len(elems), maxElemsPerMsg)
			if err := c.SetAddElements(s, elems[:n]); err != nil {
				return err
			}
			elems = elems[n:]
		}
		if err := c.Flush(); err == nil {
			continue
		}
		// One flow the map holds with another real server fails the
		// whole batch: add them one by one.
		for _, e := range byFam[f] {
			if err := c.SetAddElements(s, []nftables.SetElement{e}); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("dr flow map (%s): %w", fam2name(f == 1), err))
			}
		}
	}
	return errors.Join(errs...)
}
