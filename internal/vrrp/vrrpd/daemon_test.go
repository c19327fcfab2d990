//go:build linux

package vrrpd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/vrrp"
	"github.com/govs-lb/govs/test/netns"
)

// TestDaemonNodes runs a Daemon in a namespace (this test binary started
// again with ip netns exec, since the daemon works in its process's
// namespace), sends it adverts from a peer namespace, good and bad, and
// reads its Nodes snapshot: state, priority, master, counters by drop
// reason. Then Stop removes the VIP.
func TestDaemonNodes(t *testing.T) {
	if os.Getenv("GOVS_VRRPD_CHILD") != "" {
		daemonChild(t)
		return
	}
	netns.Require(t)
	a, b := netns.New(t, "vda"), netns.New(t, "vdb")
	for _, ns := range []*netns.NS{a, b} {
		ns.Sysctl("net.ipv6.conf.all.accept_dad", "0") // link-local addresses usable at once
		ns.Sysctl("net.ipv6.conf.default.accept_dad", "0")
	}
	netns.Link(a, "eth0", "10.89.0.1/24", b, "eth0", "10.89.0.2/24")

	cmd := exec.Command("ip", "netns", "exec", a.Name, os.Args[0], "-test.run=^TestDaemonNodes$")
	cmd.Env = append(os.Environ(), "GOVS_VRRPD_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(prefix string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before %q", prefix)
				}
				if rest, found := strings.CutPrefix(l, prefix); found {
					return rest
				}
			case <-timeout:
				t.Fatalf("no %q from the child", prefix)
			}
		}
	}
	expect("MASTER")

	// The peer sends, with TTL 64 and then 255: a good advert with the
	// wrong TTL, one with a bad checksum, a VRRPv2 one, and a good one
	// from a lower priority master (split brain).
	src, group := netip.MustParseAddr("10.89.0.2"), vrrp.MulticastIPv4
	adv := func(v vrrp.Version, prio uint8) []byte {
		p := vrrp.Packet{Version: v, VRID: 51, Priority: prio, AdverInt: 10, Addrs: []netip.Addr{netip.MustParseAddr("10.89.0.100")}}
		if v == vrrp.V2 {
			p.AdverInt = 1
		}
		buf, err := p.Append(nil, src, group)
		if err != nil {
			t.Fatal(err)
		}
		return buf
	}
	err := b.Do(func() error {
		pc, err := net.ListenPacket("ip4:112", "10.89.0.2")
		if err != nil {
			return err
		}
		defer pc.Close()
		p := ipv4.NewPacketConn(pc)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p.SetMulticastInterface(ifi)
		to := &net.IPAddr{IP: group.AsSlice()}
		p.SetMulticastTTL(64)
		p.WriteTo(adv(vrrp.V3, 100), nil, to)
		p.SetMulticastTTL(255)
		bad := adv(vrrp.V3, 100)
		bad[6] ^= 0xff
		p.WriteTo(bad, nil, to)
		p.WriteTo(adv(vrrp.V2, 100), nil, to)
		_, err = p.WriteTo(adv(vrrp.V3, 100), nil, to)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Dump until the daemon has counted the four adverts and sent two of
	// its own on each instance (not after a fixed pause, which a loaded
	// machine can outlast), then check every figure.
	var nodes []Node
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		io.WriteString(stdin, "dump\n")
		nodes = nil
		if err := json.Unmarshal([]byte(expect("NODES ")), &nodes); err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 2 {
			t.Fatalf("nodes %+v", nodes)
		}
		seen := nodes[0].Stats.AdvertsReceived
		for _, c := range nodes[0].Dropped {
			seen += c
		}
		if (seen >= 4 && nodes[0].Stats.AdvertsSent >= 2 && nodes[1].Stats.AdvertsSent >= 2) || time.Now().After(deadline) {
			break
		}
	}
	if n := nodes[1]; n.Name != "VI_6" || n.Group != "G" || n.State != vrrp.StateMaster || !n.Master.IsLinkLocalUnicast() ||
		n.VIPs[0].String() != "fd89::100/64" || n.Stats.AdvertsSent < 2 {
		t.Errorf("IPv6 node %+v", n)
	}
	n := nodes[0]
	if n.Name != "VI_1" || n.Group != "G" || n.State != vrrp.StateMaster || n.Priority != 200 || n.Master != netip.MustParseAddr("10.89.0.1") ||
		n.PrimaryIP != n.Master || n.Version != vrrp.V3 || n.VRID != 51 || len(n.VIPs) != 1 || n.VIPs[0].String() != "10.89.0.100/24" {
		t.Errorf("node %+v", n)
	}
	if n.Dropped[vrrp.ReasonTTL] != 1 || n.Dropped[vrrp.ReasonChecksum] != 1 || n.Dropped[vrrp.ReasonVersion] != 1 {
		t.Errorf("dropped %v", n.Dropped)
	}
	if n.Stats.SplitBrain != 1 || n.Stats.AdvertsReceived != 1 || n.Stats.AdvertsSent < 2 || n.Stats.BecameMaster != 1 {
		t.Errorf("stats %+v", n.Stats)
	}
	if !strings.Contains(a.IP("addr", "show", "dev", "eth0"), "10.89.0.100/24") {
		t.Error("the master does not hold the VIP")
	}
	io.WriteString(stdin, "stop\n")
	expect("STOPPED")
	if strings.Contains(a.IP("addr", "show", "dev", "eth0"), "10.89.0.100/24") {
		t.Error("Stop left the VIP")
	}
}

// daemonChild runs in the namespace: a Daemon with one instance, driven by
// commands on stdin.
func daemonChild(t *testing.T) {
	cfg, err := config.Parse("child.yaml", []byte(`vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    version: 3
    priority: 200
    advert_int: 100ms
    virtual_ipaddresses: [10.89.0.100/24]
  - name: VI_6
    interface: eth0
    virtual_router_id: 51
    priority: 200
    advert_int: 100ms
    virtual_ipaddresses: [fd89::100/64]
vrrp_sync_groups:
  - {name: G, instances: [VI_1, VI_6]}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Options{})
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n := d.Nodes(); len(n) == 2 && n[0].State == vrrp.StateMaster && n[1].State == vrrp.StateMaster {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not master: %+v", d.Nodes())
		}
	}
	fmt.Println("MASTER")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "dump":
			b, _ := json.Marshal(d.Nodes())
			fmt.Printf("NODES %s\n", b)
		case "stop":
			d.Stop()
			fmt.Println("STOPPED")
			return
		}
	}
}
