package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Direct routing (forwarding dr, LVS-DR): see docs/dr.md.
//
// The director passes the client's packet on unchanged to the real
// server's MAC: "dup to RIP" routes a copy with FLOWI_FLAG_KNOWN_NH (the
// flag IPVS's DR transmitter uses), so it leaves for RIP's link-layer
// address with its destination still the VIP, and the original is dropped.
// It runs in prerouting at priority raw, before conntrack: DR flows make no
// conntrack entries (conntrack, seeing one direction only, would call
// every packet after the SYN invalid anyway). dup exists only in the ip and
// ip6 families, so DR services live in the tables "ip govs" and "ip6 govs",
// changed in the same transaction as "inet govs":
//
//	chain dr_in    (filter, prerouting, priority raw -300)
//	    ICMP error quoting a pinned flow's reply -> dup to its RIP, drop
//	    (dr_icmp.go)
//	    VIP:port -> jump sNgG
//	chain sNgG     pinned flow (in @flows): refresh, dup to its RIP, drop;
//	               new flow: choose (kernel maps) or NFQUEUE, record in
//	               @flows, dup, drop
//	chain dr_pick  (filter, prerouting, priority raw+1)
//	    queue-scheduled VIP:port -> jump sNgGp: the verdict's mark -> RIP
//	map flows      flow -> RIP, dynamic, with timeouts; made with the
//	               table and never replaced, so no change of the service
//	               chains moves a pinned flow
//	map fresh      flow -> RIP of the flows created in the last
//	               drFreshTimeout (dr_stats.go): what the connection sync
//	               reads often, instead of the whole of flows
//
// A flow is (protocol, client address, client port, VIP, VIP port).

// DR timeouts of the flow map, IPVS's by what the director sees.
const (
	drTCPTimeout = 900 * time.Second // IPVS tcp ESTABLISHED
	drFinTimeout = 120 * time.Second // IPVS tcp FIN_WAIT: the client sent a FIN or RST
	drUDPTimeout = 300 * time.Second // IPVS udp
	// drFlowsMax bounds the flow map of each family; new flows are dropped
	// when it is full.
	drFlowsMax = 1 << 20
	drFlowsMap = "flows"
	// drClosingSet holds the TCP flows whose client sent a FIN or RST:
	// their later packets (the client's last ACK) keep the FIN timeout
	// instead of bringing the flow back to the established one, so closed
	// connections count inactive (lc, wlc) and leave the map in 120 s.
	drClosingSet = "closing"
	// drFreshMap holds each new flow (with its real server) for
	// drFreshTimeout after its first packet: the connection sync reads
	// it every 50 ms or so, a cost that follows the rate of new flows,
	// and reads the whole flow map only seldom (drsync.go).
	drFreshMap     = "fresh"
	drFreshTimeout = 3 * time.Second
)

// nftDynsetOpDelete is NFT_DYNSET_OP_DELETE (x/sys does not have it).
const nftDynsetOpDelete = 2

// NFT_REG32_00: the 4-byte registers.
const reg32 = unix.NFT_REG32_00

// drFam is one family's DR table in a transaction.
type drFam struct {
	v6          bool
	t           *nftables.Table
	in, pick    *nftables.Chain
	flows       *nftables.Set
	closing     *nftables.Set
	fresh       *nftables.Set // nil: new flows are not recorded apart (the probe)
	chains, set []string
}

// drState is what the last transaction left in the DR tables.
type drState struct {
	kept   [2]bool // the family's table exists as the last transaction left it
	chains [2][]string
	sets   [2][]string
}

func famIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// drBegin starts the DR tables' part of a transaction: a family without DR
// plans loses its table (or, at the first transaction, whatever a crashed
// run left); one with DR plans keeps its table, base chains and flow map
// when the last transaction left them, and gets them otherwise.
func (r *ruleset) drBegin(c batch, plans []*plan, replace bool) [2]*drFam {
	var out [2]*drFam
	for f := range 2 {
		v6 := f == 1
		fam := nftables.TableFamilyIPv4
		if v6 {
			fam = nftables.TableFamilyIPv6
		}
		t := &nftables.Table{Name: r.table, Family: fam}
		has := false
		for _, p := range plans {
			has = has || (p.dr && p.v6 == v6)
		}
		kept := r.dr.kept[f] && !replace
		r.dr.kept[f] = false
		if !has {
			if kept || replace {
				c.AddTable(t)
				c.DelTable(t)
			}
			r.dr.chains[f], r.dr.sets[f] = nil, nil
			continue
		}
		accept := nftables.ChainPolicyAccept
		raw := nftables.ChainPriorityRaw
		pick := nftables.ChainPriority(*raw + 1)
		d := &drFam{v6: v6, t: t,
			in: &nftables.Chain{Name: "dr_in", Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookPrerouting, Priority: raw, Policy: &accept},
			pick: &nftables.Chain{Name: "dr_pick", Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookPrerouting, Priority: &pick, Policy: &accept},
			flows: &nftables.Set{Table: t, Name: drFlowsMap, IsMap: true, Dynamic: true, HasTimeout: true,
				Timeout: drTCPTimeout, Size: drFlowsMax, Counter: true, KeyType: drKeyType(v6), DataType: addrType(v6)},
			closing: &nftables.Set{Table: t, Name: drClosingSet, Dynamic: true, HasTimeout: true,
				Timeout: drFinTimeout, Size: drFlowsMax, KeyType: drKeyType(v6)},
			fresh: &nftables.Set{Table: t, Name: drFreshMap, IsMap: true, Dynamic: true, HasTimeout: true,
				Timeout: drFreshTimeout, Size: drFlowsMax, KeyType: drKeyType(v6), DataType: addrType(v6)},
		}
		if kept {
			c.FlushChain(d.in)
			c.FlushChain(d.pick)
			for _, name := range r.dr.chains[f] {
				c.DelChain(&nftables.Chain{Name: name, Table: t})
			}
			for _, name := range r.dr.sets[f] {
				c.DelSet(&nftables.Set{Name: name, Table: t})
			}
		} else {
			c.AddTable(t)
			c.DelTable(t)
			c.AddTable(t)
			c.AddChain(d.in)
			c.AddChain(d.pick)
			c.AddSet(numbered(d.flows), nil)
			c.AddSet(numbered(d.closing), nil)
			c.AddSet(numbered(d.fresh), nil)
		}
		drICMPRules(c, d)
		out[f] = d
	}
	return out
}

// drCommit records a successful transaction's DR tables.
func (r *ruleset) drCommit(fams [2]*drFam) {
	for f, d := range fams {
		if d == nil {
			continue
		}
		r.dr.kept[f], r.dr.chains[f], r.dr.sets[f] = true, d.chains, d.set
	}
}

func addrType(v6 bool) nftables.SetDatatype {
	if v6 {
		return nftables.TypeIP6Addr
	}
	return nftables.TypeIPAddr
}

// drKeyType is the flow map's key: inet_proto . addr . inet_service . addr . inet_service.
func drKeyType(v6 bool) nftables.SetDatatype {
	a := addrType(v6)
	t, err := nftables.ConcatSetType(nftables.TypeInetProto, a, nftables.TypeInetService, a, nftables.TypeInetService)
	if err != nil {
		panic(err) // fixed types: cannot fail
	}
	return t
}

// drRegs are a family's registers: the flow key from reg32+0, the real
// server's address (and the scheduling scratch) after it.
func drRegs(v6 bool) (keyLen, data uint32) {
	if v6 {
		return 44, reg32 + 11 // 1+16+2+16+2 padded: 11 words; data 4 words (11..14), 15 free
	}
	return 20, reg32 + 5
}

