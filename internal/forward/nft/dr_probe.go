package nft

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// probeDR tries, in one transaction that adds and deletes a table, what
// forwarding dr programs: a raw prerouting chain with a dynamic map with
// counters, "update" into it, and "dup to" an address from a register.
func probeDR(c *nftables.Conn, r *Report) {
	t := &nftables.Table{Name: "govs_probe", Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "p", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	s := &nftables.Set{Table: t, Name: "f", IsMap: true, Dynamic: true, HasTimeout: true, Timeout: time.Minute,
		Size: 16, Counter: true, KeyType: drKeyType(false), DataType: nftables.TypeIPAddr}
	err := c.AddSet(numbered(s), nil)
	if err == nil {
		d := &drFam{flows: s}
		_, data := drRegs(false)
		e := append(drKey(false), &expr.Immediate{Register: data, Data: []byte{192, 0, 2, 1}})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(e, drForward(d, time.Minute, true)...)})
		c.DelTable(t)
		err = c.Flush()
	}
	if err != nil {
		r.Problems = append(r.Problems, "dr (nft dup, dynamic maps): "+errText(err))
		return
	}
	r.DR = true
}

// ipipPresent reports whether the kernel has IPIP tunnels (for LVS-TUN,
// which govs does not offer): the ipip module's directory exists in sysfs
// when it is loaded or built in.
func ipipPresent() (bool, string) {
	if _, err := os.Stat("/sys/module/ipip"); err == nil {
		return true, ""
	}
	return false, "ipip: no IPIP tunnels in this kernel (/sys/module/ipip absent: CONFIG_NET_IPIP): TUN forwarding is not possible"
}

// TUNErr says why forwarding TUN (LVS-TUN, ipvsadm -i) is not possible:
// govs does not offer it, and it needs IPIP tunnels, which it names when
// the kernel lacks them.
func TUNErr() error {
	if ok, why := ipipPresent(); !ok {
		return errors.New("forwarding TUN (IP tunnelling) is not available: " + why)
	}
	return errors.New("forwarding TUN (IP tunnelling) is not available: govs does not implement it (use dr)")
}

// DRErr is nil when the kernel can do forwarding dr, or an error naming
// what is missing.
func (r Report) DRErr() error {
	if err := r.Err(); err != nil {
		return err
	}
	if !r.DR {
		return errors.New("forwarding dr needs nftables dup (nft_dup_ipv4, nft_dup_ipv6) and dynamic maps with timeouts and counters (nft_dynset)")
	}
	return nil
}

// checkDR refuses DR services the kernel or the network cannot serve: the
// kernel without dup, and real servers (or a sorry server) the director
// does not reach directly on a link (DR sends to their link-layer address).
// Called with d.mu held, before anything changes.
func (d *Dataplane) checkDR(services []director.ServiceSnapshot) error {
	var h *netlink.Handle
	for _, e := range services {
		want := e.Desired
		if want.Forwarding != desired.DR {
			continue
		}
		if d.started && d.drOK != nil {
			return fmt.Errorf("%s: %w", want.Key, d.drOK)
		}
		if h == nil {
			var err error
			if d.opts.NetNS != 0 {
				h, err = netlink.NewHandleAt(vns.NsHandle(d.opts.NetNS))
			} else {
				h, err = netlink.NewHandle()
			}
			if err != nil {
				return fmt.Errorf("%s: checking the real servers' routes: %w", want.Key, err)
			}
			defer h.Close()
		}
		for _, r := range want.Served() {
			if err := directlyConnected(h, r.Addr.Addr().AsSlice()); err != nil {
				return fmt.Errorf("%s: real server %s: %w", want.Key, r.Addr, err)
			}
		}
	}
	return nil
}

// directlyConnected checks that ip is reached on a link, without a gateway.
func directlyConnected(h *netlink.Handle, ip net.IP) error {
	routes, err := h.RouteGet(ip)
	if err != nil {
		return fmt.Errorf("forwarding dr: no route: %w", err)
	}
	for _, r := range routes {
		if r.Type == unix.RTN_LOCAL {
			return errors.New("forwarding dr: the address is the director's own")
		}
		if r.Gw != nil || r.Via != nil {
			return fmt.Errorf("forwarding dr: not on a directly connected segment (routed via %v): DR sends the packet to the real server's link-layer address", r.Gw)
		}
	}
	return nil
}
