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
