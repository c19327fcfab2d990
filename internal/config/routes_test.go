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