// drKey loads the flow's key into reg32+0...
func drKey(v6 bool) []expr.Any {
	off, l, w := uint32(12), uint32(4), uint32(1)
	if v6 {
		off, l, w = 8, 16, 4
	}
	r := uint32(reg32)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r},
		&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Payload{DestRegister: r + 1 + w, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		&expr.Payload{DestRegister: r + 2 + w, Base: expr.PayloadBaseNetworkHeader, Offset: off + l, Len: l},
		&expr.Payload{DestRegister: r + 2 + 2*w, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// drForward is the tail of every forwarding rule: the key is in place and
// the chosen real server's address in the data register. The flow is
// recorded (or refreshed) with timeout, copied to its real server and the
// original dropped. A new flow (isNew: the rules that schedule) is looked
// up again after its record (two first packets racing: the map keeps the
// first one's choice, and both go there) and recorded in the fresh map
// too, with the real server it got. A pinned flow's data register already
// holds the map's value (an update keeps an element's data): no second
// lookup per packet.
func drForward(d *drFam, timeout time.Duration, isNew bool) []expr.Any {
	_, data := drRegs(d.v6)
	e := []expr.Any{
		&expr.Dynset{SrcRegKey: reg32, SrcRegData: data, SetName: d.flows.Name, Operation: unix.NFT_DYNSET_OP_UPDATE,
			Timeout: timeout},
	}
	if isNew {
		e = append(e, &expr.Lookup{SourceRegister: reg32, DestRegister: data, IsDestRegSet: true, SetName: d.flows.Name})
	}
	if isNew && d.fresh != nil {
		e = append(e, &expr.Dynset{SrcRegKey: reg32, SrcRegData: data, SetName: d.fresh.Name,
			Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: drFreshTimeout})
	}
	return append(e, &expr.Dup{RegAddr: data}, &expr.Verdict{Kind: expr.VerdictDrop})
}

func protoTimeout(p *plan) time.Duration {
	if p.proto == unix.IPPROTO_UDP {
		return drUDPTimeout
	}
	return drTCPTimeout
}

// programDR adds p's chains and maps in its family's DR table.
func programDR(x *txn, d *drFam, p *plan, q queueConfig, drain bool) error {
	c, name := x.c, x.chainName(p)
	_, data := drRegs(d.v6)
	ch := c.AddChain(&nftables.Chain{Name: name, Table: d.t})
	d.chains = append(d.chains, name)
	c.AddRule(&nftables.Rule{Table: d.t, Chain: d.in, Exprs: append(matchVIP(p), &expr.Verdict{Kind: expr.VerdictJump, Chain: name})})
	pinned := func(pre []expr.Any, timeout time.Duration) {
		e := append(drKey(d.v6), pre...)
		e = append(e, &expr.Lookup{SourceRegister: reg32, DestRegister: data, IsDestRegSet: true, SetName: d.flows.Name})
		c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: append(e, drForward(d, timeout, false)...)})
	}
	if p.proto == unix.IPPROTO_TCP && !drain {
		if err := drReuse(x, d, p, ch, name); err != nil {
			return err
		}
	}
	if p.proto == unix.IPPROTO_TCP {
		// The client's FIN or RST: IPVS's FIN_WAIT timeout, and the flow
		// is closing from now on.
		k := drKey(d.v6)
		c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: append(append([]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x05}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
		}, k...),
			&expr.Lookup{SourceRegister: reg32, DestRegister: data, IsDestRegSet: true, SetName: d.flows.Name},
			&expr.Dynset{SrcRegKey: reg32, SetName: d.closing.Name, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: drFinTimeout},
		)})
		// A closing flow's packets keep the FIN timeout.
		pinned([]expr.Any{
			&expr.Lookup{SourceRegister: reg32, SetName: d.closing.Name},
		}, drFinTimeout)
	}
	pinned(nil, protoTimeout(p))
	if drain {
		c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
		return nil
	}
	addMap := func(suffix string, keyType nftables.SetDatatype, keys []uint32, vals []netip.Addr) (*nftables.Set, error) {
		s := &nftables.Set{Table: d.t, Name: name + suffix, IsMap: true, KeyType: keyType, DataType: addrType(d.v6),
			KeyByteOrder: binaryutil.NativeEndian}
		var elems []nftables.SetElement
		for i, k := range keys {
			elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(k), Val: vals[i].AsSlice()})
		}
		d.set = append(d.set, s.Name)
		return s, addElements(c, s, elems)
	}
	// slotRule: a new flow to the real server of a generated slot number
	// (gen leaves it in the data register).
	slotRule := func(chain *nftables.Chain, gen []expr.Any) error {
		var keys []uint32
		var vals []netip.Addr
		for i, a := range p.slots {
			if a.IsValid() {
				keys, vals = append(keys, uint32(i)), append(vals, a.Addr())
			}
		}
		if len(keys) == 0 {
			return nil // no real server available: the drop below
		}
		s, err := addMap("_slots", nftables.TypeInteger, keys, vals)
		if err != nil {
			return err
		}
		e := append(gen, &expr.Lookup{SourceRegister: data, DestRegister: data, IsDestRegSet: true, SetName: s.Name, SetID: s.ID})
		e = append(e, drKey(d.v6)...)
		c.AddRule(&nftables.Rule{Table: d.t, Chain: chain, Exprs: append(e, drForward(d, protoTimeout(p), true)...)})
		return nil
	}
	n := uint32(len(p.slots))
	var err error
	switch p.mode {
	case modeInc:
		err = slotRule(ch, []expr.Any{&expr.Numgen{Register: data, Modulus: n, Type: unix.NFT_NG_INCREMENTAL}})
	case modeRandom:
		err = slotRule(ch, []expr.Any{&expr.Numgen{Register: data, Modulus: n, Type: unix.NFT_NG_RANDOM}})
	case modeHash, modeMaglev:
		off, l, w := uint32(12), uint32(4), uint32(1)
		if p.v6 {
			off, l, w = 8, 16, 4
		}
		gen := []expr.Any{&expr.Payload{DestRegister: data, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
		if p.mode == modeMaglev && p.port {
			gen = append(gen, &expr.Payload{DestRegister: data + w, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
			l += 4
		}
		err = slotRule(ch, append(gen,
			&expr.Hash{SourceRegister: data, DestRegister: data, Length: l, Modulus: n, Seed: hashSeed, Type: expr.HashTypeJenkins}))
	case modeQueue:
		// The first packet of a flow not in @flows goes to govs; the
		// verdict's mark names the real server, and dr_pick (the next
		// hook entry after the queue) forwards by it. The bypass flag lets
		// flows through, unmarked, when govs is not listening: dr_pick's
		// round robin takes them.
		info := make([]byte, 8)
		binary.NativeEndian.PutUint16(info[0:], q.base)
		binary.NativeEndian.PutUint16(info[2:], q.total)
		binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass|nfqFlagCPUFanout)
		xinfo := xt.Unknown(info)
		c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: []expr.Any{&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &xinfo}}})
		pname := name + "p"
		pch := c.AddChain(&nftables.Chain{Name: pname, Table: d.t})
		d.chains = append(d.chains, pname)
		if p.fwmark != 0 {
			// The verdict replaced the operator's mark with the real
			// server's: jump by those, or by the service's mark when the
			// queue was bypassed (fwmark.go).
			marks := []uint32{p.fwmark}
			for m := range p.marks {
				marks = append(marks, m)
			}
			slices.Sort(marks)
			for _, m := range marks {
				c.AddRule(&nftables.Rule{Table: d.t, Chain: d.pick, Exprs: append(markMatch(p, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, m),
					&expr.Verdict{Kind: expr.VerdictJump, Chain: pname})})
			}
		} else {
			c.AddRule(&nftables.Rule{Table: d.t, Chain: d.pick, Exprs: append(matchVIP(p), &expr.Verdict{Kind: expr.VerdictJump, Chain: pname})})
		}
		if len(p.marks) > 0 {
			var keys []uint32
			var vals []netip.Addr
			for m, a := range p.marks {
				keys, vals = append(keys, m), append(vals, a.Addr())
			}
			s, err := addMap("_marks", nftables.TypeMark, keys, vals)
			if err != nil {
				return err
			}
			e := []expr.Any{
				&expr.Meta{Key: expr.MetaKeyMARK, Register: data},
				&expr.Lookup{SourceRegister: data, DestRegister: data, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
			}
			e = append(e, restoreMark(p)...)
			e = append(e, drKey(d.v6)...)
			c.AddRule(&nftables.Rule{Table: d.t, Chain: pch, Exprs: append(e, drForward(d, protoTimeout(p), true)...)})
		}
		// Fail-open fallback: unmarked flows go round-robin.
		if err := slotRule(pch, []expr.Any{&expr.Numgen{Register: data, Modulus: n, Type: unix.NFT_NG_INCREMENTAL}}); err != nil {
			return err
		}
		c.AddRule(&nftables.Rule{Table: d.t, Chain: pch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
		return nil
	}
	if err != nil {
		return fmt.Errorf("dr: %w", err)
	}
	c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	return nil
}

// drReuse adds the rules that let a new connection reusing a pinned flow's
// client port be scheduled afresh when the flow was closing (the client
// sent a FIN or RST; with mh, always) or its real server takes no new flows
// (down, drained, removed), as IPVS's conn_reuse_mode does: a SYN
// without ACK whose pinned real server is not among the available ones
// deletes the pin and goes on to the scheduling rules. Without it a client
// that a dead real server refused would keep going back to it on that
// port (a refused connect leaves no TIME_WAIT, so clients reuse the port at
// once) for the flow map's timeout.
func drReuse(x *txn, d *drFam, p *plan, ch *nftables.Chain, name string) error {
	c := x.c
	_, data := drRegs(d.v6)
	var elems []nftables.SetElement
	seen := map[netip.Addr]bool{}
	for _, a := range p.slots {
		if a.IsValid() && !seen[a.Addr()] {
			seen[a.Addr()] = true
			elems = append(elems, nftables.SetElement{Key: a.Addr().AsSlice()})
		}
	}
	s := &nftables.Set{Table: d.t, Name: name + "_up", KeyType: addrType(d.v6)}
	d.set = append(d.set, s.Name)
	if err := addElements(c, s, elems); err != nil {
		return err
	}
	e := []expr.Any{
		// tcp flags & (syn|ack) == syn
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
	}
	e = append(e, drKey(d.v6)...)
	e = append(e,
		&expr.Lookup{SourceRegister: reg32, DestRegister: data, IsDestRegSet: true, SetName: d.flows.Name},
		&expr.Lookup{SourceRegister: data, SetName: s.Name, SetID: s.ID, Invert: true},
		// (a map's dynset needs a data register, even to delete)
		&expr.Dynset{SrcRegKey: reg32, SrcRegData: data, SetName: d.flows.Name, Operation: nftDynsetOpDelete},
	)
	c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: e})
	// A new connection on the key of one the client closed is scheduled
	// afresh too (IPVS reuses a TIME_WAIT connection's entry the same way),
	// not sent to the closed one's real server. With mh every SYN is: the
	// table gives a retransmitted SYN the same real server anyway, and a
	// pin this director kept for a flow the router moved elsewhere (its FIN
	// never came here) would otherwise send a new connection on that port
	// to what an earlier connection got here (under another scheduler, or
	// another set) while every other director picks by the table.
	syn := append([]expr.Any{}, e[:3]...)
	syn = append(syn, drKey(d.v6)...)
	if p.mode != modeMaglev {
		syn = append(syn, &expr.Lookup{SourceRegister: reg32, SetName: d.closing.Name})
	}
	c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: append(syn,
		&expr.Lookup{SourceRegister: reg32, DestRegister: data, IsDestRegSet: true, SetName: d.flows.Name},
		&expr.Dynset{SrcRegKey: reg32, SrcRegData: data, SetName: d.flows.Name, Operation: nftDynsetOpDelete},
	)})
	// A new connection on a closed one's key (a SYN) is not closing.
	e = append([]expr.Any{}, e[:3]...)
	e = append(e, drKey(d.v6)...)
	c.AddRule(&nftables.Rule{Table: d.t, Chain: ch, Exprs: append(e,
		&expr.Dynset{SrcRegKey: reg32, SetName: d.closing.Name, Operation: nftDynsetOpDelete})})
	return nil
}
