package director

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// SyncedTemplate is a persistence template as the connection sync carries
// it between directors (docs/sync.md): a client group bound to a real
// server of a service, whatever the service's forwarding.
type SyncedTemplate struct {
	Protocol config.Protocol
	Virtual  netip.AddrPort // invalid for a fwmark service
	FWMark   uint32
	IPv6     bool // a fwmark service's family
	Client   netip.Addr
	// RealServer is the real server's address as configured.
	RealServer netip.AddrPort
	// Expires is how long the template has left once unused.
	Expires time.Duration
	// Remote: installed from a peer and not used here since.
	Remote bool
}

// templateHook is the director's template hook, shared with its services.
type templateHook = atomic.Pointer[func(SyncedTemplate)]

// SetTemplateHook makes every persistence template bound from now on go to
// hook (nil: none). hook runs on the connection's path: it must not block.
func (d *Director) SetTemplateHook(hook func(SyncedTemplate)) {
	if hook == nil {
		d.tplHook.Store(nil)
		return
	}
	d.tplHook.Store(&hook)
}

// bound tells the hook of a template just bound.
func (vs *VirtualService) bound(p *persistence, client netip.Addr, rs *RealServer) {
	if vs.tplHook == nil {
		return
	}
	if f := vs.tplHook.Load(); f != nil {
		(*f)(SyncedTemplate{Protocol: vs.Protocol, Virtual: vs.Address, FWMark: vs.FWMark, IPv6: vs.IPv6,
			Client: p.cfg.Netmask.Apply(client), RealServer: rs.Addr, Expires: p.cfg.Timeout})
	}
}

// SyncedTemplates lists the live persistence templates of every service.
func (d *Director) SyncedTemplates(yield func(SyncedTemplate) bool) {
	for _, vs := range d.Services() {
		p := vs.persist.Load()
		if p == nil {
			continue
		}
		stop := false
		p.table.Templates(func(e persistEntry) bool {
			rs, _ := e.Dest.Owner.(*RealServer)
			if rs == nil {
				return true
			}
			stop = !yield(SyncedTemplate{Protocol: vs.Protocol, Virtual: vs.Address, FWMark: vs.FWMark, IPv6: vs.IPv6,
				Client: e.Client, RealServer: rs.Addr, Expires: e.Expires, Remote: e.Remote})
			return !stop
		})
		if stop {
			return
		}
	}
}

// ErrNoTemplateTarget: a peer's template names a service that is not
// persistent here, or a real server it does not have.
var ErrNoTemplateTarget = errors.New("no such persistent service or real server here")

// InstallTemplate installs a peer director's template: its client goes to
// the same real server here while the template lives.
func (d *Director) InstallTemplate(t SyncedTemplate) error {
	for _, vs := range d.Services() {
		if vs.Protocol != t.Protocol || vs.FWMark != t.FWMark || (t.FWMark == 0 && vs.Address != t.Virtual) ||
			(t.FWMark != 0 && vs.IPv6 != t.IPv6) {
			continue
		}
		p := vs.persist.Load()
		if p == nil {
			return fmt.Errorf("%s: not persistent: %w", vs.Key, ErrNoTemplateTarget)
		}
		for _, rs := range vs.RealServers() {
			if rs.Addr == t.RealServer {
				return p.table.Install(vs.Address, t.Client, rs.Dest, t.Expires)
			}
		}
		return fmt.Errorf("%s: real server %s: %w", vs.Key, t.RealServer, ErrNoTemplateTarget)
	}
	return fmt.Errorf("service %s %v (fwmark %d): %w", t.Protocol, t.Virtual, t.FWMark, ErrNoTemplateTarget)
}
