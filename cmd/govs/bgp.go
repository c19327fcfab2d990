package main

import (
	"log/slog"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/bgp"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// startBGP starts the BGP speaker once the director serves its services,
// so a VIP is only announced when something answers behind it.
func startBGP(log *slog.Logger, d *director.Director, srv *api.Server, cfg *config.Config) (*bgp.Daemon, error) {
	bd := bgp.New(log, bgp.Options{Services: d})
	srv.SetBGP(bd)
	if err := bd.Apply(cfg); err != nil {
		return nil, err
	}
	return bd, nil
}

// reloadBGP follows a reload; an error keeps the speaker as it was. (The
// configuration's BGP warnings come with the others, from loadFlags.load.)
func reloadBGP(log *slog.Logger, bd *bgp.Daemon, cfg *config.Config) {
	if err := bd.Apply(cfg); err != nil {
		log.Error("bgp reload failed", "err", err)
	}
}
