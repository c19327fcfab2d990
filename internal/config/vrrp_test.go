package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const vrrpFull = `
vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    advert_int: 100ms
    version: 3
    state: master
    preempt_delay: 5s
    virtual_ipaddresses:
      - 10.0.0.100/24
      - 10.0.1.100/24 dev eth1 label eth1:vip
    unicast_src_ip: 10.0.0.1
    unicast_peers: [10.0.0.2, 10.0.0.3]
    track_interfaces: [eth1, eth2 weight -20]
    track_scripts:
      - name: chk_haproxy
        script: /usr/bin/pgrep haproxy
        interval: 2s
        weight: -30
        fall: 2
    notify: /etc/govs/notify.sh
    garp_master_delay: 0s
  - name: VI_6
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddresses: ["2001:db8::100"]
vrrp_sync_groups:
  - name: G
    instances: [VI_1, VI_6]
`

func TestParseVRRP(t *testing.T) {
	c, err := Parse("v.yaml", []byte(vrrpFull))
	if err != nil {
		t.Fatal(err)
	}
	v := c.VRRPInstances[0]
	if v.Priority != 150 || v.AdvertInt.D() != 100*time.Millisecond || v.State != "MASTER" || !v.StartAsMaster() {
		t.Errorf("VI_1 = %+v", v)
	}
	if got := v.VirtualIPAddresses[1]; got.Prefix.String() != "10.0.1.100/24" || got.Dev != "eth1" || got.Label != "eth1:vip" {
		t.Errorf("vip = %+v", got)
	}
	if len(v.UnicastPeers) != 2 || v.UnicastPeers[1].String() != "10.0.0.3" || v.UnicastSrcIP.String() != "10.0.0.1" {
		t.Errorf("unicast = %v %v", v.UnicastSrcIP, v.UnicastPeers)
	}
	if v.TrackInterfaces[1] != (TrackInterface{"eth2", -20}) {
		t.Errorf("track = %+v", v.TrackInterfaces)
	}
	if s := v.TrackScripts[0]; s.Timeout.D() != 2*time.Second || s.Rise != 1 || s.Fall != 2 {
		t.Errorf("script = %+v", s)
	}
	if v.GARPMasterDelay == nil || *v.GARPMasterDelay != 0 || v.GARPMasterRefresh != nil {
		t.Errorf("garp = %v %v", v.GARPMasterDelay, v.GARPMasterRefresh)
	}
	six := c.VRRPInstances[1]
	if six.Version != 3 || six.Priority != 100 || six.AdvertInt.D() != time.Second || six.State != "BACKUP" ||
		six.VirtualIPAddresses[0].Prefix.Bits() != 128 {
		t.Errorf("VI_6 defaults = %+v", six)
	}
	// Validating again (as runtime changes do) changes nothing and passes.
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// AH authentication is accepted; with state MASTER the instance starts as
// BACKUP, with keepalived's warning, unless it is the address owner.
func TestVRRPAuthAH(t *testing.T) {
	src := `vrrp_instances:
  - {name: a, interface: eth0, virtual_router_id: 1, state: MASTER, priority: 150, authentication: {auth_type: ah, auth_pass: secret}, virtual_ipaddresses: [10.0.0.1]}
  - {name: b, interface: eth0, virtual_router_id: 2, state: MASTER, priority: 255, authentication: {auth_type: AH, auth_pass: secret}, virtual_ipaddresses: [10.0.0.2]}
  - {name: c, interface: eth0, virtual_router_id: 3, state: MASTER, authentication: {auth_type: PASS, auth_pass: secret}, virtual_ipaddresses: [10.0.0.3]}
`
	c, err := Parse("v.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a, b, pass := c.VRRPInstances[0], c.VRRPInstances[1], c.VRRPInstances[2]
	if !a.AuthAH() || a.Authentication.AuthType != "AH" || a.StartAsMaster() || !b.StartAsMaster() || pass.AuthAH() || !pass.StartAsMaster() {
		t.Fatalf("AH %v %v, start as master %v %v %v", a.AuthAH(), pass.AuthAH(), a.StartAsMaster(), b.StartAsMaster(), pass.StartAsMaster())
	}
	w := c.VRRPWarnings()
	if len(w) != 1 || !strings.HasPrefix(w[0].String(), "v.yaml:2:61: warning: vrrp instance a: initial state MASTER is incompatible with AH authentication") {
		t.Fatalf("warnings %v", w)
	}
}

func TestVRRPErrors(t *testing.T) {
	const head = "vrrp_instances:\n  - {name: a, interface: eth0, "
	for _, tc := range []struct {
		name, src string
		at        string // the error points at the first occurrence of at
		want      string
	}{
		{"vrid", head + "virtual_router_id: 256, virtual_ipaddresses: [10.0.0.1]}\n", "256",
			"virtual_router_id 256 out of range (1..255)"},
		{"no vrid", "vrrp_instances:\n  - {name: a, interface: eth0, virtual_ipaddresses: [10.0.0.1]}\n", "{name",
			`vrrp instance "a" needs a virtual_router_id (1..255)`},
		{"priority", head + "virtual_router_id: 1, priority: 0, virtual_ipaddresses: [10.0.0.1]}\n", "0, virtual_ip",
			"priority 0 out of range (1..255; 255 is the address owner)"},
		{"v2 interval", head + "virtual_router_id: 1, advert_int: 500ms, virtual_ipaddresses: [10.0.0.1]}\n", "500ms",
			"advert_int 500ms: VRRP version 2 counts whole seconds"},
		{"v3 interval", head + "virtual_router_id: 1, version: 3, advert_int: 15ms, virtual_ipaddresses: [10.0.0.1]}\n", "15ms",
			"advert_int 15ms: VRRP version 3 counts centiseconds"},
		{"auth v3", head + "virtual_router_id: 1, version: 3, authentication: {auth_type: PASS, auth_pass: x}, virtual_ipaddresses: [10.0.0.1]}\n",
			"{auth_type", "authentication is VRRP version 2 only"},
		{"auth type", head + "virtual_router_id: 1, authentication: {auth_type: MD5, auth_pass: x}, virtual_ipaddresses: [10.0.0.1]}\n",
			"MD5", `invalid auth_type "MD5" (PASS or AH)`},
		{"auth long", head + "virtual_router_id: 1, authentication: {auth_type: PASS, auth_pass: 123456789}, virtual_ipaddresses: [10.0.0.1]}\n",
			"123456789", "auth_pass is longer than 8 bytes"},
		{"v2 ipv6", head + "virtual_router_id: 1, version: 2, virtual_ipaddresses: ['2001:db8::1']}\n", "2, virtual",
			"VRRP version 2 is IPv4 only"},
		{"mixed", head + "virtual_router_id: 1, virtual_ipaddresses: [10.0.0.1, '2001:db8::1']}\n", "[10",
			"virtual address 2001:db8::1: an instance's addresses are all IPv4 or all IPv6"},
		{"bad vip", head + "virtual_router_id: 1, virtual_ipaddresses: [10.0.0.1/24 brd +]}\n", "10.0.0.1/24",
			`virtual address "10.0.0.1/24 brd +": unknown option "brd" (dev, label)`},
		{"label", head + "virtual_router_id: 1, virtual_ipaddresses: [10.0.0.1 label eth1:x]}\n", "[10",
			`virtual address 10.0.0.1: label "eth1:x" must be eth0 or start with eth0:`},
		{"dup vrid", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1]}\n  - {name: b, interface: eth0, virtual_router_id: 7, virtual_ipaddresses: [10.0.0.2]}\n",
			"7, virtual_ipaddresses: [10.0.0.2]", `virtual_router_id 7 is already used on eth0 by vrrp instance "a" (at v.yaml:2:51)`},
		{"same vrid other family", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1]}\n  - {name: b, interface: eth0, virtual_router_id: 7, virtual_ipaddresses: ['fe80::7']}\n  - {name: c, interface: eth0, virtual_router_id: 7, virtual_ipaddresses: [10.0.0.3]}\n",
			"7, virtual_ipaddresses: [10.0.0.3]", `virtual_router_id 7 is already used on eth0 by vrrp instance "a"`},
		{"dup vip", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1]}\n  - {name: b, interface: eth0, virtual_router_id: 8, virtual_ipaddresses: [10.0.0.1/24]}\n",
			"[10.0.0.1/24]", `virtual address 10.0.0.1 is also in vrrp instance "a"`},
		{"dup name", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1]}\n  - {name: a, interface: eth1, virtual_router_id: 7, virtual_ipaddresses: [10.0.0.2]}\n",
			"a, interface: eth1", `duplicate vrrp instance name "a"`},
		{"group", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1]}\nvrrp_sync_groups:\n  - {name: g, instances: [a, b]}\n",
			"[a, b]", `vrrp sync group "g": no vrrp instance named "b"`},
		{"unknown key", head + "virtual_router_id: 7, priorty: 3, virtual_ipaddresses: [10.0.0.1]}\n", "priorty",
			`unknown key "priorty" (did you mean "priority"?)`},
		{"script", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1], track_scripts: [{name: s, weight: 300}]}\n", "{name: s",
			`track script "s" needs a script`},
		{"script weight", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1], track_scripts: [{name: s, script: /bin/true, weight: 300}]}\n", "300",
			`weight 300 out of range (-254..254)`},
		{"track weight", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1], track_interfaces: [eth1 weight x]}\n", "eth1 weight",
			`track interface "eth1 weight x": invalid weight "x"`},
		{"garp interval", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1], garp_interval: -1s}\n", "-1s",
			`duration "-1s" must not be negative`},
		{"peer family", head + "virtual_router_id: 7, virtual_ipaddresses: [10.0.0.1], unicast_peers: ['fe80::1']}\n", "['fe80",
			`unicast peer fe80::1 is not of the virtual addresses' family`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("v.yaml", []byte(tc.src))
			i := strings.Index(tc.src, tc.at)
			if i < 0 {
				t.Fatalf("%q not in the source", tc.at)
			}
			line := strings.Count(tc.src[:i], "\n") + 1
			col := i - strings.LastIndex(tc.src[:i], "\n")
			want := fmt.Sprintf("v.yaml:%d:%d: %s", line, col, tc.want)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}

