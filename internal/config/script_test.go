package config

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/govs-lb/govs/internal/script"
)

// The script keys reach every script health check, whatever the level it
// is written at.
func TestScriptPolicyReachesChecks(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
script_user: daemon:nogroup
script_security: false
virtual_servers:
  - address: 127.0.0.1:8080
    health_check: {type: script, command: /bin/true}
    real_servers:
      - address: 127.0.0.1:9001
      - address: 127.0.0.1:9002
        health_check: {command: /bin/false}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := script.Policy{User: "daemon:nogroup", Insecure: true}
	for _, rs := range c.VirtualServers[0].RealServers {
		if rs.Check == nil || rs.Check.RunAs != want {
			t.Errorf("%s: check %+v", rs.Address, rs.Check)
		}
	}
	if _, err := Parse("t.yaml", []byte("script_user: \"daemon:\"\nvirtual_servers: []\n")); err == nil || !strings.Contains(err.Error(), "t.yaml:1:14: invalid script_user") {
		t.Errorf("bad script_user: %v", err)
	}
}

// CheckScripts reports, at the line, each script that is missing, that the
// script user may not run, or that someone else may change; with
// script_security off the last are warnings, and so is the setting itself.
func TestCheckScripts(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: this test needs it")
		}
		t.Skip("needs root (to own files as other users)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Dir(dir)} {
		os.Chmod(p, 0o755)
	}
	good := filepath.Join(dir, "good.sh")
	owned := filepath.Join(dir, "owned.sh")
	ww := filepath.Join(dir, "ww")
	inWW := filepath.Join(ww, "s.sh")
	os.Mkdir(ww, 0o755)
	os.Chmod(ww, 0o777)
	for _, f := range []string{good, owned, inWW} {
		os.WriteFile(f, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	}
	os.Chown(owned, uid, uid)
	missing := filepath.Join(dir, "missing.sh")
	src := func(top string) string {
		return fmt.Sprintf(`%s
virtual_servers:
  - address: 127.0.0.1:8080
    health_check: {type: script, command: "%s --flag"}
    quorum_up: %s
    real_servers:
      - address: 127.0.0.1:9001
        notify_down: %s
      - address: 127.0.0.1:9002
vrrp_instances:
  - name: VI_1
    interface: lo
    virtual_router_id: 1
    virtual_ipaddresses: [10.0.0.1]
    notify_master: %s
    track_scripts:
      - {name: chk, script: "%s"}
`, top, owned, good, inWW, missing, good)
	}
	load := func(top string) ([]Warning, error) {
		t.Helper()
		c, err := Parse("t.yaml", []byte(src(top)))
		if err != nil {
			t.Fatal(err)
		}
		return c.CheckScripts()
	}
	_, err = load("script_user: daemon")
	for _, want := range []string{
		"t.yaml:4:43: health check command " + owned + ": owned by uid " + nobody.Uid + " (nobody), not by root or the script user daemon: refused",
		"t.yaml:8:22: notify_down " + inWW + ": directory " + ww + " is writable by everyone (mode 0777): refused",
		"t.yaml:15:20: notify_master of VI_1 " + missing + ": not found",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("script_user daemon: got\n%v\nwant %s", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("%d errors, want 3:\n%v", n, err)
	}
	// As nobody, nobody's own file is no risk.
	if _, err := load(""); err == nil || strings.Contains(err.Error(), "owned.sh") {
		t.Errorf("as nobody: %v", err)
	}
	_, err = load("script_user: no-such-user-here")
	if err == nil || !strings.Contains(err.Error(), `t.yaml:1:14: script_user: no user "no-such-user-here"`) {
		t.Errorf("missing user: %v", err)
	}
	warns, err := load("script_security: false")
	if err == nil || !strings.Contains(err.Error(), "missing.sh: not found") || strings.Contains(err.Error(), "owned.sh") {
		t.Errorf("script_security false: %v", err)
	}
	var ws []string
	for _, w := range warns {
		ws = append(ws, w.String())
	}
	all := strings.Join(ws, "\n")
	if !strings.Contains(all, "t.yaml:1:18: warning: script_security is off") || !strings.Contains(all, "t.yaml:8:22: warning: notify_down") {
		t.Errorf("warnings:\n%s", all)
	}
}
