package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"reflect"

	"github.com/govs-lb/govs/internal/config"
	connsync "github.com/govs-lb/govs/internal/sync"
	"github.com/govs-lb/govs/internal/vrrp/vrrpd"
)

// syncRunner is the connection sync of a running director (docs/sync.md).
type syncRunner struct {
	log *slog.Logger
	d   *connsync.Daemon
	cfg config.Sync
}

// startSync starts the connection sync of cfg, if any. With VRRP and the
// start-up resync on, the VRRP instances are held in backup (vd must not be
// applied yet) until the peers' tables are in, or the resync timeout passed.
func startSync(log *slog.Logger, cfg *config.Config, vd *vrrpd.Daemon) (*syncRunner, error) {
	s := cfg.Sync
	if s == nil {
		return nil, nil
	}
	key, err := os.ReadFile(s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("sync key_file (%s): %w", s.At("key_file"), err)
	}
	key = bytes.TrimSpace(key)
	if len(key) < 16 {
		return nil, fmt.Errorf("sync key_file %s (%s): %d bytes, want at least 16", s.KeyFile, s.At("key_file"), len(key))
	}
	hold := s.Resync() && len(cfg.VRRPInstances) > 0
	if hold {
		vd.SetHold(true)
	}
	d, err := connsync.Start(connsync.Options{Log: log, Interface: s.Interface, Group: s.GroupAddr, Peers: s.PeerAddrs,
		Port: s.Port, SyncID: uint8(s.SyncID), Key: key, FlushDelay: s.FlushDelay.D(), AliveInterval: s.AliveInterval.D(),
		Refresh: s.RefreshInterval.D(), ResyncTimeout: s.ResyncTimeout.D(), StartupResync: s.Resync(),
		Services: syncServices(cfg),
		OnResyncDone: func(peer string, timedOut bool) {
			if !hold {
				return
			}
			if timedOut {
				log.Warn("vrrp released by connection sync: resync timed out, may take MASTER without the peers' flows")
			} else {
				log.Info("vrrp released by connection sync: peers' flows installed, may take MASTER", "peer", peer)
			}
			vd.SetHold(false)
		}})
	if err != nil {
		vd.SetHold(false)
		return nil, err
	}
	if hold {
		log.Info("vrrp held in backup until the connection sync resync completes", "timeout", s.ResyncTimeout.D())
	}
	return &syncRunner{log: log, d: d, cfg: *s}, nil
}

// syncServices are the services whose flows are synced.
func syncServices(cfg *config.Config) []connsync.Service {
	var out []connsync.Service
	for _, vs := range cfg.VirtualServers {
		if !cfg.Sync.Syncs(vs.Forwarding) || vs.Address.IsZero() {
			continue
		}
		proto := uint8(6)
		if vs.Protocol == config.UDP {
			proto = 17
		}
		out = append(out, connsync.Service{Proto: proto, Addr: vs.Address.AddrPort()})
	}
	return out
}

// reload follows a new configuration: the services synced change; the
// sync section itself needs a restart.
func (r *syncRunner) reload(cfg *config.Config) {
	if r == nil {
		if cfg.Sync != nil {
			slog.Default().Warn("a sync section was added; it takes effect when govs restarts")
		}
		return
	}
	if cfg.Sync == nil || !reflect.DeepEqual(syncSettings(*cfg.Sync), syncSettings(r.cfg)) {
		r.log.Warn("the sync settings changed; they take effect when govs restarts")
		return
	}
	r.d.SetServices(syncServices(cfg))
}

func syncSettings(s config.Sync) config.Sync {
	s.Meta = config.Meta{}
	return s
}

// stop ends the sync (nil: nothing to do).
func (r *syncRunner) stop() {
	if r != nil {
		r.d.Stop()
	}
}
