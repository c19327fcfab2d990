package vrrpd

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/config"
)

// StrictTable is the name of govs's nftables tables for strict_mode, one
// per family ("ip govs_vrrp", "ip6 govs_vrrp"), as keepalived keeps its
// vrrp_strict rules in tables of its own ("keepalived").
//
// keepalived's strict mode turns Accept_Mode off for an instance that is
// not the address owner: while master it drops every packet to its VIPs
// (and from them), in chains at priority -1 of the input and output hooks,
// letting only IPv6 neighbour discovery through. govs does the same with
// one difference: the virtual services of the configuration on those VIPs
// (protocol, address, port) are let through, since serving them is the
// point of a director (keepalived's rules also block the LVS services on a
// VIP, the best known surprise of its default keepalived.conf).
const StrictTable = "govs_vrrp"

// strictPriority is keepalived's default vrrp_nf_chain_priority.
const strictPriority = -1

// reg32 is the first 32-bit nftables register.
const reg32 = unix.NFT_REG32_00

// svcKey is a virtual service let through the strict rules.
type svcKey struct {
	proto uint8
	addr  netip.Addr
	port  uint16
}

// firewall owns the strict tables. Its methods are safe for concurrent
// use: instances add and remove their VIPs from their own goroutines.
type firewall struct {
	mu    sync.Mutex
	conn  *nftables.Conn
	fams  [2]*strictFam // IPv4, IPv6; nil until the tables exist
	vips  map[netip.Addr]bool
	svcs  map[svcKey]bool
	ready bool
	swept bool // tables left by an earlier run were looked for
}

type strictFam struct {
	v6         bool
	t          *nftables.Table
	vips, svcs *nftables.Set
}

// strictServices are the virtual services of cfg that the strict rules let
// through: every TCP and UDP service with an address.
func strictServices(cfg *config.Config) map[svcKey]bool {
	out := map[svcKey]bool{}
	for _, vs := range cfg.VirtualServers {
		if vs == nil || !vs.Address.Addr.IsValid() {
			continue
		}
		proto := uint8(unix.IPPROTO_TCP)
		if vs.Protocol == config.UDP {
			proto = unix.IPPROTO_UDP
		}
		out[svcKey{proto, vs.Address.Addr.Unmap(), vs.Address.Port}] = true
	}
	return out
}

// sync makes the tables exist (want) with svcs let through, or removes them.
// The VIPs in force are kept across a change of services.
func (f *firewall) sync(want bool, svcs map[svcKey]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !want {
		if !f.ready {
			return f.sweep()
		}
		return f.removeLocked()
	}
	if !f.ready {
		if err := f.create(); err != nil {
			return err
		}
	}
	f.svcs = svcs
	for _, fam := range f.fams {
		f.conn.FlushSet(fam.svcs)
		var elems []nftables.SetElement
		for k := range svcs {
			if k.addr.Is6() == fam.v6 {
				elems = append(elems, nftables.SetElement{Key: svcBytes(k)})
			}
		}
		if len(elems) > 0 {
			if err := f.conn.SetAddElements(fam.svcs, elems); err != nil {
				return err
			}
		}
	}
	return wrapNFT("set the strict_mode services", f.conn.Flush())
}

func wrapNFT(what string, err error) error {
	if err != nil {
		return fmt.Errorf("vrrp: nftables: %s: %w", what, err)
	}
	return nil
}

// remove removes the tables, if they exist.
func (f *firewall) remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return nil
	}
	return f.removeLocked()
}

func (f *firewall) removeLocked() error {
	for _, fam := range f.fams {
		f.conn.DelTable(fam.t)
	}
	f.ready, f.vips, f.svcs = false, nil, nil
	return wrapNFT("remove the strict_mode tables", f.conn.Flush())
}

