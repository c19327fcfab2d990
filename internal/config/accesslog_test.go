package config

import (
	"strings"
	"testing"
)

func TestAccessLogValues(t *testing.T) {
	const vs = "\nvirtual_servers: [{address: 127.0.0.1:80, real_servers: [{address: 127.0.0.1:81}]}]\n"
	for in, want := range map[string]AccessLog{
		"true": AccessLogStream, "false": "", `"/var/log/govs/access.log"`: "/var/log/govs/access.log",
		"syslog+udp://127.0.0.1:514": "syslog+udp://127.0.0.1:514", `"syslog+tcp://[::1]:601"`: "syslog+tcp://[::1]:601",
	} {
		c, err := Parse("t.yaml", []byte("logging: {access_log: "+in+"}"+vs))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := c.Logging.AccessLog; got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
		if got, wantOn := c.Logging.AccessLog.Enabled(), want != ""; got != wantOn {
			t.Errorf("%s: enabled %v", in, got)
		}
		// govs convert writes it back as it was given.
		out, err := EncodeYAML(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse("back.yaml", out)
		if err != nil || back.Logging == nil && want != "" || back.Logging != nil && back.Logging.AccessLog != want {
			t.Errorf("%s: round trip: %v\n%s", in, err, out)
		}
	}
	for in, msg := range map[string]string{
		"relative.log":            "t.yaml:1:23: access_log file \"relative.log\" must be an absolute path",
		"syslog+udp://nohost":     "t.yaml:1:23: invalid syslog target",
		"syslog+tcp://h:99999":    "t.yaml:1:23: invalid port \"99999\"",
		"[a, b]":                  "t.yaml:1:23: expected a single value",
		"https://logs.example/in": "t.yaml:1:23: invalid access_log target",
	} {
		_, err := Parse("t.yaml", []byte("logging: {access_log: "+in+"}"+vs))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: error %v, want %s", in, err, msg)
		}
	}
}
