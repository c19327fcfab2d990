package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// recorder is a batch that prints a transaction instead of sending it:
// what the golden tests compare (rules_golden_test.go). The text is
// nft-like, one line per object, registers named r0 (the 16-byte
// NFT_REG_VERDICT..4 are r0-r4) and w0..w15 (the 4-byte NFT_REG32_xx).
type recorder struct {
	b strings.Builder
}

func tableName(t *nftables.Table) string {
	fam := map[nftables.TableFamily]string{nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip",
		nftables.TableFamilyIPv6: "ip6"}[t.Family]
	return fam + " " + t.Name
}

func (r *recorder) line(format string, a ...any) { fmt.Fprintf(&r.b, format+"\n", a...) }

func (r *recorder) AddTable(t *nftables.Table) *nftables.Table {
	r.line("add table %s", tableName(t))
	return t
}

func (r *recorder) DelTable(t *nftables.Table) { r.line("delete table %s", tableName(t)) }

func (r *recorder) AddChain(c *nftables.Chain) *nftables.Chain {
	if c.Hooknum != nil {
		pol := ""
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyAccept {
			pol = "; policy accept"
		}
		r.line("add chain %s %s { type %s hook %s priority %d%s }", tableName(c.Table), c.Name, c.Type,
			hookName(*c.Hooknum), *c.Priority, pol)
	} else {
		r.line("add chain %s %s", tableName(c.Table), c.Name)
	}
	return c
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprint(h)
}

func (r *recorder) DelChain(c *nftables.Chain) {
	r.line("delete chain %s %s", tableName(c.Table), c.Name)
}
func (r *recorder) FlushChain(c *nftables.Chain) {
	r.line("flush chain %s %s", tableName(c.Table), c.Name)
}
func (r *recorder) DelSet(s *nftables.Set) { r.line("delete set %s %s", tableName(s.Table), s.Name) }
func (r *recorder) Flush() error           { r.line("commit"); return nil }

func (r *recorder) AddRule(rl *nftables.Rule) *nftables.Rule {
	parts := make([]string, len(rl.Exprs))
	for i, e := range rl.Exprs {
		parts[i] = exprText(e)
	}
	r.line("add rule %s %s: %s", tableName(rl.Table), rl.Chain.Name, strings.Join(parts, "; "))
	return rl
}

func (r *recorder) AddSet(s *nftables.Set, elems []nftables.SetElement) error {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{s.IsMap, "map"}, {s.Dynamic, "dynamic"}, {s.HasTimeout, "timeout " + s.Timeout.String()}, {s.Counter, "counter"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	if s.Size > 0 {
		flags = append(flags, fmt.Sprintf("size %d", s.Size))
	}
	typ := s.KeyType.Name
	if s.IsMap {
		typ += " : " + s.DataType.Name
	}
	if len(flags) > 0 {
		typ += "; " + strings.Join(flags, ", ")
	}
	r.line("add set %s %s { %s }", tableName(s.Table), s.Name, typ)
	return r.SetAddElements(s, elems)
}

// maxListed is how many elements of a set are listed one by one; larger
// ones (Maglev maps) are summarised: their count per value and a digest.
const maxListed = 64

func (r *recorder) SetAddElements(s *nftables.Set, elems []nftables.SetElement) error {
	if len(elems) == 0 {
		return nil
	}
	// Sorted: the kernel keeps no order, and the plan's marks come from a
	// map.
	order := make([]int, len(elems))
	texts := make([]string, len(elems))
	for i, e := range elems {
		order[i], texts[i] = i, elemText(s, e)
	}
	sort.SliceStable(order, func(a, b int) bool { return elemLess(texts[order[a]], texts[order[b]]) })
	sorted := make([]string, len(elems))
	for i, j := range order {
		sorted[i] = texts[j]
	}
	texts = sorted
	if len(elems) <= maxListed {
		r.line("add element %s %s { %s }", tableName(s.Table), s.Name, strings.Join(texts, ", "))
		return nil
	}
	count := map[string]int{}
	h := sha256.New()
	for i, e := range elems {
		count[valueText(s, e.Val)]++
		h.Write([]byte(texts[i] + "\n"))
	}
	var vals []string
	for v, n := range count {
		vals = append(vals, fmt.Sprintf("%s x%d", v, n))
	}
	sort.Strings(vals)
	r.line("add element %s %s { %d elements: %s; sha256 %x }", tableName(s.Table), s.Name, len(elems),
		strings.Join(vals, ", "), h.Sum(nil)[:8])
	return nil
}

// elemLess orders elements by their leading number, if they have one,
// then as text.
func elemLess(a, b string) bool {
	var x, y int
	_, ea := fmt.Sscan(strings.TrimSuffix(strings.SplitN(a, ":", 2)[0], ":"), &x)
	_, eb := fmt.Sscan(strings.TrimSuffix(strings.SplitN(b, ":", 2)[0], ":"), &y)
	if ea == nil && eb == nil && x != y {
		return x < y
	}
	return a < b
}

func elemText(s *nftables.Set, e nftables.SetElement) string {
	var k string
	switch {
	case s.KeyByteOrder == binaryutil.NativeEndian && len(e.Key) == 4: // a number
		k = fmt.Sprint(binary.NativeEndian.Uint32(e.Key))
	default:
		k = valueText(s, e.Key)
	}
	if !s.IsMap {
		return k
	}
	return k + ": " + valueText(s, e.Val)
}

// valueText reads addresses, and address.port as addrPortData writes it.
func valueText(_ *nftables.Set, b []byte) string {
	switch len(b) {
	case 4, 16:
		a, _ := netip.AddrFromSlice(b)
		return a.String()
	case 8, 20:
		a, _ := netip.AddrFromSlice(b[:len(b)-4])
		return netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[len(b)-4:])).String()
	}
	return fmt.Sprintf("0x%x", b)
}

