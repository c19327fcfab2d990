package config

import "testing"

func TestDetectFormat(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"virtual_servers:\n  - address: 1.2.3.4:80\n", FormatYAML},
		{"# comment\n\n---\nvirtual_servers: []\n", FormatYAML},
		{"\ufeffapi: {socket: /tmp/s}\n", FormatYAML},
		{"vrrp_instances:\n", FormatYAML},
		{"{virtual_servers: []}", FormatYAML},
		{"\"virtual_servers\": []\n", FormatYAML},
		{"virtual_server:\n  - bad: [\n", FormatYAML}, // broken YAML stays YAML
		{"", FormatYAML},
		{"! keepalived\nglobal_defs {\n}\n", FormatKeepalived},
		{"# keepalived\nvirtual_server 2001:db8::1 80 {\n}\n", FormatKeepalived},
		{"vrrp_instance VI_1 {\n", FormatKeepalived},
		{"include /etc/keepalived/conf.d/*.conf\n", FormatKeepalived},
		{"$VIP=192.0.2.1\n", FormatKeepalived},
		{"@main router_id a\n", FormatKeepalived},
	} {
		if got := DetectFormat([]byte(tc.src)); got != tc.want {
			t.Errorf("DetectFormat(%q) = %s, want %s", tc.src, got, tc.want)
		}
	}
}
