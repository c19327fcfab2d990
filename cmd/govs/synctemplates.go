package main

import (
	"errors"
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	connsync "github.com/govs-lb/govs/internal/sync"
)

// syncTemplates carries the director's persistence templates over the
// connection sync, for every forwarding (proxy included: a proxied
// connection cannot move, but its client's affinity can).
type syncTemplates struct{ d *director.Director }

func protoNum(p config.Protocol) uint8 {
	if p == config.UDP {
		return 17
	}
	return 6
}

// templateEntry is t as the sync's entry (connsync.Templates).
func templateEntry(t director.SyncedTemplate) (connsync.Entry, bool) {
	client := t.Client.Unmap()
	vip := netip.AddrPortFrom(t.Virtual.Addr().Unmap(), t.Virtual.Port())
	if t.FWMark != 0 {
		vip = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if t.IPv6 {
			vip = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	rs := netip.AddrPortFrom(t.RealServer.Addr().Unmap(), t.RealServer.Port())
	if !client.IsValid() || client.Is4() != vip.Addr().Is4() || rs.Addr().Is4() != client.Is4() {
		return connsync.Entry{}, false // one family per entry
	}
	c := netip.AddrPortFrom(client, 0)
	secs := uint32((t.Expires + time.Second - 1) / time.Second)
	return connsync.Entry{Kind: connsync.KindTemplate, Proto: protoNum(t.Protocol), Mark: t.FWMark, Timeout: secs,
		Orig: connsync.Tuple{Src: c, Dst: vip}, Reply: connsync.Tuple{Src: rs, Dst: c}}, true
}

func (s syncTemplates) Templates(yield func(connsync.Entry, bool) bool) {
	s.d.SyncedTemplates(func(t director.SyncedTemplate) bool {
		e, ok := templateEntry(t)
		return !ok || yield(e, t.Remote)
	})
}

func (s syncTemplates) InstallTemplate(e connsync.Entry) error {
	if e.Kind != connsync.KindTemplate {
		return errors.New("not a template")
	}
	proto := config.TCP
	if e.Proto == 17 {
		proto = config.UDP
	}
	t := director.SyncedTemplate{Protocol: proto, FWMark: e.Mark, IPv6: e.Orig.Src.Addr().Is6(), Client: e.Orig.Src.Addr(),
		RealServer: e.Reply.Src, Expires: time.Duration(e.Timeout) * time.Second}
	if e.Mark == 0 {
		t.Virtual = e.Orig.Dst
	}
	return s.d.InstallTemplate(t)
}

// hook sends every template bound here to d.
func (s syncTemplates) hook(d *connsync.Daemon) func(director.SyncedTemplate) {
	return func(t director.SyncedTemplate) {
		if e, ok := templateEntry(t); ok {
			d.TemplateBound(e)
		}
	}
}
