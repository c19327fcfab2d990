package config

import (
	"strings"
	"testing"
)

func TestAPISection(t *testing.T) {
	ok := `
api:
  socket: /tmp/govs.sock
  http: 127.0.0.1:9180
  token_file: /etc/govs/token
  tls_cert: /etc/govs/crt
  tls_key: /etc/govs/key
virtual_servers: []
`
	c, err := Parse("t.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Socket != "/tmp/govs.sock" || c.API.HTTP != "127.0.0.1:9180" || c.API.TLSKey != "/etc/govs/key" {
		t.Errorf("api = %+v", c.API)
	}
	for _, tc := range []struct{ src, want string }{
		{"api:\n  http: 127.0.0.1:9180\n", "t.yaml:2:9: api http listener needs token_file"},
		{"api:\n  http: localhost:9180\n  token_file: x\n", "t.yaml:2:9: invalid api http address \"localhost:9180\""},
		{"api:\n  http: 127.0.0.1\n  token_file: x\n", "t.yaml:2:9: invalid api http address \"127.0.0.1\": want HOST:PORT"},
		{"api:\n  http: :99999\n  token_file: x\n", "t.yaml:2:9: invalid port \"99999\""},
		{"api:\n  http: :9180\n  token_file: x\n  tls_cert: c\n", "t.yaml:2:3: api needs both tls_cert and tls_key"},
		{"api:\n  tls_cert: c\n  tls_key: k\n", "t.yaml:2:13: tls_cert applies to the api http listener"},
		{"api:\n  sockett: /x\n", `unknown key "sockett" (did you mean "socket"?)`},
	} {
		_, err := Parse("t.yaml", []byte(tc.src+"virtual_servers: []\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
	if _, err := Parse("t.yaml", []byte("api:\n  socket: /run/govs/govs.sock\nvirtual_servers: []\n")); err != nil {
		t.Errorf("socket alone: %v", err)
	}
}

// TestValidateIsIdempotent: runtime changes validate a copy of a model
// that was validated already.
func TestValidateIsIdempotent(t *testing.T) {
	c, err := Parse("test.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("second validation: %v", err)
	}
	if c.VirtualServers[0].MaxFlows != 0 || c.VirtualServers[1].MaxFlows != DefaultMaxFlows {
		t.Errorf("max_flows: tcp %d, udp %d", c.VirtualServers[0].MaxFlows, c.VirtualServers[1].MaxFlows)
	}
}
