package config

import (
	"strings"
	"testing"
)

func TestDiscoveryValidation(t *testing.T) {
	base := "virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers: []\n    discovery: "
	for _, tc := range []struct{ block, want string }{
		{"{type: kubernetes, namespace: a}", "govs.yaml:4:16: discovery type kubernetes needs service"},
		{"{type: kubernetes, service: Web}", `govs.yaml:4:44: invalid kubernetes service name "Web"`},
		{"{type: kubernetes, service: web, namespace: a_b}", `invalid kubernetes namespace "a_b"`},
		{"{type: kubernetes, service: web, port: http_alt}", `invalid kubernetes port "http_alt"`},
		{"{type: kubernetes, service: web, port: 70000}", `invalid kubernetes port "70000"`},
		{"{type: kubernetes, service: web, path: /x}", "path does not apply to discovery type kubernetes"},
		{"{type: consul}", `unknown discovery type "consul"`},
		{"{path: /x}", "discovery needs a type"},
		{"{type: file}", "discovery type file needs path"},
		{"{type: file, path: /x, prefix: /p}", "prefix does not apply to discovery type file"},
		{"{type: dns, name: web.example.com}", "is a host name: give port"},
		{"{type: dns, name: _http._tcp.example.com, server: 10.0.0.1}", `invalid dns server "10.0.0.1"`},
		{"{type: etcd, endpoints: [127.0.0.1:2379], prefix: /p}", `invalid etcd endpoint "127.0.0.1:2379"`},
		{"{type: etcd, endpoints: [http://127.0.0.1:2379]}", "needs prefix"},
		{"{type: docker}", "needs label"},
		{"{type: docker, label: app=web, host: /run/docker.sock}", `invalid docker host`},
		{"{type: file, path: /x, fail_policy: drop}", `invalid fail_policy "drop"`},
		{"{type: file, path: /x, max_drop: 1.5}", "invalid fraction"},
		{"{type: file, path: /x, port: 0}", `invalid discovery port "0"`},
		{"{type: file, path: /x, interval: 10ms}", "below 100ms"},
	} {
		_, err := Parse("govs.yaml", []byte(base+tc.block+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.block, err, tc.want)
		}
	}
	c, err := Parse("govs.yaml", []byte(base+"{type: dns, name: _http._tcp.example.com, max_drop: 25%}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.VirtualServers[0].Discovery
	if d.FailPolicy != FailKeepLast || float64(*d.MaxDrop) != 0.25 || d.Confirm != 3 || d.Drain != c.GracePeriod || d.Origin() != "dns:_http._tcp.example.com" {
		t.Fatalf("defaults: %+v", d)
	}
	if err := c.Validate(); err != nil { // runtime changes validate again
		t.Fatal(err)
	}
	for _, ok := range []string{"{type: kubernetes, service: web}", "{type: kubernetes, service: web, port: http, namespace: shop, kubeconfig: /etc/govs/kubeconfig}",
		"{type: kubernetes, service: web, port: 8080}"} {
		c, err := Parse("govs.yaml", []byte(base+ok+"\n"))
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		if o := c.VirtualServers[0].Discovery.Origin(); !strings.HasPrefix(o, "kubernetes:") {
			t.Errorf("%s: origin %q", ok, o)
		}
	}
}
