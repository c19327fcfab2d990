package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// realserverCmd prepares (or, with --down, undoes) a real server for
// direct routing: the VIP on lo, so the real server accepts packets to it
// and answers from it, and no ARP/NDP answers for it, so the segment keeps
// sending the VIP's packets to the director. See docs/realserver.md.
func realserverCmd() *cobra.Command {
	var vips []string
	var down bool
	cmd := &cobra.Command{
		Use:   "realserver --vip ADDR [--vip ADDR...] [--down]",
		Short: "prepare this host as a DR real server (VIP on lo, arp_ignore/arp_announce)",
		Long: "Adds each VIP to lo (/32 or /128; IPv6 without duplicate address detection) and sets\n" +
			"net.ipv4.conf.{all,lo,IFACE}.arp_ignore=1 and arp_announce=2 on every interface, so this host\n" +
			"accepts packets to the VIP but never answers ARP for it. Idempotent. --down removes the VIPs, and\n" +
			"puts arp_ignore/arp_announce back to 0 once no other VIP is left on lo. Needs root.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(vips) == 0 {
				return errors.New("realserver: --vip ADDR is required")
			}
			var addrs []netip.Addr
			for _, s := range vips {
				a, err := netip.ParseAddr(strings.TrimSpace(s))
				if err != nil || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
					return fmt.Errorf("realserver: --vip %q: not a host address", s)
				}
				addrs = append(addrs, a.Unmap())
			}
			return realserver(cmd.OutOrStdout(), addrs, down)
		},
	}
	cmd.Flags().StringSliceVar(&vips, "vip", nil, "virtual IP address (IPv4 or IPv6); repeat for several")
	cmd.Flags().BoolVar(&down, "down", false, "undo: remove the VIPs from lo")
	return cmd
}

// realserver applies (or undoes) the real-server setup for vips, printing
// what it changed.
func realserver(out io.Writer, vips []netip.Addr, down bool) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("realserver: lo: %w", err)
	}
	for _, vip := range vips {
		bits := 32
		if vip.Is6() {
			bits = 128
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
		if vip.Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if down {
			switch err := netlink.AddrDel(lo, a); {
			case err == nil:
				fmt.Fprintf(out, "removed %s/%d from lo\n", vip, bits)
			case errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT):
				fmt.Fprintf(out, "%s/%d: not on lo\n", vip, bits)
			default:
				return fmt.Errorf("realserver: removing %s from lo: %w", vip, err)
			}
			continue
		}
		switch err := netlink.AddrAdd(lo, a); {
		case err == nil:
			fmt.Fprintf(out, "added %s/%d to lo\n", vip, bits)
		case errors.Is(err, unix.EEXIST):
			fmt.Fprintf(out, "%s/%d: already on lo\n", vip, bits)
		default:
			return fmt.Errorf("realserver: adding %s to lo: %w", vip, err)
		}
	}
	if down {
		// Other VIPs on lo still need the ARP settings.
		left, err := otherVIPs(lo)
		if err != nil {
			return err
		}
		if left > 0 {
			fmt.Fprintf(out, "%d other VIP(s) left on lo: arp_ignore/arp_announce kept\n", left)
			return nil
		}
		return setARP(out, "0", "0")
	}
	if err := setARP(out, "1", "2"); err != nil {
		return err
	}
	// A VIP on lo is answered by NDP only on lo itself: Linux answers a
	// neighbour solicitation only for addresses of the interface it came
	// in on, so IPv6 needs no more than the address (nodad: lo has no
	// neighbours to ask).
	return nil
}

// otherVIPs counts lo's addresses other than loopback ones.
func otherVIPs(lo netlink.Link) (int, error) {
	addrs, err := netlink.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("realserver: listing lo's addresses: %w", err)
	}
	n := 0
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			n++
		}
	}
	return n, nil
}

// setARP sets arp_ignore and arp_announce on all, default and every
// interface present (the kernel uses the larger of "all" and the
// interface's value, so "all" is what matters; the interfaces too, for
// whoever reads them one by one).
func setARP(out io.Writer, ignore, announce string) error {
	ifaces := []string{"all", "default"}
	entries, err := os.ReadDir("/proc/sys/net/ipv4/conf")
	if err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "all" && n != "default" {
			ifaces = append(ifaces, n)
		}
	}
	for _, ifc := range ifaces {
		for _, kv := range [][2]string{{"arp_ignore", ignore}, {"arp_announce", announce}} {
			p := filepath.Join("/proc/sys/net/ipv4/conf", ifc, kv[0])
			if err := os.WriteFile(p, []byte(kv[1]), 0o644); err != nil {
				return fmt.Errorf("realserver: %s=%s: %w", p, kv[1], err)
			}
		}
	}
	fmt.Fprintf(out, "net.ipv4.conf.{%s}.arp_ignore=%s arp_announce=%s\n", strings.Join(ifaces, ","), ignore, announce)
	return nil
}
