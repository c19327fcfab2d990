package config

import (
	"errors"
	"strings"
	"testing"
)

// `govs check` promises every error of a file at once: unknown keys (found
// while decoding) and bad values (found while validating) together, in
// file order, and no echo of a value that did not decode.
func TestParseReportsAllErrorsAtOnce(t *testing.T) {
	src := `grace_priod: 3s
virtual_servers:
  - address: 127.0.0.1:8080
    scheduler: fastest
    colour: red
    real_servers:
      - address: 127.0.0.1:9001
        weight: 70000
        wieght: 3
  - address: bogus
    real_servers: [{address: 127.0.0.1:9002}]
`
	_, err := Parse("f.yaml", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`f.yaml:1:1: unknown key "grace_priod"`,
		`f.yaml:4:16: unknown scheduler "fastest"`,
		`f.yaml:5:5: unknown key "colour"`,
		`f.yaml:8:17: weight 70000 out of range`,
		`f.yaml:9:9: unknown key "wieght"`,
		`f.yaml:10:14: invalid address "bogus"`,
	}
	if len(list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(list[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, list[i].Error(), w)
		}
	}
}

func TestRealServerName(t *testing.T) {
	c, err := Parse("n.yaml", []byte("virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - {name: fast, address: 127.0.0.1:9001}\n      - {address: 127.0.0.1:9002}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.VirtualServers[0].RealServers[0].Name; n != "fast" {
		t.Errorf("name %q", n)
	}
	_, err = Parse("n.yaml", []byte("virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - {name: fast, address: 127.0.0.1:9001}\n      - {name: fast, address: 127.0.0.1:9002}\n"))
	if err == nil || !strings.Contains(err.Error(), `n.yaml:5:16: duplicate real server name "fast" (first used at n.yaml:4:16)`) {
		t.Errorf("duplicate name: %v", err)
	}
}
