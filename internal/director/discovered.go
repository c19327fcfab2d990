package director

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/govs-lb/govs/internal/config"
)

// Discovered real servers (internal/discovery, docs/discovery.md) join a
// virtual service's written ones through the same path as every runtime
// change: the director records each service's discovered set apart from
// the configuration and merges it into every configuration it applies (a
// change, a reload), so a reload of the file neither drops them nor needs
// the sources to answer again, and an API edit of the service cannot lose
// them.

// ErrDiscovered is the error of an API or govsadm change to a discovered
// real server; its text names the source.
var ErrDiscovered = errors.New("real server is discovered")

// DiscoveredError names the source of a discovered real server that a
// change tried to edit.
type DiscoveredError struct {
	Addr   netip.AddrPort
	Origin string
}

func (e *DiscoveredError) Error() string {
	return fmt.Sprintf("real server %s was discovered by %s: change it at its source (or remove the service's discovery block)", e.Addr, e.Origin)
}

func (e *DiscoveredError) Is(target error) bool { return target == ErrDiscovered }

// discoveredSets is the director's record of discovered real servers.
type discoveredSets struct {
	mu   sync.Mutex
	sets map[string][]*config.RealServer // by service key
}

// SetDiscovered makes servers the discovered real servers of the virtual
// service with the given key (all from one origin, each with Origin set),
// replacing its previous set atomically; nil removes them all. A
// discovered address that is also written in the configuration stays the
// written one. The set is validated with the service; on error nothing
// changes.
func (d *Director) SetDiscovered(key string, servers []*config.RealServer) error {
	d.admin.Lock()
	defer d.admin.Unlock()
	d.disc.mu.Lock()
	prev, had := d.disc.sets[key]
	if d.disc.sets == nil {
		d.disc.sets = map[string][]*config.RealServer{}
	}
	if servers == nil {
		delete(d.disc.sets, key)
	} else {
		d.disc.sets[key] = servers
	}
	d.disc.mu.Unlock()
	restore := func() {
		d.disc.mu.Lock()
		if had {
			d.disc.sets[key] = prev
		} else {
			delete(d.disc.sets, key)
		}
		d.disc.mu.Unlock()
	}
	cur := d.Config()
	if cur == nil {
		restore()
		return ErrNoService
	}
	next := copyWritten(cur)
	d.mergeDiscovered(next)
	if err := next.Validate(); err != nil {
		restore()
		return err
	}
	if err := d.Apply(next); err != nil {
		restore()
		return &ChangeError{err}
	}
	if vs := d.Service(key); vs != nil {
		// Its source's first set is in (applied warm: warmLocked); the
		// servers it finds from now on are added to a running service.
		vs.mu.Lock()
		vs.firstDiscovery = false
		vs.mu.Unlock()
	}
	return nil
}

// warmLocked says whether rc, if new to the service, starts at full weight
// although the service runs: a discovered server of its source's first set
// since the service started. After a restart of govs those servers were
// serving already, as the written ones were, and an operator restarting
// govs does not want the whole discovered pool ramping up again.
func (vs *VirtualService) warmLocked(rc *config.RealServer) bool {
	return vs.firstDiscovery && rc.Origin != ""
}

// copyWritten is CopyConfig without the discovered real servers, which
// mergeDiscovered drops and replaces anyway: a 5,000-server set is not
// deep-copied (reflection, 5,000 allocations and more) on every change.
func copyWritten(c *config.Config) *config.Config {
	shallow := *c
	shallow.VirtualServers = make([]*config.VirtualServer, len(c.VirtualServers))
	for i, vs := range c.VirtualServers {
		shallow.VirtualServers[i] = vs
		if vs == nil || !slices.ContainsFunc(vs.RealServers, func(rs *config.RealServer) bool { return rs != nil && rs.Origin != "" }) {
			continue
		}
		v := *vs
		v.RealServers = slices.DeleteFunc(slices.Clone(vs.RealServers), func(rs *config.RealServer) bool { return rs != nil && rs.Origin != "" })
		shallow.VirtualServers[i] = &v
	}
	return CopyConfig(&shallow)
}