// sweep removes, once, strict tables an earlier run left (it crashed while
// master): they would drop traffic to VIPs this configuration serves.
func (f *firewall) sweep() error {
	if f.swept {
		return nil
	}
	f.swept = true
	c, err := nftables.New()
	if err != nil {
		return wrapNFT("connect", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return wrapNFT("list tables", err)
	}
	found := false
	for _, t := range tables {
		if t.Name == StrictTable && (t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6) {
			c.DelTable(t)
			found = true
		}
	}
	if !found {
		return nil
	}
	return wrapNFT("remove the strict_mode tables of an earlier run", c.Flush())
}

// create builds the tables afresh (a table left by an earlier run is
// replaced).
func (f *firewall) create() error {
	if f.conn == nil {
		c, err := nftables.New()
		if err != nil {
			return wrapNFT("connect", err)
		}
		f.conn = c
	}
	c := f.conn
	accept := nftables.ChainPolicyAccept
	prio := nftables.ChainPriority(strictPriority)
	for i, v6 := range []bool{false, true} {
		family := nftables.TableFamilyIPv4
		addrType := nftables.TypeIPAddr
		if v6 {
			family, addrType = nftables.TableFamilyIPv6, nftables.TypeIP6Addr
		}
		t := &nftables.Table{Name: StrictTable, Family: family}
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		in := c.AddChain(&nftables.Chain{Name: "in", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: &prio, Policy: &accept})
		out := c.AddChain(&nftables.Chain{Name: "out", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: &prio, Policy: &accept})
		keyType, err := nftables.ConcatSetType(nftables.TypeInetProto, addrType, nftables.TypeInetService)
		if err != nil {
			return err
		}
		fam := &strictFam{v6: v6, t: t,
			vips: &nftables.Set{Table: t, Name: "vips", KeyType: addrType},
			svcs: &nftables.Set{Table: t, Name: "services", KeyType: keyType, Concatenation: true}}
		// IDs of govs's own: google/nftables numbers ID-0 sets from an
		// unsynchronised package variable, which the kernel dataplane's
		// connections use at the same time (an ID is per transaction).
		fam.vips.ID, fam.svcs.ID = 1<<25+uint32(2*i)+1, 1<<25+uint32(2*i)+2
		if err := c.AddSet(fam.vips, nil); err != nil {
			return err
		}
		if err := c.AddSet(fam.svcs, nil); err != nil {
			return err
		}
		for _, ch := range []*nftables.Chain{in, out} {
			dst := ch == in
			if v6 {
				// keepalived: neighbour solicitations and adverts pass,
				// or the VIP could not be resolved nor announced.
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
					&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{135}, ToData: []byte{136}},
					&expr.Verdict{Kind: expr.VerdictAccept},
				}})
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(serviceKey(v6, dst),
				&expr.Lookup{SourceRegister: reg32, SetName: fam.svcs.Name},
				&expr.Verdict{Kind: expr.VerdictAccept})})
			off, l := addrField(v6, dst)
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
				&expr.Lookup{SourceRegister: 1, SetName: fam.vips.Name},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
		}
		f.fams[i] = fam
	}
	if err := c.Flush(); err != nil {
		return wrapNFT("create the strict_mode tables "+StrictTable, err)
	}
	f.ready, f.vips = true, map[netip.Addr]bool{}
	return nil
}

// addrField is the offset and length of the destination (dst) or source
// address in the network header.
func addrField(v6, dst bool) (off, l uint32) {
	switch {
	case v6 && dst:
		return 24, 16
	case v6:
		return 8, 16
	case dst:
		return 16, 4
	}
	return 12, 4
}

// serviceKey loads protocol . address . port (the destination's going in,
// the source's going out) into reg32.
func serviceKey(v6, dst bool) []expr.Any {
	off, l := addrField(v6, dst)
	portOff := uint32(0)
	if dst {
		portOff = 2
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32},
		&expr.Payload{DestRegister: reg32 + 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Payload{DestRegister: reg32 + 1 + l/4, Base: expr.PayloadBaseTransportHeader, Offset: portOff, Len: 2},
	}
}

// svcBytes is a services set key: each field padded to 4 bytes.
func svcBytes(k svcKey) []byte {
	b := []byte{k.proto, 0, 0, 0}
	b = append(b, k.addr.AsSlice()...)
	return append(b, byte(k.port>>8), byte(k.port), 0, 0)
}

// setVIPs adds (on) or removes the addresses from the drop sets.
func (f *firewall) setVIPs(addrs []netip.Addr, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return errors.New("vrrp: nftables: the strict_mode tables are missing")
	}
	for _, fam := range f.fams {
		var elems []nftables.SetElement
		for _, a := range addrs {
			if a.Is6() == fam.v6 && f.vips[a] != on {
				elems = append(elems, nftables.SetElement{Key: a.AsSlice()})
			}
		}
		if len(elems) == 0 {
			continue
		}
		var err error
		if on {
			err = f.conn.SetAddElements(fam.vips, elems)
		} else {
			err = f.conn.SetDeleteElements(fam.vips, elems)
		}
		if err != nil {
			return err
		}
	}
	if err := f.conn.Flush(); err != nil {
		return wrapNFT("update the strict_mode VIPs", err)
	}
	for _, a := range addrs {
		f.vips[a] = on
	}
	return nil
}
