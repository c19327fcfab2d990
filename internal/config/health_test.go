package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const checked = `
virtual_servers:
  - address: 127.0.0.1:8080
    quorum: 2
    quorum_hysteresis: 1
    quorum_up: /usr/local/bin/up.sh
    quorum_down: /usr/local/bin/down.sh
    sorry_server: 127.0.0.1
    inhibit_on_failure: true
    alpha: true
    omega: true
    slow_start: 30s
    health_check:
      type: http
      path: /health
      expect_status: [200, 204]
      host: www.example.test
      interval: 500ms
      rise: 3
      retry: 2
      agent_port: 9999
    real_servers:
      - address: 127.0.0.1:9001
        weight: 10
        notify_up: echo up
        notify_down: echo down
      - address: 127.0.0.1:9002
        inhibit_on_failure: false
        alpha: false
        health_check:
          fall: 5
          port: 8081
      - address: 127.0.0.1:9003
        health_check:
          type: tcp
      - address: 127.0.0.1:9004
        health_check:
          type: none
`

func TestParseHealthAndLifecycle(t *testing.T) {
	c, err := Parse("test.yaml", []byte(checked))
	if err != nil {
		t.Fatal(err)
	}
	vs := c.VirtualServers[0]
	if *vs.Quorum != 2 || vs.QuorumHysteresis != 1 || !vs.InhibitOnFailure || !vs.Alpha || !vs.Omega ||
		vs.SlowStart.D() != 30*time.Second || vs.SorryServer.String() != "127.0.0.1:8080" {
		t.Fatalf("lifecycle keys: %+v", vs)
	}
	rs := vs.RealServers
	// Inherited as is, with defaults.
	c0 := rs[0].Check
	if c0 == nil || c0.Type != "http" || c0.Path != "/health" || c0.Interval.D() != 500*time.Millisecond ||
		c0.Timeout.D() != 500*time.Millisecond || c0.Rise != 3 || c0.Fall != DefaultHealthFall || *c0.Retry != 2 ||
		c0.DelayBeforeRetry.D() != DefaultHealthDelayBeforeRetry || c0.AgentPort != 9999 || rs[0].NotifyUp != "echo up" {
		t.Fatalf("inherited check: %+v", c0)
	}
	// Overridden key by key.
	c1 := rs[1].Check
	if c1.Type != "http" || c1.Path != "/health" || c1.Fall != 5 || c1.Port != 8081 || c1.Rise != 3 ||
		*rs[1].InhibitOnFailure || *rs[1].Alpha {
		t.Fatalf("overridden check: %+v", c1)
	}
	if c1.At("fall").Line != 31 || c1.At("path").Line != 15 {
		t.Fatalf("positions of a merged check: fall %v, path %v", c1.At("fall"), c1.At("path"))
	}
	// Another type replaces the whole check.
	if c2 := rs[2].Check; c2.Type != "tcp" || c2.Path != "" || c2.Rise != DefaultHealthRise || c2.AgentPort != 0 {
		t.Fatalf("replaced check: %+v", c2)
	}
	if rs[3].Check != nil {
		t.Fatalf("type none: %+v", rs[3].Check)
	}
	// The service's own block is not changed by resolving.
	if vs.HealthCheck.Fall != 0 || vs.HealthCheck.Timeout != 0 {
		t.Fatalf("resolving changed the service's block: %+v", vs.HealthCheck)
	}
	// Validating again (runtime changes validate a copy) finds nothing new.
	if err := c.Validate(); err != nil {
		t.Fatalf("second validation: %v", err)
	}
}

func TestHealthCheckTypes(t *testing.T) {
	for _, hc := range []string{
		"type: tcp\n        port: 81",
		"type: https\n        sni: www.example.test\n        tls_verify: false\n        expect_digest: 9b3a0c85a887a256d6939da88aabd8cd",
		"type: dns\n        query_name: example.com\n        query_type: aaaa",
		"type: script\n        command: /bin/true\n        dynamic: true\n        timeout: 10s",
		"type: agent\n        port: 9999",
		"type: smtp\n        helo_name: lb.example.com",
		"type: udp\n        payload: 'Ab12f 3'\n        require_reply: true\n        expect_reply: Ax12",
		"type: ping",
		"type: file\n        file: /run/weight\n        file_weight: 0",
	} {
		src := "virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - address: 127.0.0.1:81\n    health_check:\n        " + hc + "\n"
		if _, err := Parse("f.yaml", []byte(src)); err != nil {
			t.Errorf("%s: %v", strings.SplitN(hc, "\n", 2)[0], err)
		}
	}
}

