package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
	connsync "github.com/govs-lb/govs/internal/sync"
	"github.com/govs-lb/govs/internal/vrrp/vrrpd"
)

// syncRunner is the connection sync of a running director (docs/sync.md).
// It starts with govs when the configuration has a sync section, and
// govsadm --start-daemon / --stop-daemon (POST /api/v1/sync/start, stop)
// start and stop its roles at run time; the key always comes from the
// configuration's key_file.
type syncRunner struct {
	log *slog.Logger
	tpl syncTemplates // the director's persistence templates
	dr  connsync.DRFlows

	mu     sync.Mutex
	d      *connsync.Daemon // nil while stopped
	cfg    config.Sync
	svcs   []connsync.Service
	iface  string // what d runs with: the configuration's or the overrides
	syncID int
}

// readSyncKey reads the shared key of s.
func readSyncKey(s *config.Sync) ([]byte, error) {
	key, err := os.ReadFile(s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("sync key_file (%s): %w", s.At("key_file"), err)
	}
	key = bytes.TrimSpace(key)
	if len(key) < 16 {
		return nil, fmt.Errorf("sync key_file %s (%s): %d bytes, want at least 16", s.KeyFile, s.At("key_file"), len(key))
	}
	return key, nil
}

// startSync starts the connection sync of cfg, if any. With VRRP and the
// start-up resync on, the VRRP instances are held in backup (vd must not be
// applied yet) until the peers' tables are in, or the resync timeout passed.
func startSync(log *slog.Logger, cfg *config.Config, dir *director.Director, dp *forward.Multi, vd *vrrpd.Daemon) (*syncRunner, error) {
	s := cfg.Sync
	if s == nil {
		return nil, nil
	}
	r := &syncRunner{log: log, tpl: syncTemplates{dir}, dr: drSource(dp, s), cfg: *s, svcs: syncServices(cfg)}
	hold := s.Resync() && len(cfg.VRRPInstances) > 0
	if hold {
		vd.SetHold(true)
	}
	var onDone func(string, bool)
	if hold {
		onDone = func(peer string, timedOut bool) {
			if timedOut {
				log.Warn("vrrp released by connection sync: resync timed out, may take MASTER without the peers' flows")
			} else {
				log.Info("vrrp released by connection sync: peers' flows installed, may take MASTER", "peer", peer)
			}
			vd.SetHold(false)
		}
	}
	if err := r.run(s.Interface, s.SyncID, true, true, onDone); err != nil {
		vd.SetHold(false)
		return nil, err
	}
	if hold {
		log.Info("vrrp held in backup until the connection sync resync completes", "timeout", s.ResyncTimeout.D())
	}
	return r, nil
}

// run starts the daemon with the given interface, sync_id and roles; the
// caller holds mu or is the only user.
func (r *syncRunner) run(iface string, syncID int, master, backup bool, onDone func(string, bool)) error {
	s := &r.cfg
	key, err := readSyncKey(s)
	if err != nil {
		return err
	}
	d, err := connsync.Start(connsync.Options{Log: r.log, Interface: iface, Group: s.GroupAddr, Peers: s.PeerAddrs,
		Port: s.Port, SyncID: uint8(syncID), Key: key, FlushDelay: s.FlushDelay.D(), AliveInterval: s.AliveInterval.D(),
		Refresh: s.RefreshInterval.D(), ResyncTimeout: s.ResyncTimeout.D(), StartupResync: s.Resync() && backup,
		Services: r.svcs, OnResyncDone: onDone, NoMaster: !master, NoBackup: !backup, Templates: r.tpl, DR: r.dr})
	if err != nil {
		return err
	}
	r.tpl.d.SetTemplateHook(r.tpl.hook(d))
	r.d, r.iface, r.syncID = d, iface, syncID
	return nil
}

// Status is the daemon's state; "stopped" after govsadm --stop-daemon.
func (r *syncRunner) Status() connsync.DaemonStatus {
	r.mu.Lock()
	d := r.d
	r.mu.Unlock()
	if d == nil {
		return connsync.DaemonStatus{State: "stopped", Interface: r.cfg.Interface, SyncID: uint8(r.cfg.SyncID), Port: r.cfg.Port}
	}
	return d.Status()
}

func refused(format string, args ...any) error {
	return &api.Error{Code: api.CodeRefused, Message: fmt.Sprintf(format, args...)}
}

// StartRole starts role (master: send our flows; backup: install the
// peers'), and the sync with it when it is stopped, on iface and syncID
// when given (syncID -1: the configured one). A sync that runs keeps its
// interface and sync_id: another one is refused until it is stopped.
func (r *syncRunner) StartRole(role, iface string, syncID int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.d != nil {
		if (iface != "" && iface != r.iface) || (syncID >= 0 && syncID != r.syncID) {
			return refused("the sync runs on %s with sync_id %d: stop it first (--stop-daemon master and --stop-daemon backup)", r.iface, r.syncID)
		}
		m, b := r.d.Roles()
		if (role == "master" && m) || (role == "backup" && b) {
			return refused("the %s sync daemon is already running", role)
		}
		r.d.SetRoles(m || role == "master", b || role == "backup")
		r.log.Info("connection sync: role started", "role", role)
		return nil
	}
	if iface == "" {
		iface = r.cfg.Interface
	}
	if syncID < 0 {
		syncID = r.cfg.SyncID
	}
	if iface == "" && len(r.cfg.PeerAddrs) == 0 {
		return refused("multicast sync needs an interface: --mcast-interface, or sync.interface in the configuration")
	}
	if err := r.run(iface, syncID, role == "master", role == "backup", nil); err != nil {
		return refused("cannot start the connection sync: %v", err)
	}
	r.log.Info("connection sync started", "role", role, "interface", iface, "sync_id", syncID)
	return nil
}

// StopRole stops role; the sync stops with its last one.
func (r *syncRunner) StopRole(role string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.d == nil {
		return refused("no sync daemon is running")
	}
	m, b := r.d.Roles()
	if (role == "master" && !m) || (role == "backup" && !b) {
		return refused("the %s sync daemon is not running", role)
	}
	m, b = m && role != "master", b && role != "backup"
	if !m && !b {
		r.tpl.d.SetTemplateHook(nil)
		r.d.Stop()
		r.d = nil
		r.log.Info("connection sync stopped", "role", role)
		return nil
	}
	r.d.SetRoles(m, b)
	r.log.Info("connection sync: role stopped", "role", role)
	return nil
}

// syncServices are the services whose flows are synced.
func syncServices(cfg *config.Config) []connsync.Service {
	var out []connsync.Service
	for _, vs := range cfg.VirtualServers {
		if !cfg.Sync.Syncs(vs.Forwarding) {
			continue
		}
		if vs.FWMark != 0 {
			// Its flows carry its mark in conntrack (docs/fwmark.md).
			out = append(out, connsync.MarkService(vs.FWMark, vs.IsIPv6()))
			continue
		}
		if vs.Address.IsZero() {
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if cfg.Sync == nil || !reflect.DeepEqual(syncSettings(*cfg.Sync), syncSettings(r.cfg)) {
		r.log.Warn("the sync settings changed; they take effect when govs restarts")
		return
	}
	r.svcs = syncServices(cfg)
	if r.d != nil {
		r.d.SetServices(r.svcs)
	}
}

func syncSettings(s config.Sync) config.Sync {
	s.Meta = config.Meta{}
	return s
}

// stop ends the sync (nil: nothing to do).
func (r *syncRunner) stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.d != nil {
		r.tpl.d.SetTemplateHook(nil)
		r.d.Stop()
		r.d = nil
	}
}
