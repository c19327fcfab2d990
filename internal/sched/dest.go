package sched

import (
	"net/netip"
	"sync/atomic"
)

// Dest is a real server as a scheduler sees it: an address, an effective
// weight and IPVS's connection counters.
//
// Counters follow IPVS: a new connection is bound inactive (Bind), becomes
// active when established (Activate), inactive again when it starts to close
// (Deactivate) and is released with Unbind. UDP flows stay inactive for their
// whole life, as in IPVS. The overload flag follows the upper and lower
// thresholds exactly as ip_vs_bind_dest and ip_vs_unbind_dest set and clear it.
type Dest struct {
	Addr netip.AddrPort
	// Owner lets the layer above map a pick back to its own real server.
	Owner any

	weight   atomic.Int32
	active   atomic.Int32
	inactive atomic.Int32
	overload atomic.Bool
	upper    atomic.Uint32 // 0: no upper threshold
	lower    atomic.Uint32 // 0: 3/4 of upper, as IPVS
	limit    atomic.Uint32 // hard cap on concurrent connections, 0: none
	total    atomic.Int32  // active + inactive, for the hard cap
	obs      atomic.Pointer[observerBox]
	// lastWeight is IPVS's last_weight: the latest non-zero weight, which
	// mh keeps a quiesced server's table slots with.
	lastWeight atomic.Int32
	// watchers are the indexes of the schedulers that hold d, kept apart
	// from the public observer so the two never displace each other.
	watchers atomic.Pointer[[]Observer]
	// templates is IPVS's persistconns: persistence templates pointing
	// here. No scheduler reads it; ipvsadm --persistent-conn shows it.
	templates atomic.Int32
}

// Observer is told when a Dest's connection counts, weight or overload state
// change. It is called synchronously by the Dest method that made the change,
// which holds no lock, so an Observer may take its own locks; it must not
// change d's counts itself. Schedulers that index real servers by load (lc,
// wlc, ...) use the same hook internally to keep their index current.
type Observer interface {
	CountsChanged(d *Dest)
}

type observerBox struct{ o Observer }

// NewDest returns a Dest for addr with the given weight.
func NewDest(addr netip.AddrPort, weight int) *Dest {
	d := &Dest{Addr: addr}
	d.weight.Store(int32(max(weight, 0)))
	d.lastWeight.Store(int32(max(weight, 0)))
	return d
}

// Weight is the effective weight: configured weight as changed by health
// checks, slow start, agents or an operator. 0 takes no new connections.
func (d *Dest) Weight() int { return int(d.weight.Load()) }

// SetWeight changes the effective weight. The caller must then call Update on
// the schedulers that use d, as weights are part of their precomputed state
// (wrr's gcd, sh's and mh's tables); the load indexes follow at once.
// A negative weight counts as 0.
func (d *Dest) SetWeight(w int) {
	w = max(w, 0)
	if w != 0 {
		d.lastWeight.Store(int32(w)) // as __ip_vs_update_dest
	}
	d.weight.Store(int32(w))
	d.changed()
}

// ActiveConns is IPVS's ActiveConn: established TCP connections.
func (d *Dest) ActiveConns() int { return int(d.active.Load()) }

// PersistConns is IPVS's PersistConn: the persistence templates that send
// clients to d.
func (d *Dest) PersistConns() int { return int(d.templates.Load()) }

// AddPersistConns moves PersistConns by delta; the persistence table calls
// it as templates come and go.
func (d *Dest) AddPersistConns(delta int) { d.templates.Add(int32(delta)) }

// InactiveConns is IPVS's InActConn: connecting or closing TCP connections
// and UDP flows.
func (d *Dest) InactiveConns() int { return int(d.inactive.Load()) }

// Overhead is IPVS's connection overhead, active x 256 + inactive: an
// established connection costs far more than one that is opening or closing.
func (d *Dest) Overhead() int { return int(d.active.Load())<<8 + int(d.inactive.Load()) }

// Overloaded reports whether the upper threshold or the connection limit has
// been reached; schedulers skip an overloaded Dest.
func (d *Dest) Overloaded() bool { return d.overload.Load() }

// Available reports whether d may take a new connection: weight above zero
// and not overloaded.
func (d *Dest) Available() bool { return d.weight.Load() > 0 && !d.overload.Load() }

