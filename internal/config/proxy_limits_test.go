package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// tcpfin_timeout and the per-client limits: defaults, and each misuse
// reported at its key.
func TestProxyLimitKeys(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(`virtual_servers:
  - address: 127.0.0.1:80
    max_connections_per_client: 10
  - address: 127.0.0.1:53
    protocol: udp
    max_flows_per_client: 4
  - address: 127.0.0.1:81
    tcpfin_timeout: 5s
`))
	if err != nil {
		t.Fatal(err)
	}
	vs := cfg.VirtualServers
	if vs[0].TCPFinTimeout.D() != DefaultTCPFinTimeout || vs[0].MaxConnectionsPerClient != 10 {
		t.Errorf("tcp: tcpfin %v, per client %d", vs[0].TCPFinTimeout.D(), vs[0].MaxConnectionsPerClient)
	}
	if vs[1].TCPFinTimeout != 0 || vs[1].MaxFlowsPerClient != 4 {
		t.Errorf("udp: tcpfin %v, per client %d", vs[1].TCPFinTimeout.D(), vs[1].MaxFlowsPerClient)
	}
	if vs[2].TCPFinTimeout.D() != 5*time.Second {
		t.Errorf("tcpfin_timeout %v, want 5s", vs[2].TCPFinTimeout.D())
	}

	for _, tc := range []struct{ src, want string }{
		{"virtual_servers:\n  - address: 127.0.0.1:53\n    protocol: udp\n    tcpfin_timeout: 5s\n",
			"f.yaml:4:21: tcpfin_timeout applies to tcp virtual servers only"},
		{"virtual_servers:\n  - address: 127.0.0.1:80\n    max_flows_per_client: 3\n",
			"f.yaml:3:27: max_flows_per_client applies to udp virtual servers only"},
		{"virtual_servers:\n  - address: 127.0.0.1:53\n    protocol: udp\n    max_connections_per_client: 3\n",
			"f.yaml:4:33: max_connections_per_client applies to tcp virtual servers only"},
		{"virtual_servers:\n  - address: 127.0.0.1:80\n    max_connections_per_client: -1\n",
			"f.yaml:3:33: max_connections_per_client must not be negative"},
	} {
		_, err := Parse("f.yaml", []byte(tc.src))
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(list[0].Error(), tc.want) {
			t.Errorf("%q: %v, want %s", tc.src, err, tc.want)
		}
	}
}
