package main

import (
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/forward"
	"github.com/govs-lb/govs/internal/forward/nft"
	connsync "github.com/govs-lb/govs/internal/sync"
)

// syncDR carries the DR dataplane's flows (flow -> real server) over the
// connection sync: connsync.DRFlows over nft.Dataplane.
type syncDR struct{ k *nft.Dataplane }

// drSource is the kernel dataplane's DR flows, when the sync takes dr.
func drSource(dp *forward.Multi, s *config.Sync) connsync.DRFlows {
	if dp == nil || !s.Syncs(config.DR) {
		return nil
	}
	k, ok := dp.Route(desired.DR).(*nft.Dataplane)
	if !ok {
		return nil
	}
	return syncDR{k}
}

func (s syncDR) DRFlows(yield func(connsync.Entry) bool) error {
	return s.k.DRFlows(func(f nft.DRFlow) bool { return yield(drEntry(f)) })
}

func (s syncDR) DRNewFlows(yield func(connsync.Entry) bool) error {
	return s.k.DRNewFlows(func(f nft.DRFlow) bool { return yield(drEntry(f)) })
}

// drEntry is a DR flow as the sync carries it.
func drEntry(f nft.DRFlow) connsync.Entry {
	c := netip.AddrPortFrom(f.Client.Addr().Unmap(), f.Client.Port())
	v := netip.AddrPortFrom(f.VIP.Addr().Unmap(), f.VIP.Port())
	return connsync.Entry{Kind: connsync.KindDR, Proto: f.Proto, Timeout: uint32((f.Expires + time.Second - 1) / time.Second),
		Orig:  connsync.Tuple{Src: c, Dst: v},
		Reply: connsync.Tuple{Src: netip.AddrPortFrom(f.RealServer.Unmap(), v.Port()), Dst: c}}
}

func (s syncDR) InstallDRFlows(es []connsync.Entry) error {
	flows := make([]nft.DRFlow, 0, len(es))
	for _, e := range es {
		flows = append(flows, nft.DRFlow{Proto: e.Proto, Client: e.Orig.Src, VIP: e.Orig.Dst, RealServer: e.Reply.Src.Addr(),
			Expires: time.Duration(e.Timeout) * time.Second})
	}
	return s.k.InstallDRFlows(flows)
}
