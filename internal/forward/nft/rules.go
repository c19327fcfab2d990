package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// queueConfig is where the first packets of queue-scheduled flows go.
type queueConfig struct {
	base, total uint16
}

// NFQUEUE target flags (xt_NFQ_info_v3.flags).
const (
	nfqFlagBypass    = 0x1
	nfqFlagCPUFanout = 0x2
)

// batch is the part of *nftables.Conn a transaction is written with: the
// kernel's connection, or in the golden tests a recorder that prints what
// the kernel would be sent (rules_golden_test.go).
type batch interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	DelChain(*nftables.Chain)
	FlushChain(*nftables.Chain)
	AddRule(*nftables.Rule) *nftables.Rule
	AddSet(*nftables.Set, []nftables.SetElement) error
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	DelSet(*nftables.Set)
	Flush() error
}

var _ batch = (*nftables.Conn)(nil)

// queuePriority is the queue chain's: just after mangle (-150), so that an
// operator's marks set in mangle (iptables -t mangle, LVS's classic recipe
// for firewall-mark services) are in place whichever table was loaded first
// (of chains of one priority, the one registered last runs first).
var queuePriority = nftables.ChainPriorityRef(*nftables.ChainPriorityMangle + 1)

// ruleset is govs's table as the last transaction left it, so that the
// next one changes only what it must.
type ruleset struct {
	table string // the table's name (family inet)
	// kept: the table holds the base chains and the service chains and
	// maps listed below, exactly as the last transaction left them, so the
	// next one updates them in place. False at first (the table may be a
	// crashed run's, or not exist) and after a failed transaction (what
	// the kernel holds is not known for sure): the next one replaces the
	// table.
	kept   bool
	gen    uint64   // generation of the service chains and maps in force
	chains []string // service chains of generation gen
	sets   []string // maps of generation gen
	dr     drState  // the DR tables "ip govs" and "ip6 govs" (dr.go)
}

// program makes the table serve plans, in one transaction, so packets see
// either the old or the new rules, never a mix. With drain set the
// services take no new flows (shutdown): their VIPs drop them, while
// established flows keep being translated by conntrack.
//
// The first transaction (and the next after a failed one) replaces the
// whole table: it removes what a crashed run left. Later ones keep the
// table and its base chains, whose hooks stay registered: deleting a base
// chain unregisters its hook, and the kernel then drops the packets queued
// to govs through NFQUEUE at that moment, which cost their clients a SYN
// retransmit (1 s). They flush the base chains' rules, delete the service
// chains and maps of the previous generation, and add the new generation's
// under new names ("s0g7", "s0g7_slots": the generation in the name, so
// that no name is deleted and added in one batch), with the base chains'
// rules that jump to and look up them.
func (r *ruleset) program(c batch, plans []*plan, q queueConfig, drain bool) error {
	t := &nftables.Table{Name: r.table, Family: nftables.TableFamilyINet}
	accept := nftables.ChainPolicyAccept
	queue := &nftables.Chain{Name: "queue", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: queuePriority, Policy: &accept}
	dnat := &nftables.Chain{Name: "dnat", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept}
	snat := &nftables.Chain{Name: "snat", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept}
	kept := r.kept
	// Whatever happens now, the table is known again only once the
	// transaction has succeeded.
	r.kept = false
	if kept {
		// Rules first: the jumps to the old chains and the lookups of the
		// old maps go with them, then the chains (with their rules), then
		// the maps nothing uses any more.
		for _, ch := range []*nftables.Chain{queue, dnat, snat} {
			c.FlushChain(ch)
		}
		for _, name := range r.chains {
			c.DelChain(&nftables.Chain{Name: name, Table: t})
		}
		for _, name := range r.sets {
			c.DelSet(&nftables.Set{Name: name, Table: t})
		}
	} else {
		// Add, delete, add: replaces a table left by an earlier run and
		// does not fail when there is none.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		for _, ch := range []*nftables.Chain{queue, dnat, snat} {
			c.AddChain(ch)
		}
		holdConntrack(c, t)
	}
	x := &txn{c: c, t: t, gen: r.gen + 1}
	fams := r.drBegin(c, plans, !kept)
	for _, p := range plans {
		if p.dr {
			if err := programDR(x, fams[famIndex(p.v6)], p, q, drain || p.retired); err != nil {
				return fmt.Errorf("%s: %w", p.svc, err)
			}
			continue
		}
		if drain {
			c.AddRule(&nftables.Rule{Table: t, Chain: dnat, Exprs: append(matchVIP(p), &expr.Verdict{Kind: expr.VerdictDrop})})
			continue
		}
		if err := programService(x, p, queue, dnat, snat, q); err != nil {
			return fmt.Errorf("%s: %w", p.svc, err)
		}
	}
	if err := c.Flush(); err != nil {
		return err
	}
	r.kept, r.gen, r.chains, r.sets = true, x.gen, x.chains, x.sets
	r.drCommit(fams)
	return nil
}

