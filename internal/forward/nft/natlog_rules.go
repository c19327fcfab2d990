package nft

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The mark rules: conntrack does not record who reset a flow or who
// closed first, which the termination code needs (natlog_code.go). While
// the access log of kernel-forwarded flows is on, two tables of their own,
// "ip TABLE_log" and "ip6 TABLE_log" (govs_log by default), mark the TCP
// flows of govs's services as such, and on them the direction of the first
// RST and of the first FIN, in five high bits of the conntrack mark, which
// conntrack's destroy event carries:
//
//	set vips  the addresses of the nat and fullnat services
//	chain marks (filter, prerouting, priority mangle -150)
//	    tcp, ct direction original, no govs bit, ip daddr @vips: ct mark set ct mark | govs
//	    tcp flags rst, govs bit and no RST bit, ct direction original:
//	        ct mark set ct mark | client-RST
//	    the same for reply (server-RST), and for FIN (client-FIN, server-FIN)
//
// Tables apart from govs's rules, so that they come and go with the
// access log without touching them. By address (nft shows no
// concatenation with a flow's original port): the TCP flows to other
// ports of a VIP get the bits too, harmless to them. govs's own use of the
// conntrack mark (the real server chosen through NFQUEUE, small numbers)
// is read at a flow's first packet only; it overwrites the whole mark
// then, and the next packet from the client sets the govs bit again.

// labelTable is the name of the mark rules' tables.
func labelTable(table string) string { return table + "_log" }

// markRule is one mark rule: a TCP flag seen in a direction on a flow of
// govs's sets a bit unless one of the bits of seen is set already.
type markRule struct {
	flag byte   // TCP flag
	seen uint32 // mark bits that say it was seen already
	dir  byte   // conntrack direction: 0 original, 1 reply
	mark uint32 // the bit to set
}

var markRules = []markRule{
	{0x04, markRST, 0, markClientRST},
	{0x04, markRST, 1, markServerRST},
	{0x01, markFIN, 0, markClientFIN},
	{0x01, markFIN, 1, markServerFIN},
}

// markTables are the mark tables and their sets, IPv4 then IPv6.
func markTables(table string) (ts [2]*nftables.Table, sets [2]*nftables.Set) {
	for i, f := range []struct {
		fam  nftables.TableFamily
		addr nftables.SetDatatype
	}{{nftables.TableFamilyIPv4, nftables.TypeIPAddr}, {nftables.TableFamilyIPv6, nftables.TypeIP6Addr}} {
		ts[i] = &nftables.Table{Name: labelTable(table), Family: f.fam}
		sets[i] = &nftables.Set{Table: ts[i], Name: "vips", KeyType: f.addr}
	}
	return ts, sets
}

// programMarks replaces the mark tables of the namespace c programs, with
// the services vips.
func programMarks(c *nftables.Conn, table string, vips []vipKey) error {
	ts, sets := markTables(table)
	elems := vipElements(vips)
	for i, t := range ts {
		// Add, delete, add: one left by a crashed run goes.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		if err := c.AddSet(numbered(sets[i]), elems[i]); err != nil {
			return err
		}
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "marks", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: govsExprs(sets[i], i == 1)})
		for _, r := range markRules {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs()})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: mark rules (tables ip and ip6 %s): %w", labelTable(table), err)
	}
	return nil
}

// setMarkVIPs replaces the services in the mark tables' sets.
func setMarkVIPs(c *nftables.Conn, table string, vips []vipKey) error {
	_, sets := markTables(table)
	elems := vipElements(vips)
	for i, s := range sets {
		c.FlushSet(s)
		if err := c.SetAddElements(s, elems[i]); err != nil {
			return err
		}
	}
	return c.Flush()
}

// vipElements are the set elements of the addresses of vips, IPv4 then
// IPv6.
func vipElements(vips []vipKey) (out [2][]nftables.SetElement) {
	seen := map[netip.Addr]bool{}
	for _, k := range vips {
		a := k.addr.Addr().Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		i := 0
		if a.Is6() {
			i = 1
		}
		out[i] = append(out[i], nftables.SetElement{Key: a.AsSlice()})
	}
	return out
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// markExprs: ct mark & mask == want.
func markIs(mask, want uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(want)},
	}
}

// setMark: ct mark set ct mark | bit.
func setMark(bit uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^bit), Xor: u32(bit)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}
}

func isTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

func direction(dir byte) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{dir}},
	}
}

// govsExprs: meta l4proto tcp, ct direction original, ct mark & govs ==
// 0, ip daddr @set: ct mark set ct mark | govs.
func govsExprs(set *nftables.Set, v6 bool) []expr.Any {
	off, l := uint32(16), uint32(4)
	if v6 {
		off, l = 24, 16
	}
	e := append(isTCP(), direction(0)...)
	e = append(e, markIs(markGovs, 0)...)
	e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
	return append(e, setMark(markGovs)...)
}

// exprs: meta l4proto tcp, tcp flags & flag != 0, ct mark & (govs|seen)
// == govs, ct direction dir: ct mark set ct mark | mark.
func (r markRule) exprs() []expr.Any {
	e := append(isTCP(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{r.flag}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}})
	e = append(e, markIs(markGovs|r.seen, markGovs)...)
	e = append(e, direction(r.dir)...)
	return append(e, setMark(r.mark)...)
}

// removeMarks deletes the mark tables, if they are there.
func removeMarks(c *nftables.Conn, table string) error { return removeTable(c, labelTable(table)) }

// sortedVIPs are the keys of m in a stable order.
func sortedVIPs[V any](m map[vipKey]V) []vipKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b vipKey) int {
		if a.proto != b.proto {
			return int(a.proto) - int(b.proto)
		}
		return a.addr.Compare(b.addr)
	})
}
