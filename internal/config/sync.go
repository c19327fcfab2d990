package config

import (
	"net/netip"
	"time"
)

// Sync is the connection synchronisation between directors (docs/sync.md):
// the flows of kernel-forwarded services sent to the peers so that a
// failover keeps established connections.
type Sync struct {
	Meta `yaml:"-"`

	// Interface is the sync link; required for multicast.
	Interface string `yaml:"interface,omitempty"`
	// Peers are unicast peer addresses; without them the group is used.
	Peers []string `yaml:"peers,omitempty"`
	// Group is the multicast group, default 224.0.0.81 (IPVS's).
	Group string `yaml:"group,omitempty"`
	// Port is the UDP port, default 8848 (IPVS's).
	Port int `yaml:"port,omitempty"`
	// SyncID (0-255) tells several sync domains on one link apart.
	SyncID int `yaml:"sync_id,omitempty"`
	// KeyFile holds the shared key (its bytes, at least 16) every message
	// is authenticated with (HMAC-SHA256).
	KeyFile string `yaml:"key_file,omitempty"`
	// Forwarding lists the forwarding methods whose flows are synced:
	// nat, fullnat and dr (the default: all three). Persistence templates
	// are synced for every forwarding.
	Forwarding []Forwarding `yaml:"forwarding,omitempty"`
	// FlushDelay is how long changes wait to be batched (default 5ms).
	FlushDelay Duration `yaml:"flush_delay,omitempty"`
	// AliveInterval is the heartbeat of an idle sender (default 1s).
	AliveInterval Duration `yaml:"alive_interval,omitempty"`
	// RefreshInterval: flows kept alive by traffic are sent again before
	// they would time out on the peers (default 10s).
	RefreshInterval Duration `yaml:"refresh_interval,omitempty"`
	// ResyncTimeout bounds the wait for the peers' tables at start: VRRP
	// does not take MASTER before the bulk resync ends or this passes
	// (default 10s).
	ResyncTimeout Duration `yaml:"resync_timeout,omitempty"`
	// StartupResync asks the peers for their tables at start (default true).
	StartupResync *bool `yaml:"startup_resync,omitempty"`

	// Resolved by Validate.
	PeerAddrs []netip.Addr `yaml:"-"`
	GroupAddr netip.Addr   `yaml:"-"`
}

// Defaults of the sync section.
const (
	DefaultSyncPort          = 8848
	DefaultSyncGroup         = "224.0.0.81"
	DefaultSyncResyncTimeout = 10 * time.Second
)

// Resync reports whether the start-up resync runs.
func (s *Sync) Resync() bool { return s.StartupResync == nil || *s.StartupResync }

// Syncs reports whether flows of forwarding f are synced.
func (s *Sync) Syncs(f Forwarding) bool {
	for _, x := range s.Forwarding {
		if x == f {
			return true
		}
	}
	return false
}

func (s *Sync) validate(errs *ErrorList) {
	if s.Port == 0 {
		s.Port = DefaultSyncPort
	}
	if s.Port < 1 || s.Port > 65535 {
		errs.add(s.At("port"), "sync port %d out of range 1-65535", s.Port)
	}
	if s.SyncID < 0 || s.SyncID > 255 {
		errs.add(s.At("sync_id"), "sync_id %d out of range 0-255", s.SyncID)
	}
	if s.KeyFile == "" {
		errs.add(s.Pos, "sync needs key_file: every sync message is authenticated with the key it holds")
	}
	if len(s.Peers) > 0 && s.Group != "" {
		errs.add(s.At("group"), "sync takes peers (unicast) or group (multicast), not both")
	}
	s.PeerAddrs = nil
	for _, p := range s.Peers {
		a, err := netip.ParseAddr(p)
		if err != nil || a.IsMulticast() || a.IsUnspecified() {
			errs.add(s.At("peers"), "invalid sync peer %q: want a unicast IP address", p)
			continue
		}
		a = a.Unmap()
		if len(s.PeerAddrs) > 0 && s.PeerAddrs[0].Is4() != a.Is4() {
			errs.add(s.At("peers"), "sync peers mix IPv4 and IPv6 (%s, %s): one family per sync link", s.PeerAddrs[0], a)
			continue
		}
		s.PeerAddrs = append(s.PeerAddrs, a)
	}
	if len(s.Peers) == 0 {
		g := s.Group
		if g == "" {
			g = DefaultSyncGroup
		}
		a, err := netip.ParseAddr(g)
		if err != nil || !a.IsMulticast() {
			errs.add(s.At("group"), "invalid sync group %q: want a multicast address, for example 224.0.0.81 or ff02::81", g)
		}
		s.GroupAddr = a
		if s.Interface == "" {
			errs.add(s.Pos, "sync over multicast needs interface (the sync link), or set peers for unicast")
		}
	}
	if len(s.Forwarding) == 0 {
		s.Forwarding = []Forwarding{NAT, FullNAT, DR}
	}
	for _, f := range s.Forwarding {
		if f != NAT && f != FullNAT && f != DR {
			errs.add(s.At("forwarding"), "sync forwarding %q: only nat, fullnat and dr flows are synced (a proxied connection cannot move; its persistence templates are synced anyway)", f)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"flush_delay", s.FlushDelay}, {"alive_interval", s.AliveInterval}, {"refresh_interval", s.RefreshInterval}, {"resync_timeout", s.ResyncTimeout}} {
		if d.v < 0 {
			errs.add(s.At(d.key), "sync %s must not be negative", d.key)
		}
	}
	if s.FlushDelay.D() > time.Second {
		errs.add(s.At("flush_delay"), "sync flush_delay %v is over 1s: flows would reach the peers late", s.FlushDelay.D())
	}
	if s.ResyncTimeout == 0 {
		s.ResyncTimeout = Duration(DefaultSyncResyncTimeout)
	}
}
