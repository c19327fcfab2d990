package main

import (
	"log/slog"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
	"github.com/govs-lb/govs/internal/forward/nft"
	"github.com/govs-lb/govs/internal/forward/proxy"
)

// newDataplane routes proxy services to the userspace proxy and nat and
// fullnat ones to the kernel dataplane, which touches the kernel only once
// a nat or fullnat service is configured.
func newDataplane(log *slog.Logger) *forward.Multi {
	k := nft.New(log, nft.Options{})
	return forward.NewMulti(map[desired.Forwarding]director.Dataplane{
		desired.Proxy: proxy.New(log), desired.NAT: k, desired.FullNAT: k, desired.DR: k,
	})
}
