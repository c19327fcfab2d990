package proxy

import (
	"net/netip"
	"testing"

	"github.com/govs-lb/govs/internal/desired"
)

// The PROXY protocol setting of each real server comes from the snapshot;
// a server the previous snapshot listed keeps its setting for one more,
// since the scheduler may pick it between a reload's dataplane commit and
// the director's.
func TestWantedSendProxy(t *testing.T) {
	a, b, sorry := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.9:80")
	first := &desired.Service{Reals: []desired.RealServer{{Addr: a, SendProxy: desired.ProxyV2}, {Addr: b}},
		Sorry: &desired.RealServer{Addr: sorry, SendProxy: desired.ProxyV1}}
	w := newWanted(first, nil)
	if w.sendProxy[a] != desired.ProxyV2 || w.sendProxy[b] != desired.ProxyNone || w.sendProxy[sorry] != desired.ProxyV1 {
		t.Fatalf("sendProxy %v", w.sendProxy)
	}
	second := &desired.Service{Reals: []desired.RealServer{{Addr: b, SendProxy: desired.ProxyV1}}}
	w = newWanted(second, w)
	if w.sendProxy[a] != desired.ProxyV2 || w.sendProxy[b] != desired.ProxyV1 {
		t.Fatalf("after a reload: sendProxy %v", w.sendProxy)
	}
	if w = newWanted(second, w); len(w.sendProxy) != 1 || w.sendProxy[b] != desired.ProxyV1 {
		t.Fatalf("two snapshots later: sendProxy %v", w.sendProxy)
	}
	if w = newWanted(&desired.Service{Reals: []desired.RealServer{{Addr: a}}}, nil); w.sendProxy != nil {
		t.Fatal("a service without PROXY protocol allocates a map")
	}
}
