package config

import (
	"strings"
	"testing"
)

func TestParsePortStrict(t *testing.T) {
	for _, s := range []string{"1", "80", "8080", "65535"} {
		if _, err := ParsePort(s); err != nil {
			t.Errorf("ParsePort(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "0", "00", "08080", "080", "+80", "-1", " 80", "80 ", "65536", "99999", "100000", "8o", "0x50", "٨٠"} {
		if p, err := ParsePort(s); err == nil {
			t.Errorf("ParsePort(%q) = %d, want an error", s, p)
		}
	}
}

func TestParseAddrPortStrict(t *testing.T) {
	for s, want := range map[string]string{
		"10.0.0.1:80":          "10.0.0.1:80",
		"[::1]:443":            "[::1]:443",
		"[::ffff:10.0.0.1]:80": "10.0.0.1:80",
		"0.0.0.0:65535":        "0.0.0.0:65535",
	} {
		ap, err := ParseAddrPort(s)
		if err != nil || ap.String() != want {
			t.Errorf("ParseAddrPort(%q) = %v, %v; want %s", s, ap, err, want)
		}
	}
	for s, want := range map[string]string{
		"10.0.0.1:08080":   `invalid port "08080"`,
		"[::1]:08080":      `invalid port "08080"`,
		"10.0.0.1:+80":     `invalid port "+80"`,
		"10.0.0.1:0":       `invalid port "0"`,
		"10.0.0.1:65536":   `invalid port "65536"`,
		"10.0.0.1":         "want IP:PORT",
		"::1":              "want IP:PORT",
		"host:80":          "want IP:PORT",
		"[10.0.0.1]:80":    "want IP:PORT",
		"10.0.0.1:80:80":   "want IP:PORT",
		"2001:db8::1:8080": "want IP:PORT",
	} {
		if ap, err := ParseAddrPort(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAddrPort(%q) = %v, %v; want an error with %q", s, ap, err, want)
		}
	}
}

// TestEndpointStrictPort: a configuration file spells a port one way only,
// and the error names the line and column.
func TestEndpointStrictPort(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"virtual_servers:\n  - address: 127.0.0.1:08080\n    real_servers: []\n", `t.yaml:2:14: invalid port "08080"`},
		{"virtual_servers:\n  - address: \"[::1]:08080\"\n    real_servers: []\n", `t.yaml:2:14: invalid port "08080"`},
		{"virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - address: 127.0.0.2:+80\n", `t.yaml:4:18: invalid port "+80"`},
		{"virtual_servers:\n  - address: 127.0.0.1:0\n    real_servers: []\n", `t.yaml:2:14: invalid port "0"`},
		{"api:\n  http: 127.0.0.1:09180\n  token_file: x\nvirtual_servers: []\n", `t.yaml:2:9: invalid port "09180"`},
		{"virtual_servers:\n  - address: 127.0.0.1:80\n    health_check: {type: tcp, port: 08080}\n    real_servers: []\n", `t.yaml:3:37: write "08080" as 8080`},
		{"virtual_servers:\n  - address: 127.0.0.1:80\n    health_check: {type: tcp, agent_port: +80}\n    real_servers: []\n", `t.yaml:3:43: write "+80" as 80`},
	} {
		_, err := Parse("t.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
	c, err := Parse("t.yaml", []byte("virtual_servers:\n  - address: 127.0.0.1:8080\n    real_servers:\n      - address: 127.0.0.2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.VirtualServers[0].Address.String(); got != "127.0.0.1:8080" {
		t.Errorf("address = %s", got)
	}
}

func TestAPITokenKeys(t *testing.T) {
	c, err := Parse("t.yaml", []byte("api:\n  http: 127.0.0.1:9180\n  read_token_file: /r\n  allow_scripts: true\nvirtual_servers: []\n"))
	if err != nil {
		t.Fatalf("a read-only listener: %v", err)
	}
	if !c.API.AllowScripts || c.API.ReadTokenFile != "/r" {
		t.Errorf("api = %+v", c.API)
	}
	for _, tc := range []struct{ src, want string }{
		{"api:\n  http: 127.0.0.1:9180\n  token_file: /t\n  read_token_file: /t\n", "t.yaml:4:20: read_token_file is token_file"},
		{"api:\n  read_token_file: /r\n", "t.yaml:2:20: read_token_file applies to the api http listener"},
		{"api:\n  http: 127.0.0.1:9180\n", "needs token_file (or read_token_file"},
	} {
		_, err := Parse("t.yaml", []byte(tc.src+"virtual_servers: []\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
