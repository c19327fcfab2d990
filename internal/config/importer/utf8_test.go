package importer

import (
	"strings"
	"testing"
)

// TestImportRefusesNonUTF8 checks that a string govs would run or write
// that is not UTF-8 is an error at its place, for govs run as for govs
// convert (FuzzImport found notify_master "/bin/n\xff" converted to !!binary
// YAML that loaded back as its base64 text), and that bytes in what is
// ignored are not.
func TestImportRefusesNonUTF8(t *testing.T) {
	vrrp := "vrrp_instance V {\n interface e\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n }\n"
	for _, tc := range []struct{ src, want string }{
		{vrrp + " notify_master /bin/n\xff\xfe\n}\n", `k.conf:7:16: notify_master: "/bin/n\xff\xfe" is not UTF-8 text`},
		{vrrp + " track_interface {\n  eth\xff\n }\n}\n", `k.conf:7:2: track_interfaces: "eth\xff" is not UTF-8 text`},
		{"virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  MISC_CHECK {\n   misc_path \"/bin/x \xe9\"\n  }\n }\n}\n",
			`k.conf:4:14: misc_path: "/bin/x \xe9" is not UTF-8 text`},
		{"virtual_server_group G\xff {\n 192.0.2.1-2 80\n}\nvirtual_server group G\xff {\n}\n", `k.conf:4:22: name: "G\xff/tcp/192.0.2.1:80" is not UTF-8 text`},
	} {
		_, _, err := parseKA(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
		out, _, cerr := Convert("k.conf", []byte(tc.src), Options{ConfigID: "main", FS: nil})
		if cerr == nil || out != nil {
			t.Errorf("%q: convert wrote\n%s", tc.src, out)
		}
	}
	if n := strings.Count(errText(parseKA(t, "virtual_server_group G\xff {\n 192.0.2.1-9 80\n}\nvirtual_server group G\xff {\n}\n")), "is not UTF-8"); n != 9 {
		t.Errorf("group of 9 addresses: %d errors, want one per virtual server", n)
	}
	// Ignored options may hold any bytes: a warning names them.
	if _, warns := mustParseKA(t, "global_defs {\n router_id caf\xe9\n}\n"); len(warns) != 1 {
		t.Errorf("warnings: %v", warns)
	}
}

func errText[C, W any](_ C, _ W, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestImportScriptUserNotUTF8 checks that a script's user, which govs
// ignores with a warning, is not checked as the script is.
func TestImportScriptUserNotUTF8(t *testing.T) {
	_, warns := mustParseKA(t, "virtual_server 192.0.2.1 80 {\n quorum_up /bin/up us\xe9r\n}\n")
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "k.conf:2:20: warning: quorum_up's user") {
		t.Errorf("warnings: %v", warns)
	}
}
