package config

import (
	"strings"
	"testing"
	"time"
)

func TestSyncSection(t *testing.T) {
	c, err := Parse("t.yaml", []byte("virtual_servers: []\nsync: {interface: eth1, key_file: /etc/govs/sync.key, sync_id: 7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sync
	if s.Port != 8848 || s.GroupAddr.String() != "224.0.0.81" || !s.Resync() || s.ResyncTimeout.D() != 10*time.Second ||
		!s.Syncs(NAT) || !s.Syncs(FullNAT) || s.SyncID != 7 {
		t.Errorf("defaults: %+v", s)
	}
	c, err = Parse("t.yaml", []byte("virtual_servers: []\nsync: {peers: [10.0.0.2, 10.0.0.3], key_file: k, forwarding: [nat], startup_resync: false, port: 9000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Sync; len(s.PeerAddrs) != 2 || s.Syncs(FullNAT) || s.Resync() || s.Port != 9000 {
		t.Errorf("unicast: %+v", s)
	}
	for _, tc := range []struct{ src, want string }{
		{"sync: {interface: eth0}\n", "t.yaml:1:7: sync needs key_file"},
		{"sync: {key_file: k}\n", "t.yaml:1:7: sync over multicast needs interface"},
		{"sync: {interface: e, key_file: k, group: 10.0.0.1}\n", "t.yaml:1:42: invalid sync group \"10.0.0.1\""},
		{"sync: {key_file: k, peers: [10.0.0.1, fd00::1]}\n", "sync peers mix IPv4 and IPv6"},
		{"sync: {key_file: k, peers: [10.0.0.1], group: 224.0.0.81}\n", "sync takes peers (unicast) or group (multicast), not both"},
		{"sync: {interface: e, key_file: k, sync_id: 256}\n", "sync_id 256 out of range 0-255"},
		{"sync: {interface: e, key_file: k, port: 70000}\n", "sync port 70000 out of range"},
		{"sync: {interface: e, key_file: k, forwarding: [proxy]}\n", "a proxied connection cannot move"},
		{"sync: {interface: e, key_file: k, flush_delay: 2s}\n", "flush_delay 2s is over 1s"},
	} {
		_, err := Parse("t.yaml", []byte("virtual_servers: []\n"+tc.src))
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "t.yaml:2:", "t.yaml:1:"), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