func TestHealthValidationErrors(t *testing.T) {
	vs := "virtual_servers:\n  - address: 127.0.0.1:80\n"
	rs := "    real_servers:\n      - address: 127.0.0.1:81\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"no type", vs + "    health_check:\n      interval: 1s\n" + rs,
			[]string{`f.yaml:4:7: health_check needs a type`}},
		{"unknown type", vs + "    health_check:\n      type: htp\n" + rs,
			[]string{`f.yaml:4:13: unknown health check type "htp"`}},
		{"rise 0", vs + "    health_check:\n      type: tcp\n      rise: 0\n" + rs,
			[]string{`f.yaml:5:13: rise 0 out of range (1..1000)`}},
		{"interval 0", vs + "    health_check:\n      type: tcp\n      interval: 0s\n" + rs,
			[]string{`f.yaml:5:17: interval must be positive`}},
		{"key of another type", vs + "    health_check:\n      type: tcp\n      path: /\n" + rs,
			[]string{`f.yaml:5:13: path does not apply to a tcp check`}},
		{"digest", vs + "    health_check:\n      type: http\n      expect_digest: xyz\n" + rs,
			[]string{`f.yaml:5:22: expect_digest "xyz" is not an MD5 digest`}},
		{"status", vs + "    health_check:\n      type: http\n      expect_status: [200, 999]\n" + rs,
			[]string{`f.yaml:5:22: expect_status 999 is not an HTTP status`}},
		{"path", vs + "    health_check:\n      type: http\n      path: health\n" + rs,
			[]string{`f.yaml:5:13: path "health" must start with /`}},
		{"urls and path", vs + "    health_check:\n      type: http\n      path: /a\n      urls:\n        - path: /b\n" + rs,
			[]string{`f.yaml:5:13: path and urls: write the URL in urls`}},
		{"urls empty", vs + "    health_check:\n      type: http\n      urls: []\n" + rs,
			[]string{`f.yaml:5:13: urls needs at least one entry`}},
		{"url without path", vs + "    health_check:\n      type: http\n      urls:\n        - expect_status: [200]\n" + rs,
			[]string{`f.yaml:6:11: a url needs a path`}},
		{"url digest", vs + "    health_check:\n      type: http\n      urls:\n        - path: /\n        - path: /x\n          expect_digest: nope\n" + rs,
			[]string{`f.yaml:8:26: expect_digest "nope" is not an MD5 digest`}},
		{"urls on tcp", vs + "    health_check:\n      type: tcp\n      urls:\n        - path: /\n" + rs,
			[]string{`f.yaml:6:9: urls does not apply to a tcp check`}},
		{"script needs command", vs + "    health_check:\n      type: script\n" + rs,
			[]string{`f.yaml:4:7: a script check needs command`}},
		{"agent needs port", vs + "    health_check:\n      type: agent\n" + rs,
			[]string{`f.yaml:4:7: an agent check needs port`}},
		{"file needs file", vs + "    health_check:\n      type: file\n" + rs,
			[]string{`f.yaml:4:7: a file check needs file`}},
		{"port range", vs + "    health_check:\n      type: tcp\n      port: 70000\n" + rs,
			[]string{`f.yaml:5:13: port 70000 out of range (1..65535)`}},
		{"query type", vs + "    health_check:\n      type: dns\n      query_type: BOGUS\n" + rs,
			[]string{`f.yaml:5:19: unknown query_type "BOGUS"`}},
		{"payload", vs + "    health_check:\n      type: udp\n      payload: zz\n" + rs,
			[]string{`f.yaml:5:16: payload: invalid hex digits in zz`}},
		{"tls_ca", vs + "    health_check:\n      type: https\n      tls_ca: /nonexistent/ca.pem\n" + rs,
			[]string{`f.yaml:5:15: tls_ca: open /nonexistent/ca.pem: no such file or directory`}},
		{"retry", vs + "    health_check:\n      type: tcp\n      retry: -1\n" + rs,
			[]string{`f.yaml:5:14: retry -1 out of range (0..100)`}},
		{"real server override, at its own position", vs + "    health_check:\n      type: tcp\n" + rs + "        health_check:\n          fall: 0\n",
			[]string{`f.yaml:8:17: fall 0 out of range (1..1000)`}},
		{"a service's error is reported once for all its real servers",
			vs + "    health_check:\n      type: tcp\n      rise: 0\n    real_servers:\n      - address: 127.0.0.1:81\n        health_check:\n          fall: 2\n      - address: 127.0.0.1:82\n        health_check:\n          fall: 3\n",
			[]string{`f.yaml:5:13: rise 0 out of range (1..1000)`}},
		{"quorum", vs + "    quorum: 0\n" + rs,
			[]string{`f.yaml:3:13: quorum must be at least 1`}},
		{"hysteresis", vs + "    quorum: 2\n    quorum_hysteresis: 2\n" + rs,
			[]string{`f.yaml:4:24: quorum_hysteresis 2 must be below quorum 2`}},
		{"sorry server is a real server", vs + "    sorry_server: 127.0.0.1:81\n" + rs,
			[]string{`f.yaml:3:19: sorry_server 127.0.0.1:81 is also a real server (at f.yaml:5:18)`}},
		{"slow start", vs + "    slow_start: 10\n" + rs,
			[]string{`f.yaml:3:17: duration "10" needs a unit`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.src))
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("got %v, want an ErrorList", err)
			}
			if len(list) != len(tc.want) {
				t.Fatalf("got %d errors:\n%v\nwant %d", len(list), err, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(list[i].Error(), w) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, list[i], w)
				}
			}
		})
	}
}

func TestParseHex(t *testing.T) {
	b, err := ParseHex("Ab12f 3 456 546443123", false)
	if err != nil || string(b) != "\xab\x12\x0f\x03\x45\x06\x54\x64\x43\x12\x03" {
		t.Fatalf("ParseHex = %x, %v", b, err)
	}
	b, err = ParseHex("Ax", true)
	if err != nil || string(b) != "\xa0\xf0" {
		t.Fatalf("ParseHex wildcard = %x, %v", b, err)
	}
	if _, err := ParseHex("x1", false); err == nil {
		t.Fatal("x accepted without wildcard")
	}
}