// holdChain is the name of the chain that keeps conntrack on.
const holdChain = "hold_conntrack"

// holdConntrack adds a chain that no packet ever enters, whose one rule
// reads the conntrack state: it keeps conntrack running in the namespace,
// for IPv4 and IPv6, as long as the table exists.
//
// The kernel looks packets up in conntrack (and so translates them by
// their flow's NAT binding) only while some rule of the namespace needs
// conntrack: each ct, nat, masq or queue-by-ct expression takes a
// reference (nf_ct_netns_get), and when the last one goes the conntrack
// hooks are unregistered. Their entries stay listed, ESTABLISHED, but the
// next packet of each flow is no longer translated: it reaches the
// director's own stack, which answers the client with a reset from the
// VIP. Draining (whose rules only drop new flows) and a reload that
// removes the last kernel service delete every dnat and ct expression, so
// without this rule, in a namespace where nothing else uses conntrack,
// they reset every established flow at once. The rule lives in a regular
// chain nothing jumps to: it costs no packet anything, and it goes only
// with the table (Close, at the end of the grace period).
func holdConntrack(c batch, t *nftables.Table) {
	ch := c.AddChain(&nftables.Chain{Name: holdChain, Table: t})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
	}})
}

// txn is one generation's service chains and maps being added.
type txn struct {
	c            batch
	t            *nftables.Table
	gen          uint64
	chains, sets []string // added so far
}

// chainName is the name of p's chain in this generation: "s0g7".
func (x *txn) chainName(p *plan) string { return fmt.Sprintf("%sg%d", p.chain, x.gen) }

func (x *txn) addChain(name string) *nftables.Chain {
	x.chains = append(x.chains, name)
	return x.c.AddChain(&nftables.Chain{Name: name, Table: x.t})
}

// addSet adds s with elems (see addElements).
func (x *txn) addSet(s *nftables.Set, elems []nftables.SetElement) error {
	x.sets = append(x.sets, s.Name)
	return addElements(x.c, s, elems)
}

// hashSeed is the jhash seed of sh's and mh's lookups ("govs"): fixed, so
// that a client keeps its server across restarts and rebuilds, and two
// directors with the same configuration agree.
const hashSeed = 0x676f7673

// maxElemsPerMsg bounds the elements of one netlink message: a message's
// element list is one netlink attribute, whose length field is 16 bits
// (about 1,600 map elements), and the library does not split it.
const maxElemsPerMsg = 512

// addElements adds set s with elems, in several messages of the same
// transaction when they are many (a Maglev map has thousands).
func addElements(c batch, s *nftables.Set, elems []nftables.SetElement) error {
	n := min(len(elems), maxElemsPerMsg)
	if err := c.AddSet(numbered(s), elems[:n]); err != nil {
		return err
	}
	for elems = elems[n:]; len(elems) > 0; elems = elems[n:] {
		n = min(len(elems), maxElemsPerMsg)
		if err := c.SetAddElements(s, elems[:n]); err != nil {
			return err
		}
	}
	return nil
}

// socketBuffer is the send and receive buffer of the nftables socket. A
// transaction is one sendmsg, which the kernel refuses (EMSGSIZE) when it
// is larger than the send buffer, and a Maglev map alone is about 160 KB,
// near the default 208 KB; each of its messages is acknowledged, about a
// kilobyte of receive buffer each (ENOBUFS past 200 or so).
const socketBuffer = 32 << 20

// bigBuffers raises c's buffers to socketBuffer, past net.core.wmem_max
// and rmem_max when it can (root: SO_SNDBUFFORCE, SO_RCVBUFFORCE).
func bigBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBuffer); err != nil {
				serr = errors.Join(serr, unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBuffer))
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// removeTable deletes the table, and the DR tables of that name, if they
// exist.
func removeTable(c *nftables.Conn, name string) error {
	for _, f := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		t := &nftables.Table{Name: name, Family: f}
		c.AddTable(t)
		c.DelTable(t)
	}
	return c.Flush()
}

