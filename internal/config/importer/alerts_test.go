package importer

import (
	"strconv"
	"strings"
	"testing"

	"github.com/govs-lb/govs/internal/config"
)

func vs(c *config.Config, i int) *config.VirtualServer { return c.VirtualServers[i] }

// TestImportAlerts checks the mapping of keepalived's mail settings: the
// global_defs to alerts.email, and keepalived's smtp_alert defaults (real
// servers alert, virtual servers and VRRP instances do not) written out.
func TestImportAlerts(t *testing.T) {
	const body = `
virtual_server 192.0.2.1 80 {
    real_server 10.0.0.1 80 {
    }
    real_server 10.0.0.2 80 {
        smtp_alert off
    }
}
virtual_server 192.0.2.2 80 {
    smtp_alert
    real_server 10.0.0.1 80 {
    }
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.1
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    smtp_alert
    virtual_ipaddress {
        192.0.2.2
    }
}
vrrp_sync_group G1 {
    group {
        VI_1
    }
}
vrrp_sync_group G2 {
    group {
        VI_2
    }
    smtp_alert
}
`
	c, warns := mustParseKA(t, `global_defs {
    notification_email {
        ops@example.com
        acassen
    }
    notification_email_from lb@example.com
    smtp_server 192.0.2.25 2525
    smtp_connect_timeout 10
    router_id LVS_1
}`+body)
	if len(warns) != 0 {
		t.Errorf("warnings:\n%s", warningLines(warns))
	}
	a := c.Alerts
	if a == nil || a.RouterID != "LVS_1" || a.Email == nil || a.Email.SMTPServer != "192.0.2.25:2525" || a.Email.From != "lb@example.com" ||
		a.Email.Timeout.D().Seconds() != 10 || len(a.Email.To) != 2 || a.Email.To[1] != "acassen" {
		t.Fatalf("alerts %+v, email %+v", a, a.Email)
	}
	flag := func(b *bool) string {
		if b == nil {
			return "unset"
		}
		if *b {
			return "on"
		}
		return "off"
	}
	vs0, vs1 := c.VirtualServers[0], c.VirtualServers[1]
	for what, got := range map[string][2]string{
		"virtual server without smtp_alert": {flag(vs0.Alert), "off"},
		"virtual server with smtp_alert":    {flag(vs1.Alert), "on"},
		"real server without smtp_alert":    {flag(vs0.RealServers[0].Alert), "unset"},
		"real server with smtp_alert off":   {flag(vs0.RealServers[1].Alert), "off"},
		"instance without smtp_alert":       {flag(c.VRRPInstances[0].Alert), "off"},
		"instance with smtp_alert":          {flag(c.VRRPInstances[1].Alert), "on"},
		"sync group without smtp_alert":     {flag(c.VRRPSyncGroups[0].Alert), "off"},
		"sync group with smtp_alert":        {flag(c.VRRPSyncGroups[1].Alert), "on"},
	} {
		if got[0] != got[1] {
			t.Errorf("%s: alert %s, want %s", what, got[0], got[1])
		}
	}

	// smtp_alert off in global_defs: nothing alerts unless it says so.
	c, _ = mustParseKA(t, "global_defs {\n notification_email {\n  ops@example.com\n }\n smtp_server 192.0.2.25\n smtp_alert off\n}"+body)
	if c.Alerts.Email.SMTPServer != "192.0.2.25:25" || flag(vs(c, 0).RealServers[0].Alert) != "off" || flag(vs(c, 1).Alert) != "on" {
		t.Errorf("with smtp_alert off: server %s, real server %s, service %s", c.Alerts.Email.SMTPServer,
			flag(vs(c, 0).RealServers[0].Alert), flag(vs(c, 1).Alert))
	}

	// No smtp_server: keepalived sends no mail; every mail line is a warning.
	c, warns = mustParseKA(t, "global_defs {\n notification_email {\n  ops@example.com\n }\n router_id X\n}"+body)
	if c.Alerts != nil || len(warns) != 2 {
		t.Errorf("without smtp_server: alerts %+v, warnings:\n%s", c.Alerts, warningLines(warns))
	}
}

// TestImportSMTPHosts checks SMTP_CHECK's hosts as keepalived reads them:
// each host block, and the check's own connect_ip/bindto first.
func TestImportSMTPHosts(t *testing.T) {
	c, warns := mustParseKA(t, `virtual_server 192.0.2.1 25 {
    real_server 10.0.0.1 25 {
        SMTP_CHECK {
            connect_ip 10.0.0.9
            bindto 10.0.0.254
            host {
                connect_ip 10.0.0.2
                connect_port 587
                bindto 10.0.0.253
            }
            host {
            }
        }
    }
}
`)
	if len(warns) != 0 {
		t.Errorf("warnings:\n%s", warningLines(warns))
	}
	hosts := c.VirtualServers[0].RealServers[0].Check.Hosts
	var got []string
	for _, h := range hosts {
		got = append(got, h.Address.String()+" "+h.Bind.String()+" "+strconv.Itoa(h.Port))
	}
	want := "10.0.0.9 10.0.0.254 0|10.0.0.2 10.0.0.253 587|invalid IP invalid IP 0"
	if strings.Join(got, "|") != want {
		t.Errorf("hosts %q, want %q", strings.Join(got, "|"), want)
	}
}
