package test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestVRRPUseVMAC runs two govs routers with use_vmac in the VRRP lab. The
// master's VIP lives on its macvlan vrrp.51 with the virtual router MAC
// 00:00:5e:00:01:33 (VRID 51): the client's ARP entry for the VIP is that
// MAC, and the bridge learns it on the master's port. When the master
// crashes the backup takes the MAC over: the client's ARP entry does not
// change, the bridge moves the MAC to the other port, and the client is
// answered from the new master. A router stopped cleanly removes its
// macvlan and puts back its interface's arp_ignore.
func TestVRRPUseVMAC(t *testing.T) { testUseVMAC(t, false, false) }

// With IPv6 the MAC is 00:00:5e:00:02:VRID and the client's neighbour entry
// comes from neighbour discovery. Here both routers send and receive their
// adverts on eth0 (vmac_xmit_base), from its link-local address.
func TestVRRPUseVMAC6XmitBase(t *testing.T) { testUseVMAC(t, true, true) }

func testUseVMAC(t *testing.T, v6, xmitBase bool) {
	l := newVRRPLab(t, v6)
	r1, r2 := l.routers[0], l.routers[1]
	vmac, mac := "vrrp.51", "00:00:5e:00:01:33"
	o := vrrpOpts{version: 2, interval: time.Second, extra: "    use_vmac: true\n"}
	if v6 {
		mac, o.version = "00:00:5e:00:02:33", 3
	}
	if xmitBase {
		// Every router of the VRID alike: a router's macvlan takes the
		// frames that carry its own MAC, the peer's adverts from its
		// macvlan among them, before its base interface sees them.
		o.extra += "    vmac_xmit_base: true\n"
	}
	for _, r := range l.routers {
		r.vipDev = vmac
	}
	o1, o2 := o, o
	o1.priority, o1.master = 150, true
	o2.priority = 100
	r1.startGovs(o1)
	l.waitMaster(r1, 5*time.Second)
	d2 := r2.startGovs(o2)
	time.Sleep(4 * time.Second) // more than r2's Master_Down_Interval: r2 hears r1 and stays backup
	l.waitMaster(r1, time.Second)
	for _, r := range l.routers {
		out, err := r.ns.Exec("ip", "-d", "link", "show", "dev", vmac)
		if err != nil || !strings.Contains(out, "link/ether "+mac) || !strings.Contains(out, "macvlan mode private") || !strings.Contains(out, "@eth0") {
			t.Fatalf("%s: %s: %v\n%s", r.name, vmac, err, out)
		}
		for key, want := range map[string]string{"arp_ignore": "1", "arp_filter": "1", "arp_announce": "2"} {
			if v6 {
				break // IPv4 settings
			}
			if v, _ := r.ns.Exec("cat", "/proc/sys/net/ipv4/conf/eth0/"+key); strings.TrimSpace(v) != want {
				t.Errorf("%s: eth0 %s %q, want %s (it must not answer nor announce the VIP with its own MAC)", r.name, key, v, want)
			}
		}
	}
	p := l.probe()
	p.firstFrom(t, r1.name, time.Now(), 5*time.Second)
	neigh := func() string { return l.client.IP("neigh", "show", l.vip.String(), "dev", "br0") }
	if n := neigh(); !strings.Contains(n, "lladdr "+mac) {
		t.Fatalf("the client's ARP entry for the VIP: %q, want the virtual MAC %s", n, mac)
	}
	macOn := func(port string) bool {
		out, _ := l.client.Exec("bridge", "fdb", "show", "br", "br0")
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, mac+" dev "+port+" ") {
				return true
			}
		}
		return false
	}
	loopback.WaitFor(t, "the bridge to learn the virtual MAC on r1's port", func() bool { return macOn(r1.port) })

	crashed := r1.crash()
	p.firstFrom(t, r2.name, crashed, 6*time.Second)
	l.waitMaster(r2, time.Second)
	loopback.WaitFor(t, "the bridge to move the virtual MAC to r2's port", func() bool { return macOn(r2.port) && !macOn(r1.port) })
	if n := neigh(); !strings.Contains(n, "lladdr "+mac) {
		t.Errorf("after the failover the client's ARP entry is %q, want still %s", n, mac)
	}

	d2.signal(t, syscall.SIGTERM)
	select {
	case <-d2.done:
	case <-time.After(10 * time.Second):
		t.Fatal("govs did not stop on SIGTERM")
	}
	if out, err := r2.ns.Exec("ip", "link", "show", "dev", vmac); err == nil {
		t.Errorf("%s left after govs stopped:\n%s", vmac, out)
	}
	for _, key := range []string{"arp_ignore", "arp_filter", "arp_announce"} {
		if v6 {
			break
		}
		if v, _ := r2.ns.Exec("cat", "/proc/sys/net/ipv4/conf/eth0/"+key); strings.TrimSpace(v) != "0" {
			t.Errorf("eth0 %s %q after govs stopped, want 0 again", key, v)
		}
	}
}
