package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Report is what the kernel offers the kernel dataplane.
type Report struct {
	Root bool
	// NFTables: nf_tables netlink answers; NAT: an inet nat chain with a
	// numgen map DNAT is accepted; Queue: the NFQUEUE xtables target
	// through nft_compat is accepted; Conntrack: conntrack netlink answers.
	NFTables, NAT, Queue, Conntrack bool
	// DR: forwarding dr's rules are accepted (dr_probe.go); IPIP: the
	// kernel has IPIP tunnels (TUN, which govs does not offer).
	DR, IPIP bool
	// Acct is net.netfilter.nf_conntrack_acct ("0", "1", or "" when it
	// cannot be read: another namespace, or no conntrack).
	Acct string
	// Problems says why each missing feature is missing.
	Problems []string
}

// String is the report on one line.
func (r Report) String() string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	s := fmt.Sprintf("root=%s nftables=%s nat=%s nfqueue(nft_compat)=%s conntrack=%s nf_conntrack_acct=%s dr=%s ipip=%s",
		yes(r.Root), yes(r.NFTables), yes(r.NAT), yes(r.Queue), yes(r.Conntrack), r.Acct, yes(r.DR), yes(r.IPIP))
	if len(r.Problems) > 0 {
		s += " problems: " + strings.Join(r.Problems, "; ")
	}
	return s
}

// Err is nil when the kernel dataplane can run, or an error naming what
// is missing.
func (r Report) Err() error {
	if r.NFTables && r.NAT && r.Queue && r.Conntrack {
		return nil
	}
	var missing []string
	if !r.Root {
		missing = append(missing, "root (CAP_NET_ADMIN)")
	}
	for _, f := range []struct {
		ok   bool
		name string
	}{{r.NFTables, "nftables (nf_tables)"}, {r.NAT, "nftables NAT (nft_nat, nft_numgen)"},
		{r.Queue, "NFQUEUE through nft_compat (xt_NFQUEUE, nfnetlink_queue)"}, {r.Conntrack, "conntrack netlink (nf_conntrack_netlink)"}} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	return fmt.Errorf("kernel forwarding (nat, fullnat) needs %s: %s", strings.Join(missing, ", "), strings.Join(r.Problems, "; "))
}

// ProbeKernel checks, without leaving anything behind, what the kernel
// dataplane needs in the network namespace netns (0: the caller's). Test
// rules are added and deleted in one transaction, so the kernel validates
// them but never runs them.
func ProbeKernel(netns int) Report {
	r := Report{Root: os.Geteuid() == 0}
	c, err := nftables.New(nftables.WithNetNSFd(netns))
	if err == nil {
		_, err = c.ListTablesOfFamily(nftables.TableFamilyINet)
	}
	if err != nil {
		r.Problems = append(r.Problems, "nftables: "+errText(err))
	} else {
		r.NFTables = true
		r.NAT = tryRules(c, &r, "nat", natProbe)
		r.Queue = tryRules(c, &r, "nfqueue", queueProbe)
		probeDR(c, &r)
	}
	r.IPIP, _ = ipipPresent()
	ct, err := dialConntrack(netns)
	if err == nil {
		// A dump filtered on a mark nobody uses: cheap on a busy host.
		done := make(chan error, 1)
		go func() {
			_, err := ct.DumpFilter(conntrack.NewFilter().Mark(0x676f7673), nil)
			done <- err
		}()
		select {
		case err = <-done:
		case <-time.After(3 * time.Second):
			err = errors.New("conntrack netlink: no answer to a dump in 3s")
		}
		ct.Close()
	}
	if err != nil {
		r.Problems = append(r.Problems, errText(err))
	} else {
		r.Conntrack = true
	}
	if netns == 0 {
		if b, err := os.ReadFile(acctPath); err == nil {
			r.Acct = strings.TrimSpace(string(b))
		}
	}
	return r
}

func errText(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		return err.Error() + " (not root?)"
	}
	return err.Error()
}

// tryRules adds a probe table with add's rules and deletes it in the same
// transaction.
func tryRules(c *nftables.Conn, r *Report, what string, add func(*nftables.Conn, *nftables.Table)) bool {
	t := &nftables.Table{Name: "govs_probe", Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	add(c, t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		r.Problems = append(r.Problems, what+": "+errText(err))
		return false
	}
	return true
}

func natProbe(c *nftables.Conn, t *nftables.Table) {
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "p", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Numgen{Register: 1, Modulus: 2, Type: unix.NFT_NG_INCREMENTAL},
		&expr.Immediate{Register: 1, Data: []byte{192, 0, 2, 1}},
		&expr.Immediate{Register: unix.NFT_REG32_01, Data: []byte{0, 80, 0, 0}},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: unix.NFT_REG32_01, Specified: true},
	}})
}

func queueProbe(c *nftables.Conn, t *nftables.Table) {
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "q", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], DefaultQueueBase)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass)
	x := xt.Unknown(info)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &x}}})
}
