package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// servicePoll is how often the services' quorum is read. Quorum changes at
// health-check pace (seconds); a quarter second adds little to a withdraw.
const servicePoll = 250 * time.Millisecond

// Services is what the daemon needs of the director: whether a virtual
// service has its quorum (known is false for a service the director does
// not run). The director's ServiceUp, as VRRP's track_services uses.
type Services interface {
	ServiceUp(name string) (up, known bool)
}

// Options configure a Daemon.
type Options struct {
	Services Services
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// ShutdownDelay is how long Withdraw waits after taking the routes
	// back, so the router moves new connections elsewhere before the
	// listeners close. Default 2s.
	ShutdownDelay time.Duration
}

// vipSource is one VIP and the services that decide its health.
type vipSource struct {
	prefix   netip.Prefix
	attrs    Attrs
	services []string
}

// Daemon runs the speaker for a configuration and keeps the announced
// routes in step with the services' health.
type Daemon struct {
	log  *slog.Logger
	opts Options

	mu       sync.Mutex
	cfg      *config.BGP
	sp       *Speaker
	core     *Core
	vips     []vipSource
	running  bool
	stopping bool
	kick     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

// New returns a daemon that does nothing until Apply.
func New(log *slog.Logger, o Options) *Daemon {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ShutdownDelay == 0 {
		o.ShutdownDelay = 2 * time.Second
	}
	return &Daemon{log: log, opts: o, kick: make(chan struct{}, 1)}
}

func prefixOf(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// vipsOf lists the announced VIPs of cfg, sorted.
func vipsOf(cfg *config.Config) []vipSource {
	byVIP := map[netip.Addr]*vipSource{}
	for _, vs := range cfg.VirtualServers {
		if !cfg.Announced(vs) {
			continue
		}
		a := vs.Address.Addr
		v := byVIP[a]
		if v == nil {
			v = &vipSource{prefix: prefixOf(a), attrs: attrsOf(vs.BGP)}
			byVIP[a] = v
		}
		v.services = append(v.services, vs.Name)
	}
	out := make([]vipSource, 0, len(byVIP))
	for _, v := range byVIP {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b vipSource) int { return a.prefix.Addr().Compare(b.prefix.Addr()) })
	return out
}

func attrsOf(b *config.ServiceBGP) Attrs {
	var a Attrs
	if b == nil {
		return a
	}
	for _, s := range b.Communities {
		if c, err := config.ParseCommunity(s); err == nil { // validated
			a.Communities = append(a.Communities, c)
		}
	}
	if b.MED != nil {
		m := uint32(*b.MED)
		a.MED = &m
	}
	a.Prepend = b.ASPathPrepend
	return a
}

func dampingOf(b *config.BGP) Damping {
	return Damping{AnnounceDelay: b.AnnounceDelay.D(), HalfLife: b.Damping.HalfLife.D(),
		Suppress: float64(b.Damping.Suppress), Reuse: float64(b.Damping.Reuse)}
}

// Apply starts, changes or stops the speaker to match cfg. A change of
// asn, router_id or listen_port restarts it (every session resets);
// peers are changed one by one; the VIPs follow at once.
func (d *Daemon) Apply(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping {
		return nil
	}
	b := cfg.BGP
	if b == nil {
		d.stopLocked()
		return nil
	}
	if d.sp != nil && (d.cfg.ASN != b.ASN || d.cfg.RouterID != b.RouterID || d.cfg.ListenPort != b.ListenPort) {
		d.log.Info("bgp: identity changed, restarting the speaker")
		d.stopLocked()
	}
	if d.sp == nil {
		sp, err := NewSpeaker(d.log, b)
		if err != nil {
			return err
		}
		d.sp, d.core = sp, NewCore(dampingOf(b))
		ctx, cancel := context.WithCancel(context.Background())
		d.cancel, d.done = cancel, make(chan struct{})
		go d.loop(ctx, d.done)
		d.log.Info("bgp speaker started", "asn", b.ASN, "router_id", b.RouterID.String(), "peers", len(b.Peers))
	} else {
		if err := d.sp.SetPeers(b.Peers); err != nil {
			d.log.Error("bgp: peers", "err", err)
		}
		d.core.damp = dampingOf(b)
	}
	d.cfg = b
	d.vips = vipsOf(cfg)
	d.running = true
	d.poke()
	return nil
}

func (d *Daemon) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// stopLocked withdraws everything and stops the speaker.
func (d *Daemon) stopLocked() {
	if d.sp == nil {
		return
	}
	d.cancel()
	d.mu.Unlock()
	<-d.done
	d.mu.Lock()
	d.sp.Stop()
	d.sp, d.core, d.cfg = nil, nil, nil
}

// loop re-evaluates the routes when poked, when the core asks, and every
// servicePoll for quorum changes.
func (d *Daemon) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	poll := time.NewTicker(servicePoll)
	defer poll.Stop()
	var wake *time.Timer
	for {
		var wakeC <-chan time.Time
		if next := d.step(); !next.IsZero() {
			if wake != nil {
				wake.Stop()
			}
			wake = time.NewTimer(max(time.Until(next), 0))
			wakeC = wake.C
		}
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		case <-poll.C:
		case <-wakeC:
		}
	}
}

