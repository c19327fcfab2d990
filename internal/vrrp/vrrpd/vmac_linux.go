package vrrpd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// use_vmac, as keepalived's vrrp_vmac.c: the instance gets a macvlan of its
// interface in private mode with the virtual router MAC, created (and
// brought up) when the instance starts and deleted when it stops. The VIPs
// go on it, so ARP answers, gratuitous ARPs and the service traffic carry
// the virtual MAC, which moves with the master: hosts keep their ARP entry,
// and switches learn the MAC's new port from the new master's first frame.
//
// keepalived's interface settings, which govs makes too:
//
//	the macvlan: arp_ignore=1 (answer ARP only for its own addresses, the
//	  VIPs), accept_local=1, rp_filter=0 (it has no address of its own, yet
//	  receives the adverts), and no IPv6 of its own for an IPv4 instance
//	  (two routers' macvlans share a MAC, so their EUI-64 link-locals
//	  would collide); an IPv6 instance gets no generated address but the
//	  base interface's link-local, to send its adverts from;
//	the base interface, for IPv4: arp_ignore=1 and arp_filter=1 (it must
//	  not answer ARP for the VIPs with its own MAC), and arp_announce=2,
//	  which keepalived's design notes recommend (as 1, for the host) and
//	  govs sets: replies from a VIP leave through the base interface, and
//	  without it the ARP requests they need would name the VIP as sender
//	  with the base's MAC, which every host on the link would then use
//	  for the VIP. All three are restored when the base's last macvlan
//	  goes.

// baseSave is what a base interface's sysctls were before its first VMAC.
type baseSave struct {
	refs   int
	values map[string]string // sysctl path: old value
}

// sysctlPath is the /proc/sys file of a per-interface setting.
func sysctlPath(family, ifname, key string) string {
	return filepath.Join("/proc/sys/net", family, "conf", ifname, key)
}

// setSysctl writes value and returns what was there.
func setSysctl(path, value string) (string, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(old)), nil
}

// createVMAC creates the instance's macvlan (replacing one an earlier run
// left), sets keepalived's sysctls and brings it up.
func (d *Daemon) createVMAC(in *instance) (err error) {
	vi := in.cfg
	name, base := vi.VMACInterface, in.link
	if old, lerr := netlink.LinkByName(name); lerr == nil {
		if _, ok := old.(*netlink.Macvlan); !ok || old.Attrs().ParentIndex != base.Attrs().Index {
			return fmt.Errorf("use_vmac: interface %s exists and is not a macvlan of %s: name another one with vmac_interface", name, vi.Interface)
		}
		// Left by a run that did not stop cleanly: start afresh.
		if err := netlink.LinkDel(old); err != nil {
			return fmt.Errorf("use_vmac: remove the %s left by an earlier run: %w", name, err)
		}
	}
	mac := vi.VMACAddr()
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex, la.HardwareAddr = name, base.Attrs().Index, net.HardwareAddr(mac[:])
	if err := netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_PRIVATE}); err != nil {
		return fmt.Errorf("use_vmac: create macvlan %s on %s: %w", name, vi.Interface, err)
	}
	defer func() {
		if err != nil {
			if l, lerr := netlink.LinkByName(name); lerr == nil {
				netlink.LinkDel(l)
			}
		}
	}()
	v6 := vi.Is6()
	set := map[string]string{
		sysctlPath("ipv4", name, "arp_ignore"):   "1",
		sysctlPath("ipv4", name, "accept_local"): "1",
		sysctlPath("ipv4", name, "rp_filter"):    "0",
	}
	if v6 {
		set[sysctlPath("ipv6", name, "addr_gen_mode")] = "1" // none
	} else {
		set[sysctlPath("ipv6", name, "disable_ipv6")] = "1"
	}
	for path, value := range set {
		if _, err := setSysctl(path, value); err != nil && !(errors.Is(err, os.ErrNotExist) && strings.Contains(path, "/ipv6/")) {
			return fmt.Errorf("use_vmac: %s: %w", path, err)
		}
	}
	if !v6 {
		if err := d.saveBase(vi.Interface); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				d.restoreBase(vi.Interface)
			}
		}()
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("use_vmac: %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("use_vmac: bring %s up: %w", name, err)
	}
	if v6 && !vi.VMACXmitBase && in.src.IsLinkLocalUnicast() {
		// The adverts' source: the base's link-local, usable at once.
		a := &netlink.Addr{IPNet: &net.IPNet{IP: in.src.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
		if err := netlink.AddrReplace(l, a); err != nil {
			return fmt.Errorf("use_vmac: link-local %s on %s: %w", in.src, name, err)
		}
	}
	if l, err = netlink.LinkByName(name); err != nil { // its attributes now it is up
		return fmt.Errorf("use_vmac: %s: %w", name, err)
	}
	if all, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter"); err == nil && !v6 && strings.TrimSpace(string(all)) != "0" {
		d.log.Warn("vrrp: use_vmac with net.ipv4.conf.all.rp_filter set: the reverse path filter may drop the adverts "+
			"received on the macvlan (it has no address); set it to 0 (keepalived does, raising each interface's own)",
			"instance", vi.Name, "interface", name)
	}
	in.vmac = l
	for i := range in.vips {
		if in.vips[i].onVMAC {
			in.vips[i].link = l
		}
	}
	d.log.Info("vrrp: virtual MAC interface created", "instance", vi.Name, "interface", name, "mac", net.HardwareAddr(mac[:]).String(), "on", vi.Interface)
	return nil
}

