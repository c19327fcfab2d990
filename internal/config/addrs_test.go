package config

import (
	"strings"
	"testing"
)

// A real server that is a VIP:port of the configuration sends connections
// back through govs; overlapping proxy listeners cannot all be bound. Both
// are errors at the line, as govs run would fail (or loop) on them.
func TestAddressConflicts(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"own VIP", `
virtual_servers:
  - address: 127.0.0.1:8080
    real_servers:
      - address: 127.0.0.1:8080
`, "t.yaml:5:18: real server 127.0.0.1:8080 is this virtual server's own address"},
		{"own VIP, port left out", `
virtual_servers:
  - address: 127.0.0.1:8080
    real_servers:
      - address: 127.0.0.1
`, "t.yaml:5:18: real server 127.0.0.1:8080 is this virtual server's own address"},
		{"another VIP", `
virtual_servers:
  - address: 127.0.0.1:8080
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.2:8080
    real_servers:
      - address: 127.0.0.1:8080
`, "t.yaml:7:18: real server 127.0.0.1:8080 is virtual server tcp/127.0.0.1:8080 (at t.yaml:3:14), of the same protocol"},
		{"loopback under a wildcard VIP", `
virtual_servers:
  - address: "[::]:8080"
    real_servers:
      - address: 127.0.0.1:8080
`, "t.yaml:5:18: real server 127.0.0.1:8080 is this virtual server's own address"},
		{"0.0.0.0 beside a specific address", `
virtual_servers:
  - address: 127.0.0.1:8080
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 0.0.0.0:8080
    real_servers: [{address: 127.0.0.1:9002}]
`, "t.yaml:5:14: virtual server 0.0.0.0:8080 cannot listen beside 127.0.0.1:8080 (at t.yaml:3:14): a listener on 0.0.0.0 takes port 8080"},
		{"[::] beside an IPv4 address", `
virtual_servers:
  - address: "[::]:8080"
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.2:8080
    real_servers: [{address: 127.0.0.1:9002}]
`, "t.yaml:5:14: virtual server 127.0.0.2:8080 cannot listen beside [::]:8080"},
		{"0.0.0.0 beside [::]", `
virtual_servers:
  - address: "[::]:8080"
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 0.0.0.0:8080
    real_servers: [{address: 127.0.0.1:9002}]
`, "t.yaml:5:14: virtual server 0.0.0.0:8080 cannot listen beside [::]:8080"},
		{"api on a VIP's port", `
api: {http: "127.0.0.1:8080", token_file: /x}
virtual_servers:
  - address: 0.0.0.0:8080
    real_servers: [{address: 127.0.0.1:9001}]
`, "t.yaml:2:13: api http address 127.0.0.1:8080 takes the port of virtual server 0.0.0.0:8080"},
	} {
		_, err := Parse("t.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v\nwant %s", tc.name, err, tc.want)
		}
	}
	// What does not conflict: another protocol, another port, a udp
	// service beside a tcp wildcard, two specific addresses, kernel nat
	// beside a proxy wildcard.
	for _, ok := range []string{`
virtual_servers:
  - address: 127.0.0.1:8080
    protocol: udp
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.2:8080
    real_servers: [{address: 127.0.0.1:8080}]
`, `
virtual_servers:
  - address: 0.0.0.0:8080
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.1:8081
    real_servers: [{address: 10.0.0.1:8080}]
  - address: 127.0.0.1:8080
    protocol: udp
    real_servers: [{address: 10.0.0.1:8080}]
  - address: 10.1.0.1:8080
    forwarding: nat
    real_servers: [{address: 10.0.0.2:8080}]
`, `
virtual_servers:
  - address: 127.0.0.1:8080
    real_servers: [{address: 127.0.0.1:9001}]
  - address: 127.0.0.2:8080
    real_servers: [{address: 127.0.0.1:9002}]
`} {
		if _, err := Parse("t.yaml", []byte(ok)); err != nil {
			t.Errorf("refused: %v\n%s", err, ok)
		}
	}
}