func reg(r uint32) string {
	if r >= unix.NFT_REG32_00 {
		return fmt.Sprintf("w%d", r-unix.NFT_REG32_00)
	}
	return fmt.Sprintf("r%d", r)
}

var (
	metaKeys = map[expr.MetaKey]string{expr.MetaKeyNFPROTO: "nfproto", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyMARK: "mark"}
	ctKeys   = map[expr.CtKey]string{expr.CtKeySTATE: "state", expr.CtKeySTATUS: "status", expr.CtKeyMARK: "mark",
		expr.CtKeyDST: "original daddr", expr.CtKeyPROTODST: "original proto-dst"}
	bases   = map[expr.PayloadBase]string{expr.PayloadBaseNetworkHeader: "nh", expr.PayloadBaseTransportHeader: "th", expr.PayloadBaseLLHeader: "ll"}
	cmpOps  = map[expr.CmpOp]string{expr.CmpOpEq: "==", expr.CmpOpNeq: "!="}
	dynOps  = map[uint32]string{unix.NFT_DYNSET_OP_ADD: "add", unix.NFT_DYNSET_OP_UPDATE: "update", nftDynsetOpDelete: "delete"}
	natType = map[expr.NATType]string{expr.NATTypeDestNAT: "dnat", expr.NATTypeSourceNAT: "snat"}
)

func exprText(e expr.Any) string {
	switch x := e.(type) {
	case *expr.Meta:
		if x.SourceRegister {
			return fmt.Sprintf("meta %s = %s", metaKeys[x.Key], reg(x.Register))
		}
		return fmt.Sprintf("%s = meta %s", reg(x.Register), metaKeys[x.Key])
	case *expr.Ct:
		if x.SourceRegister {
			return fmt.Sprintf("ct %s = %s", ctKeys[x.Key], reg(x.Register))
		}
		return fmt.Sprintf("%s = ct %s", reg(x.Register), ctKeys[x.Key])
	case *expr.Cmp:
		return fmt.Sprintf("%s %s 0x%x", reg(x.Register), cmpOps[x.Op], x.Data)
	case *expr.Payload:
		return fmt.Sprintf("%s = %s[%d:%d]", reg(x.DestRegister), bases[x.Base], x.Offset, x.Offset+x.Len)
	case *expr.Immediate:
		if x.Register == 0 {
			return "verdict"
		}
		return fmt.Sprintf("%s = 0x%x", reg(x.Register), x.Data)
	case *expr.Verdict:
		switch x.Kind {
		case expr.VerdictDrop:
			return "drop"
		case expr.VerdictAccept:
			return "accept"
		case expr.VerdictJump:
			return "jump " + x.Chain
		}
		return fmt.Sprintf("verdict %d %s", x.Kind, x.Chain)
	case *expr.Numgen:
		kind := "inc"
		if x.Type == unix.NFT_NG_RANDOM {
			kind = "random"
		}
		return fmt.Sprintf("%s = numgen %s mod %d", reg(x.Register), kind, x.Modulus)
	case *expr.Hash:
		return fmt.Sprintf("%s = jhash %s len %d mod %d seed 0x%x", reg(x.DestRegister), reg(x.SourceRegister), x.Length, x.Modulus, x.Seed)
	case *expr.Lookup:
		not := ""
		if x.Invert {
			not = "!"
		}
		if x.IsDestRegSet {
			return fmt.Sprintf("%s = %s@%s[%s]", reg(x.DestRegister), not, x.SetName, reg(x.SourceRegister))
		}
		return fmt.Sprintf("%s%s in @%s", not, reg(x.SourceRegister), x.SetName)
	case *expr.Bitwise:
		return fmt.Sprintf("%s = (%s & 0x%x) ^ 0x%x", reg(x.DestRegister), reg(x.SourceRegister), x.Mask, x.Xor)
	case *expr.NAT:
		s := fmt.Sprintf("%s family %d addr %s", natType[x.Type], x.Family, reg(x.RegAddrMin))
		if x.RegAddrMax != 0 {
			s += "-" + reg(x.RegAddrMax)
		}
		if x.RegProtoMin != 0 {
			s += " port " + reg(x.RegProtoMin)
		}
		return s
	case *expr.Masq:
		return "masquerade"
	case *expr.Target:
		var info []byte
		if u, ok := x.Info.(*xt.Unknown); ok {
			info = []byte(*u)
		}
		return fmt.Sprintf("xt target %s rev %d info 0x%x", x.Name, x.Rev, info)
	case *expr.Dynset:
		s := fmt.Sprintf("dynset %s @%s key %s", dynOps[x.Operation], x.SetName, reg(x.SrcRegKey))
		if x.SrcRegData != 0 {
			s += " data " + reg(x.SrcRegData)
		}
		if x.Timeout != 0 {
			s += " timeout " + x.Timeout.String()
		}
		return s
	case *expr.Dup:
		return "dup to " + reg(x.RegAddr)
	}
	return fmt.Sprintf("%T%+v", e, e)
}