// deleteVMAC removes the instance's macvlan (and with it the VIPs on it).
func (d *Daemon) deleteVMAC(in *instance) {
	if in.vmac == nil {
		return
	}
	name := in.cfg.VMACInterface
	if l, err := netlink.LinkByName(name); err == nil && l.Attrs().Index == in.vmac.Attrs().Index {
		if err := netlink.LinkDel(l); err != nil {
			d.log.Error("vrrp: remove the virtual MAC interface", "instance", in.cfg.Name, "interface", name, "err", err)
		}
	}
	if !in.cfg.Is6() {
		d.restoreBase(in.cfg.Interface)
	}
	in.vmac = nil
	for i := range in.vips {
		if in.vips[i].onVMAC {
			in.vips[i].link = in.link
		}
	}
}

// saveBase sets arp_ignore=1, arp_filter=1 and arp_announce=2 on a base
// interface, saving what they were at its first VMAC.
func (d *Daemon) saveBase(ifname string) error {
	s := d.vmacBases[ifname]
	if s == nil {
		s = &baseSave{values: map[string]string{}}
		for key, value := range map[string]string{"arp_ignore": "1", "arp_filter": "1", "arp_announce": "2"} {
			path := sysctlPath("ipv4", ifname, key)
			old, err := setSysctl(path, value)
			if err != nil {
				for p, v := range s.values {
					os.WriteFile(p, []byte(v), 0o644)
				}
				return fmt.Errorf("use_vmac: %s: %w", path, err)
			}
			s.values[path] = old
		}
		if d.vmacBases == nil {
			d.vmacBases = map[string]*baseSave{}
		}
		d.vmacBases[ifname] = s
	}
	s.refs++
	return nil
}

// restoreBase puts a base interface's sysctls back when its last VMAC goes.
func (d *Daemon) restoreBase(ifname string) {
	s := d.vmacBases[ifname]
	if s == nil {
		return
	}
	if s.refs--; s.refs > 0 {
		return
	}
	delete(d.vmacBases, ifname)
	for path, v := range s.values {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("vrrp: restore "+path, "err", err)
		}
	}
}

// sockLink is the interface the instance's adverts go and come on: its
// VMAC, unless vmac_xmit_base or no VMAC.
func (in *instance) sockLink() netlink.Link {
	if in.vmac != nil && !in.cfg.VMACXmitBase {
		return in.vmac
	}
	return in.link
}
