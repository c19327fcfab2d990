package config

import (
	"strings"
	"testing"
)

func TestTrackServices(t *testing.T) {
	base := `virtual_servers:
  - name: web
    address: 127.0.0.1:80
  - address: 127.0.0.1:81
vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    priority: 150
    virtual_ipaddresses: [192.0.2.1/24]
    track_services: %s
`
	for _, tc := range []struct{ tracks, want string }{
		{"[{name: web, weight: -60}, {name: tcp/127.0.0.1:81}]", ""},
		{"[{name: db}]", `f.yaml:11:29: track service "db" is not a virtual server of this configuration`},
		{"[{name: web}, {name: web}]", `f.yaml:11:42: virtual server "web" tracked twice`},
		{"[{name: web, weight: 300}]", `f.yaml:11:42: track service web: weight 300 out of range (-254..254)`},
	} {
		_, err := Parse("f.yaml", []byte(strings.Replace(base, "%s", tc.tracks, 1)))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.tracks, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.tracks, err, tc.want)
		}
	}
}

func TestVRRPAcceptFalseRefused(t *testing.T) {
	src := "vrrp_instances:\n  - name: VI_1\n    interface: eth0\n    virtual_router_id: 51\n    priority: 150\n    virtual_ipaddresses: [192.0.2.1/24]\n    accept: false\n"
	_, err := Parse("f.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "f.yaml:7:13: accept: false is not supported") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Parse("f.yaml", []byte(strings.Replace(src, "accept: false", "accept: true", 1))); err != nil {
		t.Fatal(err)
	}
}
