package main

import (
	"log/slog"

	"github.com/govs-lb/govs/internal/config"
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
	return forward.NewMulti(map[config.Forwarding]director.Dataplane{
		config.Proxy: proxy.New(log), config.NAT: k, config.FullNAT: k, config.DR: k,
	})
}
