package importer

import (
	"strings"
	"testing"
)

// TestImportAcceptedAsKeepalived checks the lines keepalived 2.2.7 accepts
// with a warning (keepalived -t) and govs once refused: each loads, with
// keepalived's meaning and a warning at the line.
func TestImportAcceptedAsKeepalived(t *testing.T) {
	const vi = "vrrp_instance V {\n  interface eth0\n  virtual_router_id 1\n"
	for _, tc := range []struct {
		name, src, warn string
		check           func(t *testing.T, src string)
	}{
		{name: "track_script of an undefined script",
			src:  vi + "  virtual_ipaddress {\n    10.0.0.1\n  }\n  track_script {\n    chk\n  }\n}\n",
			warn: `k.conf:8:5: warning: track_script chk: no vrrp_script "chk" is defined, ignoring it, as keepalived does`},
		{name: "vrrp_script without script",
			src: "vrrp_script chk {\n  interval 1\n}\n" + vi + "  virtual_ipaddress {\n    10.0.0.1\n  }\n  track_script {\n    chk\n  }\n}\n",
			warn: "k.conf:1:1: warning: vrrp_script chk has no script: removed, as keepalived does\n" +
				`k.conf:11:5: warning: track_script chk: no vrrp_script "chk" is defined, ignoring it, as keepalived does`},
		{name: "address twice, with a label",
			src:  vi + "  virtual_ipaddress {\n    10.0.0.1\n    10.0.0.1 label eth0:1\n  }\n}\n",
			warn: "k.conf:6:5: warning: virtual_ipaddress 10.0.0.1 is listed at line 5 already: added once, as keepalived does (this line is ignored)"},
		{name: "old sync group syntax",
			src:  "vrrp_sync_group G {\n  V\n}\n" + vi + "  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
			warn: "k.conf:2:3: warning: V: unknown keyword in vrrp_sync_group (ignored, as keepalived: members go inside group { })\nk.conf:1:1: warning: vrrp_sync_group G has no instances: removed, as keepalived does"},
		{name: "lvs_sync_daemon_interface",
			src:  vi + "  lvs_sync_daemon_interface eth1\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
			warn: "k.conf:4:3: warning: lvs_sync_daemon_interface has no govs equivalent (ignored)"},
		{name: "authentication without auth_pass",
			src:  vi + "  state BACKUP\n  authentication {\n    auth_type AH\n  }\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n",
			warn: "k.conf:5:3: warning: authentication of V: Authentication specified but no password given. Ignoring, as keepalived does: no authentication"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, warns := mustParseKA(t, tc.src)
			if got := warningLines(warns); got != tc.warn {
				t.Errorf("warnings:\n%s\nwant\n%s", got, tc.warn)
			}
			v := c.VRRPInstances[0]
			switch {
			case len(v.TrackScripts) != 0:
				t.Errorf("track scripts %v, want none", v.TrackScripts)
			case len(v.VirtualIPAddresses) != 1 || v.VirtualIPAddresses[0].Label != "":
				t.Errorf("virtual addresses %v, want the first line's", v.VirtualIPAddresses)
			case len(c.VRRPSyncGroups) != 0:
				t.Errorf("sync groups %v, want none", c.VRRPSyncGroups)
			case v.Authentication != nil:
				t.Errorf("authentication %+v, want none", v.Authentication)
			case strings.Contains(tc.src, "MASTER") && v.State != "BACKUP":
				t.Errorf("state %s, want BACKUP", v.State)
			}
		})
	}
}

// TestImportAuthAH: auth_type AH is kept (govs speaks keepalived's AH);
// state MASTER becomes BACKUP with keepalived's warning, except for the
// address owner.
func TestImportAuthAH(t *testing.T) {
	for _, tc := range []struct {
		state, prio, warn, want string
	}{
		{"BACKUP", "100", "", "BACKUP"},
		{"MASTER", "100", "k.conf:4:9: warning: state MASTER of V: Initial state master is incompatible with AH authentication - clearing: BACKUP, as keepalived does", "BACKUP"},
		{"MASTER", "255", "", "MASTER"},
	} {
		src := "vrrp_instance V {\n  interface eth0\n  virtual_router_id 1\n  state " + tc.state + "\n  priority " + tc.prio +
			"\n  authentication {\n    auth_type AH\n    auth_pass secret\n  }\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n"
		c, warns := mustParseKA(t, src)
		if got := warningLines(warns); got != tc.warn {
			t.Errorf("%s %s: warnings:\n%s\nwant\n%s", tc.state, tc.prio, got, tc.warn)
		}
		v := c.VRRPInstances[0]
		if a := v.Authentication; a == nil || a.AuthType != "AH" || a.AuthPass != "secret" || v.State != tc.want {
			t.Errorf("%s %s: authentication %+v, state %s", tc.state, tc.prio, a, v.State)
		}
	}
}

// TestImportUseVMAC: use_vmac [NAME] [MAC] and vmac_xmit_base; unicast
// peers get vmac_xmit_base as keepalived sets it.
func TestImportUseVMAC(t *testing.T) {
	const vi = "vrrp_instance V {\n  interface eth0\n  virtual_router_id 7\n  virtual_ipaddress {\n    10.0.0.1\n  }\n"
	c, warns := mustParseKA(t, vi+"  use_vmac\n}\n")
	if v := c.VRRPInstances[0]; len(warns) != 0 || !v.UseVMAC || v.VMACInterface != "vrrp.7" || v.VMACXmitBase {
		t.Errorf("use_vmac: %+v, warnings %s", v, warningLines(warns))
	}
	c, warns = mustParseKA(t, vi+"  use_vmac vmac7 00:00:5e:00:01:07\n  vmac_xmit_base\n}\n")
	if v := c.VRRPInstances[0]; !v.UseVMAC || v.VMACInterface != "vmac7" || !v.VMACXmitBase ||
		warningLines(warns) != "k.conf:7:18: warning: use_vmac MAC address 00:00:5e:00:01:07 has no govs equivalent (ignored): govs uses the virtual router MAC 00:00:5e:00:01:VRID" {
		t.Errorf("use_vmac NAME MAC: %+v, warnings %s", v, warningLines(warns))
	}
	c, warns = mustParseKA(t, vi+"  use_vmac\n  unicast_peer {\n    10.0.0.9\n  }\n}\n")
	if v := c.VRRPInstances[0]; !v.VMACXmitBase ||
		warningLines(warns) != "k.conf:7:3: warning: use_vmac in V: unicast with use_vmac requires vmac_xmit_base - setting, as keepalived does" {
		t.Errorf("use_vmac with unicast: %+v, warnings %s", v, warningLines(warns))
	}
}
