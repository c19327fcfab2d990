package config

import (
	"strings"
	"testing"
)

func TestFWMarkService(t *testing.T) {
	ok := `virtual_servers:
  - fwmark: 1
    forwarding: nat
    scheduler: rr
    persistence_timeout: 5m
    health_check: {type: tcp, port: 80}
    real_servers: [{address: 10.1.1.2}, {address: 10.1.1.3}]
  - fwmark: 1
    family: ipv6
    forwarding: dr
    real_servers: [{address: "[fd00::2]:80"}, {address: "fd00::3"}]
`
	c, err := Parse("ok.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := c.VirtualServers[0], c.VirtualServers[1]
	if v4.Key() != "fwm/1" || v4.Name != "FWM 1" || v4.IsIPv6() {
		t.Errorf("v4: key %q name %q v6 %v", v4.Key(), v4.Name, v4.IsIPv6())
	}
	if v6.Key() != "fwm6/1" || v6.Name != "FWM 1 IPv6" || !v6.IsIPv6() {
		t.Errorf("v6: key %q name %q", v6.Key(), v6.Name)
	}
	// No port: each packet's own port (IPVS's port 0).
	if rs := v4.RealServers[0].Address; rs.Port != 0 || rs.HasPort || rs.AddrPort().String() != "10.1.1.2:0" {
		t.Errorf("real server %+v", rs)
	}
	out, err := EncodeYAML(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "fwmark: 1\n") || strings.Contains(string(out), "address: \"\"") ||
		!strings.Contains(string(out), "address: 10.1.1.2\n") {
		t.Errorf("encoded:\n%s", out)
	}
	if _, err := Parse("again.yaml", out); err != nil {
		t.Errorf("encoded YAML does not load back: %v\n%s", err, out)
	}
	if k, v6, ok := ParseFWMarkKey("fwm6/1"); !ok || k != 1 || !v6 {
		t.Errorf("ParseFWMarkKey")
	}

	const head = "virtual_servers:\n  - fwmark: 7\n"
	for _, tc := range []struct{ yaml, want string }{
		{head + "    real_servers: [{address: 10.1.1.2, health_check: {type: none}}]\n",
			"bad.yaml:2:13: a fwmark service needs forwarding nat, fullnat or dr"},
		{head + "    forwarding: proxy\n    real_servers: []\n",
			"bad.yaml:3:17: a fwmark service needs forwarding nat"},
		{head + "    address: 10.1.0.1:80\n    forwarding: nat\n    real_servers: []\n",
			"bad.yaml:3:14: a virtual server has an address or a fwmark, not both"},
		{"virtual_servers:\n  - fwmark: 0\n    forwarding: nat\n    real_servers: []\n",
			"bad.yaml:2:13: fwmark must be 1 to 4294967295"},
		{"virtual_servers:\n  - address: 10.1.0.1:80\n    family: ipv6\n    forwarding: nat\n    real_servers: []\n",
			"bad.yaml:3:13: family applies to fwmark services only"},
		{head + "    family: inet9\n    forwarding: nat\n    real_servers: []\n",
			"bad.yaml:3:13: invalid family \"inet9\" (ipv4 or ipv6)"},
		{head + "    forwarding: nat\n    real_servers: [{address: \"[fd00::2]:80\"}]\n",
			"bad.yaml:4:30: fd00::2 is not of the service's family ipv4; write family: ipv6"},
		{head + "    forwarding: nat\n    real_servers:\n      - address: 10.1.1.2\n      - address: 10.1.1.3:8080\n",
			"bad.yaml:6:18: 10.1.1.3:8080 has a port but 10.1.1.2 (at bad.yaml:5:18) has none"},
		{head + "    forwarding: fullnat\n    health_check: {type: tcp}\n    real_servers:\n      - address: 10.1.1.2\n",
			"bad.yaml:6:18: real server 10.1.1.2 has no port (it takes each packet's destination port): its tcp check needs one"},
		{head + "    forwarding: nat\n    real_servers: []\n  - fwmark: 7\n    forwarding: dr\n    real_servers: []\n",
			"bad.yaml:5:13: duplicate virtual server fwm/7 (first defined at bad.yaml:2:13)"},
	} {
		_, err := Parse("bad.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v\nwant it to contain %q", err, tc.want)
		}
	}
	// dr does not translate ports: mixing is fine there.
	mixed := head + "    forwarding: dr\n    real_servers:\n      - address: 10.1.1.2\n      - address: 10.1.1.3:80\n"
	if _, err := Parse("dr.yaml", []byte(mixed)); err != nil {
		t.Errorf("dr with mixed ports: %v", err)
	}
}

func TestParseFWMark(t *testing.T) {
	for s, want := range map[string]uint32{"1": 1, "0x10": 16, "4294967295": 0xffffffff} {
		if got, err := ParseFWMark(s); err != nil || got != want {
			t.Errorf("ParseFWMark(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"0", "01", "-1", "4294967296", "x", "", "0x"} {
		if _, err := ParseFWMark(s); err == nil {
			t.Errorf("ParseFWMark(%q) accepted", s)
		}
	}
}
