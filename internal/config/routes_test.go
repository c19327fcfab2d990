package config

import (
	"strings"
	"testing"
)

func TestParseVirtualRoute(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "192.168.110.0/24 via 192.168.200.254 dev eth1", want: "192.168.110.0/24 via 192.168.200.254 dev eth1"},
		{in: "src 192.168.100.1 to 192.168.109.0/24 gw 192.168.200.254", want: "192.168.109.0/24 via 192.168.200.254 src 192.168.100.1"},
		{in: "blackhole 192.168.113.1/32", want: "blackhole 192.168.113.1/32"},
		{in: "blackhole 192.168.113.1", want: "blackhole 192.168.113.1/32"},
		{in: "0.0.0.0/0 gw 192.168.0.1 table 100 metric 5", want: "0.0.0.0/0 via 192.168.0.1 metric 5 table 100"},
		{in: "2001:db8::/32 dev eth0 scope link", want: "2001:db8::/32 dev eth0 scope link"},
		{in: "192.168.113.0/24 via 192.168.100.252 or 192.168.100.253", err: `unknown option "or"`},
		{in: "10.0.0.1/8 dev eth0", err: "host bits set"},
		{in: "blackhole 10.0.0.0/8 dev eth0", err: "a blackhole route has no via or dev"},
		{in: "10.0.0.0/8 via 2001:db8::1", err: "different families"},
		{in: "via 10.0.0.1", err: "no destination"},
	} {
		r, err := ParseVirtualRoute(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err == "" && r.String() != tc.want:
			t.Errorf("%q: %q, want %q", tc.in, r.String(), tc.want)
		}
	}
}

func TestParseVirtualRule(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "from 192.168.100.0/24 table 1", want: "from 192.168.100.0/24 table 1"},
		{in: "from 10.0.0.1 to 10.1.0.0/16 fwmark 0x10/0xff iif eth0 preference 100 lookup 5", want: "from 10.0.0.1/32 to 10.1.0.0/16 fwmark 16/255 iif eth0 priority 100 table 5"},
		{in: "from 2001:db8::/32 blackhole", want: "from 2001:db8::/32 blackhole"},
		{in: "to 192.168.100./24 table 1", err: `invalid address "192.168.100./24"`},
		{in: "from 10.0.0.0/8", err: "no action"},
		{in: "from 10.0.0.0/8 table 1 prohibit", err: "table and prohibit"},
		{in: "from 10.0.0.0/8 goto 5", err: `unknown option "goto"`},
	} {
		r, err := ParseVirtualRule(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.err == "" && r.String() != tc.want:
			t.Errorf("%q: %q, want %q", tc.in, r.String(), tc.want)
		}
	}
}
