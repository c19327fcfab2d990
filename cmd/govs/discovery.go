package main

import (
	"log/slog"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/discovery"
)

// startDiscovery runs the discovery blocks of cfg (docs/discovery.md):
// sources feed the director, never the dataplane. The runner is applied
// again after each reload with the configuration the director took, which
// is the file's: blocks never come from the API.
func startDiscovery(log *slog.Logger, d *director.Director, srv *api.Server, cfg *config.Config) *discovery.Runner {
	r := discovery.NewRunner(log, d)
	srv.SetDiscovery(r)
	r.Apply(cfg)
	return r
}