// mergeDiscovered replaces the discovered real servers in c with the
// director's record: the ones c has (from the configuration in force, or
// echoed by an API client) are dropped, the recorded ones appended.
func (d *Director) mergeDiscovered(c *config.Config) {
	d.disc.mu.Lock()
	defer d.disc.mu.Unlock()
	for _, vs := range c.VirtualServers {
		if vs == nil || (vs.Address.IsZero() && vs.FWMark == 0) {
			continue
		}
		kept := vs.RealServers[:0:0]
		written := map[netip.AddrPort]bool{}
		for _, rs := range vs.RealServers {
			if rs != nil && rs.Origin != "" {
				continue
			}
			kept = append(kept, rs)
			if rs != nil && !rs.Address.IsZero() {
				a := rs.Address
				if !a.HasPort {
					a.Port = vs.Address.Port
				}
				written[netip.AddrPortFrom(a.Addr, a.Port)] = true
			}
		}
		if vs.Discovery != nil {
			// Only a service that still has a discovery block keeps its
			// discovered servers: a reload that removes the block drops them.
			for _, rs := range d.disc.sets[vs.Key()] {
				if !written[rs.Address.AddrPort()] {
					c := *rs
					kept = append(kept, &c)
				}
			}
		}
		vs.RealServers = kept
	}
}

// hasDiscovered reports whether any discovered set is recorded.
func (d *Director) hasDiscovered() bool {
	d.disc.mu.Lock()
	defer d.disc.mu.Unlock()
	return len(d.disc.sets) > 0
}

// discoveredOrigin returns the origin of the real server addr of vs, or "".
func discoveredOrigin(vs *config.VirtualServer, addr netip.AddrPort) string {
	if i := findRealServer(vs, addr); i >= 0 {
		return vs.RealServers[i].Origin
	}
	return ""
}

// withDiscovered returns cfg with the discovered servers merged in, if it
// validates so; otherwise cfg as it is (a reload whose new settings refuse
// a discovered server still applies the file).
func (d *Director) withDiscovered(cfg *config.Config) *config.Config {
	if !d.hasDiscovered() {
		return cfg
	}
	next := CopyConfig(cfg)
	d.mergeDiscovered(next)
	if err := next.Validate(); err != nil {
		d.log.Error("discovered real servers do not fit the reloaded configuration; applying it without them until their sources answer again", "err", err)
		return cfg
	}
	return next
}

// discoveryBlockError refuses a runtime change of a discovery block.
type discoveryBlockError struct{ key string }

func (e *discoveryBlockError) Error() string {
	return fmt.Sprintf("virtual service %s: discovery blocks are set in the configuration file only (a source reads files and reaches hosts as govs)", e.key)
}

func (e *discoveryBlockError) Is(target error) bool { return target == ErrDiscovered }

// sameDiscovery refuses a runtime change that adds, changes or removes a
// discovery block: a source reads files, reaches daemons and hosts with
// govs's privileges, which an API token must not choose. Deleting a whole
// service is allowed.
func sameDiscovery(cur, next *config.Config) error {
	before := map[string]*config.Discovery{}
	if cur != nil {
		for _, vs := range cur.VirtualServers {
			if vs != nil {
				before[vs.Key()] = vs.Discovery
			}
		}
	}
	for _, vs := range next.VirtualServers {
		if vs == nil || (vs.Address.IsZero() && vs.FWMark == 0) {
			continue
		}
		b := before[vs.Key()]
		if (b == nil) != (vs.Discovery == nil) {
			return &discoveryBlockError{vs.Key()}
		}
		if b != nil && !sameBlock(b, vs.Discovery) {
			return &discoveryBlockError{vs.Key()}
		}
	}
	return nil
}

// sameBlock compares two blocks, the second perhaps not validated yet (an
// API body echoing the block in force): defaults are filled in on a copy.
func sameBlock(a, b *config.Discovery) bool {
	x, y := *a, *b
	x.Meta, y.Meta = config.Meta{}, config.Meta{}
	if y.FailPolicy == "" {
		y.FailPolicy = x.FailPolicy
	}
	fill := func(dst *config.Duration, v config.Duration) {
		if *dst == 0 {
			*dst = v
		}
	}
	fill(&y.Interval, x.Interval)
	fill(&y.Timeout, x.Timeout)
	fill(&y.ConfirmTime, x.ConfirmTime)
	fill(&y.Settle, x.Settle)
	fill(&y.Drain, x.Drain)
	if y.Confirm == 0 {
		y.Confirm = x.Confirm
	}
	if y.MaxDrop == nil {
		y.MaxDrop = x.MaxDrop
	}
	if y.Weight == nil {
		y.Weight = x.Weight
	}
	return reflect.DeepEqual(x, y)
}
