package importer

import (
	"strings"
	"testing"
)

// TestImportScriptUser checks the mapping of global_defs script_user USER
// [GROUP] and enable_script_security onto the top-level script_user and
// script_security, with the place of each.
func TestImportScriptUser(t *testing.T) {
	for _, tc := range []struct {
		defs, user string
		security   bool
		warn       string
	}{
		{defs: "script_user nobody", user: "nobody"},
		{defs: "script_user ks nogroup\n enable_script_security", user: "ks:nogroup", security: true},
		{defs: "script_user ks g extra words", user: "ks:g", warn: "k.conf:2:19: warning: script_user extra words: keepalived reads a user and a group only (ignored)"},
		{defs: "enable_script_security off", security: true,
			warn: "k.conf:2:25: warning: enable_script_security takes no value: keepalived enables script security whatever follows (off ignored)"},
	} {
		c, warns := mustParseKA(t, "global_defs {\n "+tc.defs+"\n}\n")
		if c.ScriptUser != tc.user || (c.ScriptSecurity != nil) != tc.security || (tc.security && !*c.ScriptSecurity) {
			t.Errorf("%q: script_user %q, script_security %v", tc.defs, c.ScriptUser, c.ScriptSecurity)
		}
		if got := warningLines(warns); got != tc.warn {
			t.Errorf("%q: warnings:\n%s\nwant:\n%s", tc.defs, got, tc.warn)
		}
		if tc.user != "" && c.At("script_user") != pos("k.conf", 2, 14) {
			t.Errorf("%q: script_user at %v", tc.defs, c.At("script_user"))
		}
	}
	if _, _, err := parseKA(t, "global_defs {\n script_user\n}\n"); err == nil || !strings.Contains(err.Error(), "k.conf:2:13: script_user needs a value") {
		t.Errorf("script_user without a user: %v", err)
	}
}

// vrrp_strict gives every instance strict_mode with keepalived's changes
// and warnings; an instance's own strict_mode wins; unicast peers are an
// error, as keepalived refuses them.
func TestImportStrict(t *testing.T) {
	const glob = "global_defs {\n  vrrp_strict\n}\n"
	src := glob + `vrrp_instance A {
  interface eth0
  virtual_router_id 1
  state MASTER
  preempt_delay 3
  lower_prio_no_advert off
  virtual_ipaddress {
    10.0.0.1
  }
}
vrrp_instance B {
  interface eth0
  virtual_router_id 2
  strict_mode off
  state MASTER
  virtual_ipaddress {
    10.0.0.2
  }
}
`
	c, warns := mustParseKA(t, src)
	a, b := c.VRRPInstances[0], c.VRRPInstances[1]
	if !a.StrictMode || a.State != "BACKUP" || a.PreemptDelay != 0 || !a.LowerPrioNoAdvert {
		t.Errorf("A: strict %v state %s preempt_delay %v lower_prio_no_advert %v", a.StrictMode, a.State, a.PreemptDelay, a.LowerPrioNoAdvert)
	}
	if b.StrictMode || b.State != "MASTER" {
		t.Errorf("B: strict %v state %s", b.StrictMode, b.State)
	}
	want := "k.conf:7:9: warning: state MASTER of A: vrrp_strict wants state MASTER for the address owner only: BACKUP, as keepalived does\n" +
		"k.conf:8:17: warning: preempt_delay of A is incompatible with strict mode: reset to 0, as keepalived does\n" +
		"k.conf:9:24: warning: lower_prio_no_advert off in A: strict mode requires no lower priority advert, reset as keepalived does"
	if got := warningLines(warns); got != want {
		t.Errorf("warnings:\n%s\nwant\n%s", got, want)
	}
	c, warns = mustParseKA(t, glob+"vrrp_instance C {\n  interface eth0\n  virtual_router_id 3\n  version 2\n  virtual_ipaddress {\n    fe80::3\n  }\n}\n")
	if v := c.VRRPInstances[0]; v.Version != 3 || !strings.Contains(warningLines(warns), "k.conf:7:11: warning: version 2 of C: cannot use IPv6 with VRRP version 2; setting version 3") {
		t.Errorf("IPv6 version 2 under vrrp_strict: version %d, warnings:\n%s", v.Version, warningLines(warns))
	}
	_, _, err := parseKA(t, glob+"vrrp_instance A {\n  interface eth0\n  virtual_router_id 1\n  unicast_peer {\n    10.0.0.9\n  }\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n")
	if err == nil || !strings.Contains(err.Error(), "k.conf:7:3: unicast_peer in A: Unicast peers are not supported in strict mode") {
		t.Errorf("unicast under vrrp_strict: %v", err)
	}
}