// SetThresholds sets IPVS's upper and lower connection thresholds (-x, -y)
// and a hard connection limit (govs's max_connections). 0 means none;
// negative values count as 0.
//
// As __ip_vs_update_dest, removing or raising the upper threshold lifts the
// overload at once, while lowering it below the current count takes effect
// at the next Bind. The hard limit is govs's own and holds whenever the count
// is at the limit.
func (d *Dest) SetThresholds(upper, lower, limit int) {
	u := uint32(max(upper, 0))
	old := d.upper.Swap(u)
	d.lower.Store(uint32(max(lower, 0)))
	lim := uint32(max(limit, 0))
	d.limit.Store(lim)
	if u == 0 || u > old {
		d.overload.Store(false)
	}
	if lim != 0 && d.conns() >= lim {
		d.overload.Store(true)
	}
	d.changed()
}

// SetObserver registers an observer for the layer above (metrics, say); nil
// removes it. Scheduler indexes are attached through a separate hook by
// Update, so this one never displaces them.
func (d *Dest) SetObserver(o Observer) {
	if o == nil {
		d.obs.Store(nil)
		return
	}
	d.obs.Store(&observerBox{o})
}

func (d *Dest) changed() {
	if b := d.obs.Load(); b != nil {
		b.o.CountsChanged(d)
	}
	if w := d.watchers.Load(); w != nil {
		for _, o := range *w {
			o.CountsChanged(d)
		}
	}
}

// watch adds a scheduler index to the watchers of d.
func (d *Dest) watch(o Observer) {
	for {
		old := d.watchers.Load()
		var n []Observer
		if old != nil {
			n = make([]Observer, 0, len(*old)+1)
			n = append(n, *old...)
		}
		n = append(n, o)
		if d.watchers.CompareAndSwap(old, &n) {
			return
		}
	}
}

// unwatch removes a scheduler index added by watch.
func (d *Dest) unwatch(o Observer) {
	for {
		old := d.watchers.Load()
		if old == nil {
			return
		}
		n := make([]Observer, 0, len(*old))
		for _, x := range *old {
			if x != o {
				n = append(n, x)
			}
		}
		p := &n
		if len(n) == 0 {
			p = nil
		}
		if d.watchers.CompareAndSwap(old, p) {
			return
		}
	}
}

// Bind accounts a new connection (inactive until Activate). It fails, and
// accounts nothing, when the hard connection limit is reached.
func (d *Dest) Bind() bool {
	if lim := d.limit.Load(); lim != 0 {
		if n := d.total.Add(1); uint32(n) > lim {
			d.total.Add(-1)
			d.overload.Store(true)
			d.changed()
			return false
		}
	} else {
		d.total.Add(1)
	}
	d.inactive.Add(1)
	d.checkOverload()
	d.changed()
	return true
}

// Activate moves a bound connection from inactive to active (established).
func (d *Dest) Activate() {
	d.inactive.Add(-1)
	d.active.Add(1)
	d.changed()
}

// Deactivate moves an active connection back to inactive (closing).
func (d *Dest) Deactivate() {
	d.active.Add(-1)
	d.inactive.Add(1)
	d.changed()
}

// Unbind releases a connection that is active or inactive as given.
func (d *Dest) Unbind(active bool) {
	if active {
		d.active.Add(-1)
	} else {
		d.inactive.Add(-1)
	}
	d.total.Add(-1)
	d.relieve()
	d.changed()
}

func (d *Dest) conns() uint32 { return uint32(d.active.Load() + d.inactive.Load()) }

// checkOverload sets the overload flag as ip_vs_bind_dest does.
func (d *Dest) checkOverload() {
	n := d.conns()
	if u := d.upper.Load(); u != 0 && n >= u {
		d.overload.Store(true)
	}
	if lim := d.limit.Load(); lim != 0 && n >= lim {
		d.overload.Store(true)
	}
}

// relieve clears the overload flag as ip_vs_unbind_dest does: below the lower
// threshold, or below 3/4 of the upper one when no lower is set. The hard
// limit clears as soon as there is room.
func (d *Dest) relieve() {
	if !d.overload.Load() {
		return
	}
	n := d.conns()
	if lim := d.limit.Load(); lim != 0 && n >= lim {
		return
	}
	u, l := d.upper.Load(), d.lower.Load()
	switch {
	case l != 0:
		if n < l {
			d.overload.Store(false)
		}
	case u != 0:
		if n*4 < u*3 {
			d.overload.Store(false)
		}
	default:
		d.overload.Store(false)
	}
}
