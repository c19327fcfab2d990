package config

import (
	"strings"
	"testing"
)

func TestKernelForwardingValidation(t *testing.T) {
	ok := `virtual_servers:
  - address: 10.1.0.100:80
    forwarding: fullnat
    scheduler: rr
    local_addresses: [10.1.0.10-10.1.0.20, 10.1.0.30]
    expire_nodest_conn: true
    real_servers: [{address: 10.1.1.2:80}]
`
	c, err := Parse("ok.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if vs := c.VirtualServers[0]; vs.Forwarding != FullNAT || len(vs.LocalAddresses) != 2 || !vs.ExpireNodestConn {
		t.Fatalf("parsed %+v", vs)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"virtual_servers:\n  - address: 10.1.0.100:80\n    forwarding: nat\n    local_addresses: [10.1.0.10]\n    real_servers: [{address: 10.1.1.2}]\n",
			"4:22: local_addresses applies to fullnat forwarding only"},
		{"virtual_servers:\n  - address: 10.1.0.100:80\n    forwarding: fullnat\n    local_addresses: [10.1.0.20-10.1.0.10]\n    real_servers: [{address: 10.1.1.2}]\n",
			"4:22: local_addresses: invalid range"},
		{"virtual_servers:\n  - address: 10.1.0.100:80\n    forwarding: nat\n    real_servers: [{address: \"[fd00::2]:80\"}]\n",
			"real server [fd00::2]:80 is not of the VIP's address family"},
		{"virtual_servers:\n  - address: 0.0.0.0:80\n    forwarding: nat\n    real_servers: [{address: 10.1.1.2}]\n",
			"forwarding nat needs a specific VIP"},
		{"virtual_servers:\n  - address: 10.1.0.100:80\n    expire_nodest_conn: true\n    real_servers: [{address: 10.1.1.2}]\n",
			"expire_nodest_conn applies to nat and fullnat forwarding only"},
	} {
		_, err := Parse("bad.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to contain %q", err, tc.want)
		}
	}
}

func TestParseAddrRange(t *testing.T) {
	r, err := ParseAddrRange("10.0.0.10-10.0.0.20")
	if err != nil || r.First.String() != "10.0.0.10" || r.Last.String() != "10.0.0.20" {
		t.Fatalf("range %v, %v", r, err)
	}
	for _, bad := range []string{"10.0.0.1-fd00::1", "x", "0.0.0.0", "10.0.0.2-10.0.0.1"} {
		if _, err := ParseAddrRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