// strict_mode refuses what keepalived's vrrp_strict does not allow, each
// with keepalived's reason, and accepts a plain instance.
func TestVRRPStrictMode(t *testing.T) {
	c, err := Parse("v.yaml", []byte("vrrp_instances:\n  - {name: a, interface: eth0, virtual_router_id: 1, strict_mode: true, virtual_ipaddresses: ['2001:db8::1']}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.VRRPWarnings(); len(w) != 1 || !strings.Contains(w[0].Msg, "the first IPv6 VIP address must be link local") {
		t.Errorf("warnings %v", w)
	}
	const head = "vrrp_instances:\n  - {name: a, interface: eth0, virtual_router_id: 1, strict_mode: true, virtual_ipaddresses: [10.0.0.1]"
	if _, err := Parse("v.yaml", []byte(head+"}\n")); err != nil {
		t.Fatalf("plain strict instance: %v", err)
	}
	if _, err := Parse("v.yaml", []byte(head+", priority: 255, state: MASTER}\n")); err != nil {
		t.Fatalf("strict address owner: %v", err)
	}
	for extra, want := range map[string]string{
		", authentication: {auth_type: PASS, auth_pass: x}": "strict_mode (vrrp_strict) does not allow authentication",
		", unicast_peers: [10.0.0.9]":                       "strict_mode (vrrp_strict) does not allow unicast_peers",
		", state: MASTER":                                   "state MASTER is for the address owner (priority 255) only, and the owner starts as MASTER: write state: BACKUP",
		", priority: 255":                                   "write state: MASTER",
		", preempt_delay: 5s":                               "strict_mode (vrrp_strict) does not allow preempt_delay",
		", lower_prio_no_advert: false":                     "strict_mode (vrrp_strict) requires lower_prio_no_advert",
	} {
		_, err := Parse("v.yaml", []byte(head+extra+"}\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", extra, err, want)
		}
	}
}

// use_vmac: keepalived's default names (vrrp.VRID, then the next free),
// the virtual MAC, and the refusals.
func TestVRRPUseVMAC(t *testing.T) {
	src := `vrrp_instances:
  - {name: a, interface: eth0, virtual_router_id: 51, use_vmac: true, virtual_ipaddresses: [10.0.0.1]}
  - {name: b, interface: eth1, virtual_router_id: 51, use_vmac: true, virtual_ipaddresses: [10.0.1.1]}
  - {name: c, interface: eth0, virtual_router_id: 51, use_vmac: true, virtual_ipaddresses: ['fe80::51']}
  - {name: d, interface: eth0, virtual_router_id: 52, use_vmac: true, vmac_interface: vmac52, vmac_xmit_base: true, virtual_ipaddresses: [10.0.0.2]}
`
	c, err := Parse("v.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, vi := range c.VRRPInstances {
		names = append(names, vi.VMACInterface)
	}
	if strings.Join(names, " ") != "vrrp.51 vrrp1.51 vrrp6.51 vmac52" {
		t.Errorf("names %v", names)
	}
	if m := c.VRRPInstances[0].VMACAddr(); m != [6]byte{0, 0, 0x5e, 0, 1, 51} {
		t.Errorf("IPv4 virtual MAC % x", m)
	}
	if m := c.VRRPInstances[2].VMACAddr(); m != [6]byte{0, 0, 0x5e, 0, 2, 51} {
		t.Errorf("IPv6 virtual MAC % x", m)
	}
	const head = "vrrp_instances:\n  - {name: a, interface: eth0, virtual_router_id: 1, virtual_ipaddresses: [10.0.0.1]"
	for extra, want := range map[string]string{
		", vmac_interface: x":                                       "vmac_interface needs use_vmac: true",
		", use_vmac: true, vmac_interface: eth0":                    "vmac_interface eth0 is the instance's interface",
		", use_vmac: true, unicast_peers: [10.0.0.9]":               "use_vmac with unicast_peers needs vmac_xmit_base: true",
		", use_vmac: true, vmac_xmit_base: true, strict_mode: true": "does not allow vmac_xmit_base",
		", use_vmac: true, vmac_interface: 'a b'":                   `invalid interface name "a b"`,
		", use_vmac: true, vmac_interface: v}\n  - {name: b, interface: eth0, virtual_router_id: 2, virtual_ipaddresses: [10.0.0.2], use_vmac: true, vmac_interface: v": `vmac_interface v is also vrrp instance "a"'s`,
	} {
		_, err := Parse("v.yaml", []byte(head+extra+"}\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", extra, err, want)
		}
	}
}