// programService adds p's chain and maps, and its rules in the base chains.
func programService(x *txn, p *plan, queue, dnat, snat *nftables.Chain, q queueConfig) error {
	c, t, name := x.c, x.t, x.chainName(p)
	ch := x.addChain(name)
	c.AddRule(&nftables.Rule{Table: t, Chain: dnat, Exprs: append(matchNew(p), &expr.Verdict{Kind: expr.VerdictJump, Chain: name})})

	natFam, protoReg := uint32(unix.NFPROTO_IPV4), uint32(unix.NFT_REG32_01)
	addrType := nftables.TypeIPAddr
	if p.v6 {
		natFam, protoReg, addrType = unix.NFPROTO_IPV6, unix.NFT_REG32_04, nftables.TypeIP6Addr
	}
	dataType, err := nftables.ConcatSetType(addrType, nftables.TypeInetService)
	if err != nil {
		return err
	}
	dnatTo := &expr.NAT{Type: expr.NATTypeDestNAT, Family: natFam, RegAddrMin: 1, RegProtoMin: protoReg, Specified: true}
	if p.noPort {
		// Real servers without a port (fwmark.go): the address alone, the
		// packet keeps its destination port.
		dataType, dnatTo = addrType, &expr.NAT{Type: expr.NATTypeDestNAT, Family: natFam, RegAddrMin: 1}
	}
	if p.fwmark != 0 && p.mode != modeQueue {
		c.AddRule(&nftables.Rule{Table: t, Chain: queue, Exprs: fwmQueueRule(p, nil)})
	}

	// addMap adds a map from a 4-byte key to real servers.
	addMap := func(suffix string, keyType nftables.SetDatatype, keys []uint32, vals []netip.AddrPort) (*nftables.Set, error) {
		s := &nftables.Set{Table: t, Name: name + suffix, IsMap: true, KeyType: keyType, DataType: dataType,
			KeyByteOrder: binaryutil.NativeEndian}
		var elems []nftables.SetElement
		for i, k := range keys {
			elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(k), Val: natData(p, vals[i])})
		}
		return s, x.addSet(s, elems)
	}
	lookup := func(s *nftables.Set) *expr.Lookup {
		return &expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: s.Name, SetID: s.ID}
	}
	// slotRule: DNAT by a generated slot number over the kernel map.
	slotRule := func(gen []expr.Any) error {
		var keys []uint32
		var vals []netip.AddrPort
		for i, a := range p.slots {
			if a.IsValid() {
				keys, vals = append(keys, uint32(i)), append(vals, a)
			}
		}
		if len(keys) == 0 {
			return nil // no real server available: the drop below
		}
		s, err := addMap("_slots", nftables.TypeInteger, keys, vals)
		if err != nil {
			return err
		}
		exprs := append(gen, lookup(s), dnatTo)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
		return nil
	}
	n := uint32(len(p.slots))
	switch p.mode {
	case modeInc:
		err = slotRule([]expr.Any{&expr.Numgen{Register: 1, Modulus: n, Type: unix.NFT_NG_INCREMENTAL}})
	case modeRandom:
		err = slotRule([]expr.Any{&expr.Numgen{Register: 1, Modulus: n, Type: unix.NFT_NG_RANDOM}})
	case modeHash:
		off, l := uint32(12), uint32(4)
		if p.v6 {
			off, l = 8, 16
		}
		err = slotRule([]expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
			&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: l, Modulus: n, Seed: hashSeed, Type: expr.HashTypeJenkins},
		})
	case modeMaglev:
		// jhash ip saddr [. th sport] mod M: the port is loaded into the
		// register after the address, and the hash covers both, each
		// padded to 4 bytes as nft's concatenations are.
		off, l, portReg := uint32(12), uint32(4), uint32(unix.NFT_REG32_01)
		if p.v6 {
			off, l, portReg = 8, 16, unix.NFT_REG32_04
		}
		gen := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l}}
		if p.port {
			gen = append(gen, &expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
			l += 4
		}
		err = slotRule(append(gen,
			&expr.Hash{SourceRegister: 1, DestRegister: 1, Length: l, Modulus: n, Seed: hashSeed, Type: expr.HashTypeJenkins}))
	case modeQueue:
		// The first packet of a new flow goes to govs, which marks it
		// with the chosen real server (see queue.go). The rule's bypass
		// flag lets flows through when govs is not listening.
		info := make([]byte, 8)
		binary.NativeEndian.PutUint16(info[0:], q.base)
		binary.NativeEndian.PutUint16(info[2:], q.total)
		binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass|nfqFlagCPUFanout)
		xinfo := xt.Unknown(info)
		target := &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &xinfo}
		if p.fwmark != 0 {
			c.AddRule(&nftables.Rule{Table: t, Chain: queue, Exprs: fwmQueueRule(p, target)})
		} else {
			// ct status & confirmed == 0: only the flow's first packet.
			c.AddRule(&nftables.Rule{Table: t, Chain: queue, Exprs: append(append(matchVIP(p), unconfirmed()...), target)})
		}
		if len(p.marks) > 0 {
			var keys []uint32
			var vals []netip.AddrPort
			for m, a := range p.marks {
				keys, vals = append(keys, m), append(vals, a)
			}
			s, err := addMap("_marks", nftables.TypeMark, keys, vals)
			if err != nil {
				return err
			}
			if p.fwmark != 0 {
				// dnat to meta mark map @sNgG_marks, the packet mark set
				// back to the service's: the conntrack mark stays the
				// service's (fwmark.go).
				e := []expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, lookup(s)}
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(append(e, restoreMark(p)...), dnatTo)})
			} else {
				// ct mark set meta mark; meta mark set 0; dnat to ct mark map @sNgG_marks
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
					&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
					&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
					&expr.Immediate{Register: 1, Data: make([]byte, 4)},
					&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
					&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
					lookup(s), dnatTo,
				}})
			}
		}
		// Fail-open fallback: unmarked flows (bypass, full queue) go
		// round-robin over the available servers.
		err = slotRule([]expr.Any{&expr.Numgen{Register: 1, Modulus: n, Type: unix.NFT_NG_INCREMENTAL}})
	}
	if err != nil {
		return err
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	if p.fullnat {
		return programSNAT(x, p, snat)
	}
	return nil
}

