package config

import (
	"strings"
	"testing"
	"time"
)

const bgpFull = `
bgp:
  asn: 65001
  router_id: 10.0.0.1
  peers:
    - address: 10.0.0.254
      asn: 65000
      hold_time: 9s
      password_file: /etc/govs/bgp.pw
      bfd: true
    - {address: "2001:db8::fe", asn: 4200000000, passive: true, port: 1179}
virtual_servers:
  - name: web
    address: 10.0.0.100:80
    forwarding: fullnat
    bgp: {communities: ["65000:100", no-export], med: 10, as_path_prepend: 2}
    real_servers: [{address: 10.0.1.1}]
  - name: web-tls
    address: 10.0.0.100:443
    forwarding: fullnat
    bgp: {communities: ["65000:100", no-export], med: 10, as_path_prepend: 2}
    real_servers: [{address: 10.0.1.1}]
  - name: internal
    address: 10.0.0.101:80
    announce: false
    forwarding: nat
    real_servers: [{address: 10.0.1.1}]
`

func TestBGPConfig(t *testing.T) {
	c, err := Parse("b.yaml", []byte(bgpFull))
	if err != nil {
		t.Fatal(err)
	}
	b := c.BGP
	if b.ASN != 65001 || b.RouterID.String() != "10.0.0.1" || len(b.Peers) != 2 {
		t.Fatalf("bgp: %+v", b)
	}
	p := b.Peers[0]
	if p.HoldTime.D() != 9*time.Second || p.Keepalive.D() != 3*time.Second || !p.BFD || p.BFDInterval.D() != DefaultBFDInterval {
		t.Errorf("peer defaults: %+v", p)
	}
	if b.Peers[1].HoldTime.D() != DefaultBGPHoldTime || b.Peers[1].Keepalive.D() != 30*time.Second {
		t.Errorf("peer 2 defaults: %+v", b.Peers[1])
	}
	if b.AnnounceDelay.D() != DefaultBGPAnnounceDelay || b.Damping.HalfLife.D() != DefaultBGPHalfLife || b.Damping.Suppress != 3 || b.Damping.Reuse != 1 {
		t.Errorf("damping defaults: %+v %+v", b.AnnounceDelay, b.Damping)
	}
	if !c.Announced(c.VirtualServers[0]) || c.Announced(c.VirtualServers[2]) {
		t.Error("announce: false not honoured")
	}
	// fullnat announced: a warning; nat not announced: none.
	warns := c.BGPWarnings()
	if len(warns) != 2 || !strings.Contains(warns[0].String(), "b.yaml:") || !strings.Contains(warns[0].Msg, "fullnat") {
		t.Errorf("warnings: %v", warns)
	}
	if v, err := ParseCommunity("no-export"); err != nil || v != 0xFFFFFF01 {
		t.Errorf("no-export: %x %v", v, err)
	}
	if v, err := ParseCommunity("65000:100"); err != nil || v != 65000<<16|100 {
		t.Errorf("65000:100: %x %v", v, err)
	}
}

