package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const minimal = `
virtual_servers:
  - name: web
    address: 127.0.0.1:8080
    protocol: tcp
    scheduler: wlc
    real_servers:
      - address: 127.0.0.1:9001
        weight: 1
      - address: 127.0.0.1:9002
        weight: 2
  - address: "[::1]:5353"
    protocol: udp
    scheduler: rr
    real_servers:
      - address: "fd00::53"
`

func TestParseMinimal(t *testing.T) {
	c, err := Parse("test.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.VirtualServers) != 2 {
		t.Fatalf("got %d virtual servers", len(c.VirtualServers))
	}
	web := c.VirtualServers[0]
	if web.Name != "web" || web.Address.String() != "127.0.0.1:8080" || *web.RealServers[1].Weight != 2 {
		t.Errorf("web = %+v", web)
	}
	if web.Forwarding != Proxy || web.ConnectTimeout.D() != DefaultConnectTimeout || web.IdleTimeout.D() != 900*time.Second {
		t.Errorf("defaults not applied: %+v", web)
	}
	dns := c.VirtualServers[1]
	if dns.Name != "udp/[::1]:5353" {
		t.Errorf("default name = %q", dns.Name)
	}
	if got := dns.RealServers[0].Address.String(); got != "[fd00::53]:5353" {
		t.Errorf("real server without port = %s, want the VIP's port", got)
	}
	if *dns.RealServers[0].Weight != 1 || dns.IdleTimeout.D() != 300*time.Second || dns.MaxFlows != DefaultMaxFlows {
		t.Errorf("udp defaults not applied: %+v", dns)
	}
	if got := web.At("scheduler"); got.Line != 6 || got.Col != 16 {
		t.Errorf("position of scheduler = %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // each a full "file:line:col: message" prefix
	}{
		{"unknown key", "virtual_servers:\n  - address: 127.0.0.1:80\n    weigth: 2\n",
			[]string{`f.yaml:3:5: unknown key "weigth"`}},
		{"bad address", "virtual_servers:\n  - address: 127.0.0.300:80\n",
			[]string{`f.yaml:2:14: invalid address`}},
		{"host name", "virtual_servers:\n  - address: example.com:80\n",
			[]string{`f.yaml:2:14: invalid address "example.com:80": host names are not resolved`}},
		{"no port", "virtual_servers:\n  - address: 127.0.0.1\n",
			[]string{`f.yaml:2:14: virtual server address 127.0.0.1 needs a port`}},
		{"weight range", "virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - address: 127.0.0.1:81\n        weight: 70000\n",
			[]string{`f.yaml:5:17: weight 70000 out of range (0..65535)`}},
		{"duplicate service", "virtual_servers:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:80\n",
			[]string{`f.yaml:3:14: duplicate virtual server tcp/127.0.0.1:80 (first defined at f.yaml:2:14)`}},
		{"same address other protocol is fine, dup real server is not",
			"virtual_servers:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:80\n    protocol: udp\n    real_servers:\n      - address: 127.0.0.1:81\n      - address: 127.0.0.1:81\n",
			[]string{`f.yaml:7:18: duplicate real server 127.0.0.1:81`}},
		{"scheduler", "virtual_servers:\n  - address: 127.0.0.1:80\n    scheduler: fastest\n",
			[]string{`f.yaml:3:16: unknown scheduler "fastest"`}},
		{"duration unit", "grace_period: 30\nvirtual_servers: []\n",
			[]string{`f.yaml:1:15: duration "30" needs a unit, for example 30s`}},
		{"type", "virtual_servers:\n  - address: 127.0.0.1:80\n    retries: lots\n",
			[]string{`f.yaml:3:14: expected a whole number, found "lots"`}},
		{"syntax", "virtual_servers:\n  - address: [\n",
			[]string{`f.yaml:2:1: did not find expected node content`}},
		{"several at once", "virtual_servers:\n  - address: 127.0.0.1:80\n    protocol: sctp\n    bogus: 1\n",
			[]string{`f.yaml:3:15: invalid protocol "sctp"`, `f.yaml:4:5: unknown key "bogus"`}},
		{"send_proxy on udp", "virtual_servers:\n  - address: 127.0.0.1:80\n    protocol: udp\n    send_proxy: v2\n",
			[]string{`f.yaml:4:17: send_proxy applies to tcp virtual servers only`}},
		{"empty", "", []string{`f.yaml:1:1: empty configuration`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.src))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("err = %v, want an ErrorList", err)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(list[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, list[i].Error(), w)
				}
			}
		})
	}
}

func TestMergeKeys(t *testing.T) {
	src := `
defaults: &rs
  weight: 5
virtual_servers:
  - address: 127.0.0.1:80
    real_servers:
      - <<: *rs
        address: 127.0.0.1:81
`
	// "defaults" is not a govs key: anchors must live inside known keys.
	if _, err := Parse("f.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), `unknown key "defaults"`) {
		t.Fatalf("err = %v", err)
	}
	src = `
virtual_servers:
  - address: 127.0.0.1:80
    real_servers:
      - &rs {address: 127.0.0.1:81, weight: 5}
      - <<: *rs
        address: 127.0.0.1:82
`
	c, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if rs := c.VirtualServers[0].RealServers[1]; *rs.Weight != 5 || rs.Address.String() != "127.0.0.1:82" {
		t.Errorf("merged real server = %+v", rs)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("virtual_servers:\n  - address: 127.0.0.1:80\n    weigth: 2\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("virtual_servers: [{address: '[::1]:80', real_servers: [{address: '::1', weight: -1}]}]"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("fuzz.yaml", src)
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error is not a non-empty ErrorList: %v", err)
		}
		for _, e := range list {
			if e.Pos.File != "fuzz.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("error without a place: %q", e.Error())
			}
		}
	})
}