// input reads the services' state for the core.
func (d *Daemon) input() Input {
	in := Input{Running: d.running && !d.stopping, Synced: true}
	for _, v := range d.vips {
		vip := VIP{Prefix: v.prefix, Attrs: v.attrs, Up: true}
		for _, name := range v.services {
			if d.opts.Services == nil {
				continue
			}
			up, known := d.opts.Services.ServiceUp(name)
			vip.Up = vip.Up && up
			vip.Fault = vip.Fault || !known
		}
		in.VIPs = append(in.VIPs, vip)
	}
	return in
}

// step runs the core once and applies its decision.
func (d *Daemon) step() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sp == nil {
		return time.Time{}
	}
	dec := d.core.Step(d.opts.Now(), d.input())
	for _, p := range dec.Withdraw {
		if err := d.sp.Withdraw(p); err != nil {
			d.log.Error("bgp", "err", err)
		} else {
			d.log.Info("bgp: withdrawn", "prefix", p.String())
		}
	}
	for _, r := range dec.Announce {
		if err := d.sp.Announce(r); err != nil {
			d.log.Error("bgp", "err", err)
		} else {
			d.log.Info("bgp: announced", "prefix", r.Prefix.String())
		}
	}
	return dec.Next
}

// Withdraw takes every route back for a shutdown and waits ShutdownDelay
// so the router moves new connections before the caller closes the
// listeners. The sessions stay up: established connections the router
// still sends here (none, once it has converged) keep flowing.
func (d *Daemon) Withdraw() {
	d.mu.Lock()
	if d.sp == nil || d.stopping {
		d.mu.Unlock()
		return
	}
	d.stopping = true
	announced := len(d.sp.Announced()) > 0
	d.mu.Unlock()
	d.step()
	d.mu.Lock()
	d.sp.WithdrawAll()
	delay := d.opts.ShutdownDelay
	d.mu.Unlock()
	if !announced {
		return // nothing for the router to move
	}
	d.log.Info("bgp: routes withdrawn before draining", "wait", delay)
	time.Sleep(delay)
}

// Stop withdraws every route and closes the sessions.
func (d *Daemon) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopping = true
	d.stopLocked()
}

// Status is what GET /api/v1/bgp shows.
type Status struct {
	Status   string       `json:"status,omitempty"` // "bgp not configured" without a bgp section
	ASN      uint32       `json:"asn,omitempty"`
	RouterID string       `json:"router_id,omitempty"`
	Peers    []PeerStatus `json:"peers"`
	VIPs     []VIPReport  `json:"vips"`
}

// VIPReport is one VIP's announcement state.
type VIPReport struct {
	Prefix     string   `json:"prefix"`
	Services   []string `json:"services"`
	Healthy    bool     `json:"healthy"`
	Announced  bool     `json:"announced"`
	Suppressed bool     `json:"suppressed"`
	Penalty    float64  `json:"penalty"`
	Flaps      uint64   `json:"flaps"`
}

// Status reports the speaker, its peers and the VIPs.
func (d *Daemon) Status(ctx context.Context) Status {
	d.mu.Lock()
	sp := d.sp
	if sp == nil {
		d.mu.Unlock()
		return Status{Status: "bgp not configured", Peers: []PeerStatus{}, VIPs: []VIPReport{}}
	}
	st := Status{ASN: uint32(d.cfg.ASN), RouterID: d.cfg.RouterID.String(), VIPs: []VIPReport{}}
	in := d.input()
	core := map[netip.Prefix]VIPStatus{}
	for _, v := range d.core.Status(d.opts.Now()) {
		core[v.Prefix] = v
	}
	for i, v := range d.vips {
		c := core[v.prefix]
		st.VIPs = append(st.VIPs, VIPReport{Prefix: v.prefix.String(), Services: v.services,
			Healthy: in.VIPs[i].Up && !in.VIPs[i].Fault, Announced: c.Announced, Suppressed: c.Suppressed,
			Penalty: c.Penalty, Flaps: c.Flaps})
	}
	d.mu.Unlock()
	st.Peers = sp.Peers(ctx)
	if st.Peers == nil {
		st.Peers = []PeerStatus{}
	}
	return st
}
