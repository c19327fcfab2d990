package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The label rules: conntrack does not record who reset a flow or who
// closed first, which the termination code needs (natlog_code.go). While
// the access log of kernel-forwarded flows is on, a table of its own,
// "inet TABLE_log" (govs_log by default), holds one chain at prerouting
// (after conntrack, before NAT) whose four rules mark, on the translated
// flows only (ct status dnat), the direction of the first RST and of the
// first FIN in four conntrack labels:
//
//	chain labels (filter, prerouting, priority mangle -150)
//	    tcp flags rst, no RST label yet, ct direction original: label client-RST
//	    tcp flags rst, no RST label yet, ct direction reply:    label server-RST
//	    tcp flags fin, no FIN label yet, ...: label client-FIN / server-FIN
//
// A table apart from govs's rules, so that it comes and goes with the
// access log without touching them. Labels cost 16 bytes per conntrack
// entry while the table exists (the kernel adds the labels extension to
// the flows created after the first label rule).

// labelTable is the name of the label rules' table.
func labelTable(table string) string { return table + "_log" }

// programLabels replaces the label table of the namespace c programs.
func programLabels(c *nftables.Conn, table string) error {
	t := &nftables.Table{Name: labelTable(table), Family: nftables.TableFamilyINet}
	// Add, delete, add: one left by a crashed run goes.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "labels", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	for _, r := range []struct {
		flag  byte // TCP flag
		seen  byte // labels that say it was seen already
		dir   byte // conntrack direction: 0 original, 1 reply
		label byte // label to set
	}{
		{0x04, labelRST, 0, labelClientRST},
		{0x04, labelRST, 1, labelServerRST},
		{0x01, labelFIN, 0, labelClientFIN},
		{0x01, labelFIN, 1, labelServerFIN},
	} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: labelRule(r.flag, r.seen, r.dir, r.label)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: label rules (table inet %s): %w", labelTable(table), err)
	}
	return nil
}

// labelRule: meta l4proto tcp, tcp flags & flag != 0, ct status & dnat !=
// 0, ct label & seen == 0, ct direction dir: ct label set label.
func labelRule(flag, seen, dir, label byte) []expr.Any {
	var mask, set, zero [16]byte
	mask[labelByte], set[labelByte] = seen, label
	status := make([]byte, 4)
	binary.NativeEndian.PutUint32(status, 1<<5) // IPS_DST_NAT
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{flag}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: status, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Ct{Key: expr.CtKeyLABELS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask[:], Xor: zero[:]},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: zero[:]},
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{dir}},
		&expr.Immediate{Register: 1, Data: set[:]},
		&expr.Ct{Key: expr.CtKeyLABELS, Register: 1, SourceRegister: true},
	}
}

// removeLabels deletes the label table, if it is there.
func removeLabels(c *nftables.Conn, table string) error {
	t := &nftables.Table{Name: labelTable(table), Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	return c.Flush()
}