// programSNAT adds fullnat's source translation for flows to p's VIP.
func programSNAT(x *txn, p *plan, snat *nftables.Chain) error {
	c, t := x.c, x.t
	fam := uint32(unix.NFPROTO_IPV4)
	if p.v6 {
		fam = unix.NFPROTO_IPV6
	}
	// "ct original daddr": google/nftables sends no direction with the
	// newer dst_ip key, which the kernel refuses, so the original
	// destination is loaded with the generic key, 16 bytes in an inet
	// table, into a register zeroed first (an IPv4 address fills 4).
	vip := make([]byte, 16)
	copy(vip, p.vip.Addr().AsSlice())
	port := binary.BigEndian.AppendUint16(nil, p.vip.Port())
	match := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(nfproto(p.v6))}},
		&expr.Immediate{Register: 1, Data: make([]byte, 16)},
		&expr.Ct{Key: expr.CtKeyDST, Register: 1, Direction: 0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
		&expr.Ct{Key: expr.CtKeyPROTODST, Register: 1, Direction: 0},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
	}
	if p.fwmark != 0 {
		match = matchCtMark(p) // every flow of the service, whatever its VIP
	}
	switch {
	case p.snatR != nil:
		match = append(match,
			&expr.Immediate{Register: 1, Data: p.snatR.First.AsSlice()},
			&expr.Immediate{Register: 2, Data: p.snatR.Last.AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: 1, RegAddrMax: 2})
	case len(p.snat) > 0:
		addrType := nftables.TypeIPAddr
		if p.v6 {
			addrType = nftables.TypeIP6Addr
		}
		s := &nftables.Set{Table: t, Name: x.chainName(p) + "_snat", IsMap: true, KeyType: nftables.TypeInteger,
			DataType: addrType, KeyByteOrder: binaryutil.NativeEndian}
		var elems []nftables.SetElement
		for i, a := range p.snat {
			elems = append(elems, nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), Val: a.AsSlice()})
		}
		if err := x.addSet(s, elems); err != nil {
			return err
		}
		match = append(match,
			&expr.Numgen{Register: 1, Modulus: uint32(len(p.snat)), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: s.Name, SetID: s.ID},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: 1})
	default:
		match = append(match, &expr.Masq{})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: snat, Exprs: match})
	return nil
}

func nfproto(v6 bool) int {
	if v6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// matchVIP matches packets to p's VIP:port and protocol, or a fwmark
// service's packets by their mark (matchMark).
func matchVIP(p *plan) []expr.Any {
	if p.fwmark != 0 {
		return matchMark(p)
	}
	off, l := uint32(16), uint32(4)
	if p.v6 {
		off, l = 24, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(nfproto(p.v6))}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.vip.Addr().AsSlice()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p.proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p.vip.Port())},
	}
}

// addrPortData is a map value of type "ipv4_addr . inet_service" (or
// ipv6_addr): the address, then the port in network order padded to 4 bytes.
func addrPortData(a netip.AddrPort) []byte {
	b := a.Addr().AsSlice()
	b = binary.BigEndian.AppendUint16(b, a.Port())
	return append(b, 0, 0)
}

// ipsConfirmedBit is IPS_CONFIRMED_BIT of nf_conntrack_common.h.
const ipsConfirmedBit = 3