func TestBGPConfigNATWarning(t *testing.T) {
	c, err := Parse("b.yaml", []byte(`
bgp: {asn: 65001, router_id: 10.0.0.1, peers: [{address: 10.0.0.254, asn: 65000}]}
virtual_servers:
  - {name: n, address: 10.0.0.100:80, forwarding: nat, real_servers: [{address: 10.0.1.1}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.BGPWarnings(); len(w) != 1 || !strings.Contains(w[0].Msg, "nat forwarding with bgp") {
		t.Errorf("nat warning: %v", w)
	}
}

func TestBGPConfigErrors(t *testing.T) {
	const head = "virtual_servers: []\n"
	for _, tc := range []struct{ yaml, want string }{
		{"bgp: {asn: 0, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1}]}", "b.yaml:2:12: asn must be 1-4294967295"},
		{"bgp: {asn: 1, router_id: '2001:db8::1', peers: [{address: 10.0.0.2, asn: 1}]}", "router_id must be an IPv4 address"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: []}", "bgp needs at least one peer"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, hold_time: 2s}]}", "hold_time must be whole seconds, 3s-65535s"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, hold_time: 3500ms}]}", "hold_time must be whole seconds"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, hold_time: 9s, keepalive: 9s}]}", "keepalive must be whole seconds, below hold_time (9s)"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, password_file: pw}]}", "password_file must be an absolute path"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, local_address: '::1'}]}", "of different families"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1}, {address: 10.0.0.2, asn: 2}]}", "duplicate peer 10.0.0.2"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, bfd_interval: 1ms}]}", "bfd_interval must be 10ms-60s"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, damping: {suppress: 2, reuse: 2}, peers: [{address: 10.0.0.2, asn: 1}]}", "reuse must be at least 1 and below suppress (2)"},
		{"bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1, pasive: true}]}", `unknown key "pasive" (did you mean "passive"?)`},
	} {
		_, err := Parse("b.yaml", []byte(head+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
	const bgp = "bgp: {asn: 1, router_id: 10.0.0.1, peers: [{address: 10.0.0.2, asn: 1}]}\n"
	vs := func(extra string) string {
		return "virtual_servers:\n  - {name: a, address: 10.0.0.100:80, real_servers: [{address: 10.0.1.1}]" + extra + "}\n"
	}
	for _, tc := range []struct{ yaml, want string }{
		{bgp + vs(", bgp: {communities: ['65536:1']}"), `invalid community "65536:1"`},
		{bgp + vs(", bgp: {med: -1}"), "med must be 0-4294967295"},
		{bgp + vs(", bgp: {as_path_prepend: 9}"), "as_path_prepend must be 0-8"},
		{vs(", bgp: {med: 1}"), "bgp attributes on a virtual service need the top-level bgp section"},
		{bgp + vs(", bgp: {med: 1}") + "  - {name: b, address: 10.0.0.100:81, real_servers: [{address: 10.0.1.1}]}\n",
			"virtual servers on VIP 10.0.0.100 announce one route: their bgp attributes must match"},
	} {
		_, err := Parse("b.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

// Which announced services keep their flows when the router moves them
// between directors: dr with mh, fullnat with sync. The others are warned
// about, at the key to change.
func TestBGPConfigFlowWarnings(t *testing.T) {
	const head = "bgp: {asn: 65001, router_id: 10.0.0.1, peers: [{address: 10.0.0.254, asn: 65000}]}\n"
	const sync = "sync: {interface: eth1, sync_id: 1, key_file: /etc/govs/sync.key}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: dr, scheduler: mh, real_servers: [{address: 10.0.1.1:80}]}\n", ""},
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: dr, scheduler: rr, real_servers: [{address: 10.0.1.1:80}]}\n",
			"b.yaml:3:66: warning: virtual server a: dr with scheduler rr:"},
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: dr, real_servers: [{address: 10.0.1.1:80}]}\n",
			"virtual server a: dr with scheduler wlc:"},
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: dr, scheduler: mh, real_servers: [{address: 10.0.1.1:80, max_connections: 5}]}\n",
			"b.yaml:3:95: warning: virtual server a: real server 10.0.1.1:80: connection limits"},
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: fullnat, real_servers: [{address: 10.0.1.1}]}\n",
			"b.yaml:3:51: warning: virtual server a: fullnat forwarding without connection sync"},
		{sync + "virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: fullnat, real_servers: [{address: 10.0.1.1}]}\n",
			"fullnat with sync and bgp: a flow keeps the local address"},
		{sync + "vrrp_instances: [{name: VI_1, interface: eth1, virtual_router_id: 51, priority: 100, virtual_ipaddresses: [10.0.1.250/24, 10.0.1.251/24]}]\n" +
			"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: fullnat, local_addresses: [10.0.1.250-10.0.1.251], real_servers: [{address: 10.0.1.1}]}\n", ""},
		{sync + "vrrp_instances: [{name: VI_1, interface: eth1, virtual_router_id: 51, priority: 100, virtual_ipaddresses: [10.0.1.250/24]}]\n" +
			"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: fullnat, local_addresses: [10.0.1.250-10.0.1.251], real_servers: [{address: 10.0.1.1}]}\n",
			"fullnat with sync and bgp"},
		{"sync: {interface: eth1, sync_id: 1, key_file: /etc/govs/sync.key, forwarding: [nat]}\n" +
			"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: fullnat, real_servers: [{address: 10.0.1.1}]}\n",
			"fullnat forwarding without connection sync"},
		{sync + "virtual_servers:\n  - {name: a, address: 10.0.0.100:80, forwarding: nat, scheduler: mh, real_servers: [{address: 10.0.1.1}]}\n",
			"nat forwarding with bgp"},
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, real_servers: [{address: 10.0.1.1}]}\n",
			"proxy forwarding keeps its connections"},
		{"virtual_servers:\n  - {name: a, address: 10.0.0.100:80, announce: false, forwarding: dr, real_servers: [{address: 10.0.1.1:80}]}\n", ""},
	} {
		c, err := Parse("b.yaml", []byte(head+tc.yaml))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		w := c.BGPWarnings()
		switch {
		case tc.want == "" && len(w) != 0:
			t.Errorf("%s: warned %v", tc.yaml, w)
		case tc.want != "" && (len(w) != 1 || !strings.Contains(w[0].String(), tc.want)):
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, w, tc.want)
		}
	}
}
