package vrrpd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/script"
	"github.com/govs-lb/govs/internal/vrrp"
)

// Options tune a Daemon.
type Options struct {
	// NotifyTimeout bounds every notify and track script; 0 means
	// DefaultNotifyTimeout (track scripts use their own timeout).
	NotifyTimeout time.Duration
	// Services answers for track_services: whether a virtual service is
	// up (its quorum holds). Nil treats every tracked service as up.
	Services ServiceStates
	// OnState, when set, is called with each state an instance enters:
	// MASTER, BACKUP, FAULT, or STOP when it stops (alerts). It must not
	// block.
	OnState func(instance, state string, at time.Time)
	// OnGroupState likewise for each state a sync group enters.
	OnGroupState func(group, state string, at time.Time)
}

// ServiceStates is what the daemon needs of the director.
type ServiceStates interface {
	// ServiceUp reports whether the named virtual service is up; known is
	// false when there is no such service.
	ServiceUp(name string) (up, known bool)
}

// Daemon runs the VRRP instances of the configuration in force. Its methods
// are safe for concurrent use.
type Daemon struct {
	log  *slog.Logger
	opts Options
	ann  *announcer
	fw   firewall // strict_mode's nftables tables (strict_linux.go)

	mu          sync.Mutex                // serialises Apply and Stop; guards conns, watchDone, static
	static      map[string]*netlink.Route // static_routes installed, by their text
	staticIPs   map[string]vip            // static_ipaddresses added, by their text
	staticRules map[string]*netlink.Rule  // static_rules installed, by their text
	conns       map[connKey]*conn
	vmacBases   map[string]*baseSave // use_vmac base interfaces' saved sysctls (vmac_linux.go)
	watchDone   chan struct{}
	stopped     bool

	units atomic.Pointer[[]*unit] // running units, in configuration order
	hold  atomic.Bool             // SetHold
	// runAs is who scripts run as (script_user, script_security), set by
	// every Apply: running units pick a change up at their next script.
	runAs atomic.Pointer[script.Policy]
}

// scriptPolicy is who scripts run as now; the safe default before Apply.
func (d *Daemon) scriptPolicy() script.Policy {
	if p := d.runAs.Load(); p != nil {
		return *p
	}
	return script.Policy{}
}

// SetHold holds every instance in backup (held) or lets them go: the
// connection sync holds them until the director has its peers' flows.
// Instances started later inherit the hold.
func (d *Daemon) SetHold(held bool) {
	if d.hold.Swap(held) == held {
		return
	}
	for _, u := range *d.units.Load() {
		select {
		case u.inbox <- holdEvent{held}:
		case <-u.quit:
		}
	}
}

// New returns a daemon that runs nothing until Apply.
func New(log *slog.Logger, opts Options) *Daemon {
	if opts.NotifyTimeout <= 0 {
		opts.NotifyTimeout = DefaultNotifyTimeout
	}
	d := &Daemon{log: log, opts: opts, ann: newAnnouncer(), conns: map[connKey]*conn{}}
	d.units.Store(&[]*unit{})
	return d
}

// unitSpec is what one driver loop runs: a sync group or a lone instance.
type unitSpec struct {
	key   string
	fp    string // the configuration, to tell whether a reload changed it
	group *config.VRRPSyncGroup
	insts []*config.VRRPInstance
}

func plan(cfg *config.Config) []*unitSpec {
	byName := map[string]*config.VRRPInstance{}
	for _, vi := range cfg.VRRPInstances {
		byName[vi.Name] = vi
	}
	grouped := map[string]bool{}
	var specs []*unitSpec
	for _, g := range cfg.VRRPSyncGroups {
		s := &unitSpec{key: "group " + g.Name, group: g}
		for _, name := range g.Instances {
			s.insts = append(s.insts, byName[name])
			grouped[name] = true
		}
		specs = append(specs, s)
	}
	for _, vi := range cfg.VRRPInstances {
		if !grouped[vi.Name] {
			specs = append(specs, &unitSpec{key: "instance " + vi.Name, insts: []*config.VRRPInstance{vi}})
		}
	}
	for _, s := range specs {
		var b strings.Builder
		enc := yaml.NewEncoder(&b)
		enc.Encode(s.group)
		enc.Encode(s.insts)
		enc.Close()
		s.fp = b.String()
	}
	return specs
}

// Apply makes the configuration's VRRP instances run. Instances (or sync
// groups) whose configuration did not change keep running undisturbed;
// changed and removed ones are shut down as on Stop (a master sends
// priority 0 and removes its VIPs) and changed and new ones start. cfg must
// have been validated. An instance that cannot start (missing interface,
// no address to send from) makes Apply fail; nothing has changed when that
// is found before anything started.
func (d *Daemon) Apply(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return errors.New("vrrp: stopped")
	}
	specs := plan(cfg)
	runAs := cfg.ScriptPolicy()
	d.runAs.Store(&runAs)
	old := *d.units.Load()
	if len(specs) > 0 && d.watchDone == nil {
		if err := d.startWatcher(); err != nil {
			return err
		}
	}
	running := map[string]*unit{}
	for _, u := range old {
		running[u.key] = u
	}
	// Addresses that are VIPs (ours now or after the reload) never serve as
	// an instance's primary address.
	vips := map[netip.Addr]bool{}
	for _, vi := range cfg.VRRPInstances {
		for _, v := range vi.VirtualIPAddresses {
			vips[v.Addr()] = true
		}
	}
	for _, u := range old {
		for _, in := range u.insts {
			for _, v := range in.vips {
				vips[v.prefix.Addr()] = true
			}
		}
	}
	var next, fresh []*unit
	kept := map[*unit]bool{}
	for _, s := range specs {
		if u := running[s.key]; u != nil && u.fp == s.fp {
			kept[u] = true
			next = append(next, u)
			continue
		}
		u, err := d.build(s, vips)
		if err != nil {
			return err
		}
		next = append(next, u)
		fresh = append(fresh, u)
	}
	strict := false
	for _, vi := range cfg.VRRPInstances {
		strict = strict || vi.StrictMode
	}
	if strict {
		// Before any instance starts: a strict master's VIPs go into the
		// drop sets before they go on the interface.
		if err := d.fw.sync(true, strictServices(cfg)); err != nil {
			return err
		}
	}
	var stopping []*unit
	for _, u := range old {
		if !kept[u] {
			stopping = append(stopping, u)
		}
	}
	d.stopUnits(stopping)
	var errs []error
	started := next[:0]
	for _, u := range next {
		if !kept[u] {
			if err := d.start(u); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		started = append(started, u)
	}
	d.units.Store(&started)
	if !strict && len(cfg.VRRPInstances) > 0 {
		if err := d.fw.sync(false, nil); err != nil {
			errs = append(errs, err)
		}
	}
	d.applyStaticAddrs(cfg.StaticIPAddresses) // routes_linux.go; before the routes, whose src they may be
	d.applyStatic(cfg.StaticRoutes)
	d.applyStaticRules(cfg.StaticRules) // rules_linux.go
	if len(started) == 0 && d.watchDone != nil {
		close(d.watchDone)
		d.watchDone = nil
	}
	if len(fresh) > 0 || len(stopping) > 0 {
		d.log.Info("vrrp instances applied", "running", len(started), "started", len(fresh), "stopped", len(stopping))
	}
	return errors.Join(errs...)
}

// Stop shuts every instance down as RFC 5798 says: a master sends an
// advert with priority 0, so that a backup takes over after Skew_Time
// instead of Master_Down_Interval, and removes its VIPs; notify_stop
// scripts run. Call it before draining the dataplane. Apply fails after
// Stop.
func (d *Daemon) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	d.stopUnits(*d.units.Load())
	if err := d.fw.remove(); err != nil {
		d.log.Error("vrrp: stop", "err", err)
	}
	d.applyStaticRules(nil)
	d.applyStatic(nil)
	d.applyStaticAddrs(nil)
	d.units.Store(&[]*unit{})
	if d.watchDone != nil {
		close(d.watchDone)
		d.watchDone = nil
	}
	d.ann.close()
}

// Nodes returns a snapshot of every running instance, in configuration
// order.
func (d *Daemon) Nodes() []Node {
	var out []Node
	for _, u := range *d.units.Load() {
		u.mu.Lock()
		for _, in := range u.insts {
			n := in.snap
			n.VIPs = append([]netip.Prefix(nil), n.VIPs...)
			n.Faults = append([]string(nil), n.Faults...)
			out = append(out, n)
		}
		u.mu.Unlock()
	}
	return out
}

// stopUnits shuts units down in parallel and releases their sockets.
func (d *Daemon) stopUnits(units []*unit) {
	for _, u := range units {
		close(u.quit)
	}
	for _, u := range units {
		<-u.done
		for _, in := range u.insts {
			d.release(in)
		}
	}
}

// build resolves a unit's interfaces and addresses and creates its state
// machines; it opens nothing.
func (d *Daemon) build(s *unitSpec, vipSet map[netip.Addr]bool) (*unit, error) {
	u := &unit{d: d, key: s.key, fp: s.fp, gcfg: s.group,
		inbox: make(chan any, 256), quit: make(chan struct{}), done: make(chan struct{})}
	var machines []*vrrp.Machine
	for _, vi := range s.insts {
		in, err := d.buildInstance(u, vi, vipSet)
		if err != nil {
			return nil, fmt.Errorf("vrrp instance %s: %w", vi.Name, err)
		}
		u.insts = append(u.insts, in)
		machines = append(machines, in.m)
	}
	if s.group != nil {
		g, err := vrrp.NewSyncGroup(s.group.Name, machines...)
		if err != nil {
			return nil, err
		}
		u.group = g
	}
	return u, nil
}

func (d *Daemon) buildInstance(u *unit, vi *config.VRRPInstance, vipSet map[netip.Addr]bool) (*instance, error) {
	link, err := netlink.LinkByName(vi.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", vi.Interface, err)
	}
	v6 := vi.Is6()
	in := &instance{u: u, cfg: vi, link: link}
	in.src = vi.UnicastSrcIP.Addr
	if !in.src.IsValid() {
		if in.src, err = primaryAddr(link, v6, vipSet); err != nil {
			return nil, err
		}
	}
	for _, p := range vi.UnicastPeers {
		in.peers = append(in.peers, p.Addr)
	}
	links := map[string]netlink.Link{vi.Interface: link}
	var addrs []netip.Addr
	for _, v := range vi.VirtualIPAddresses {
		dev := v.Dev
		if dev == "" {
			dev = vi.Interface
		}
		l := links[dev]
		if l == nil {
			if l, err = netlink.LinkByName(dev); err != nil {
				return nil, fmt.Errorf("virtual address %s: interface %s: %w", v.Addr(), dev, err)
			}
			links[dev] = l
		}
		// With use_vmac the VIPs without a dev of their own go on the
		// macvlan, which start creates.
		in.vips = append(in.vips, vip{prefix: v.Prefix, link: l, label: v.Label, onVMAC: vi.UseVMAC && v.Dev == ""})
		addrs = append(addrs, v.Addr())
	}
	for _, r := range vi.VirtualRoutes {
		nr, err := netlinkRoute(r, links)
		if err != nil {
			return nil, fmt.Errorf("virtual route %s: %w", r, err)
		}
		in.routes = append(in.routes, nr)
	}
	for _, r := range vi.VirtualRules {
		in.rules = append(in.rules, netlinkRule(r))
	}
	in.tracks = append(in.tracks, &tracked{iface: vi.Interface, up: true})
	for _, ti := range vi.TrackInterfaces {
		if ti.Name == vi.Interface && ti.Weight == 0 {
			continue // always tracked
		}
		in.tracks = append(in.tracks, &tracked{iface: ti.Name, weight: ti.Weight, up: true})
	}
	for _, ts := range vi.TrackScripts {
		if _, err := config.SplitCommand(ts.Script); err != nil {
			return nil, fmt.Errorf("track script %s: %w", ts.Name, err)
		}
		in.tracks = append(in.tracks, &tracked{script: ts, weight: ts.Weight, up: true})
	}
	for _, ts := range vi.TrackServices {
		in.tracks = append(in.tracks, &tracked{service: ts.Name, weight: ts.Weight, up: true})
	}
	mc := vrrp.Config{
		Name:              vi.Name,
		Version:           vrrp.Version(vi.Version),
		VRID:              uint8(vi.VirtualRouterID),
		Priority:          uint8(vi.Priority),
		Interval:          vi.AdvertInt.D(),
		VIPs:              addrs,
		PrimaryIP:         in.src,
		NoPreempt:         vi.NoPreempt,
		PreemptDelay:      vi.PreemptDelay.D(),
		StartAsMaster:     vi.StartAsMaster(),
		Accept:            vi.Accept,
		GARPMasterRepeat:  vi.GARPMasterRepeat,
		GARPRefreshRepeat: vi.GARPMasterRefreshRepeat,
		LowerPrioNoAdvert: vi.LowerPrioNoAdvert || vi.StrictMode,
		GARPInterval:      vi.GARPInterval.D(),
		GNAInterval:       vi.GNAInterval.D(),
	}
	if d := vi.GARPMasterDelay; d != nil {
		mc.GARPMasterDelay = d.D()
		if *d == 0 {
			mc.GARPMasterDelay = -1
		}
	}
	if d := vi.GARPMasterRefresh; d != nil {
		mc.GARPMasterRefresh = d.D()
		if *d == 0 {
			mc.GARPMasterRefresh = -1
		}
	}
	if a := vi.Authentication; a != nil {
		mc.AuthType, mc.AuthPass = vrrp.AuthSimple, a.AuthPass
		if a.AuthType == "AH" {
			mc.AuthType = vrrp.AuthAH
		}
	}
	if in.m, err = vrrp.NewMachine(mc); err != nil {
		return nil, err
	}
	in.snap = Node{Name: vi.Name, Interface: vi.Interface, VRID: mc.VRID, Version: in.m.Config().Version,
		BasePriority: in.m.Config().Priority, AdvertInterval: in.m.Config().Interval, PrimaryIP: in.src,
		Priority: in.m.Priority(), MasterAdvertInterval: in.m.MasterAdverInterval()}
	if u.gcfg != nil {
		in.snap.Group = u.gcfg.Name
	}
	for _, v := range in.vips {
		in.snap.VIPs = append(in.snap.VIPs, v.prefix)
	}
	return in, nil
}

// primaryAddr is the address adverts are sent from: the interface's first
// primary IPv4 address, or its IPv6 link-local address (RFC 5798 section
// 5.1.2.1), never one of the VIPs.
func primaryAddr(link netlink.Link, v6 bool, vips map[netip.Addr]bool) (netip.Addr, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	list, err := netlink.AddrList(link, family)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	var secondary netip.Addr
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		if !ok || vips[ip] || ip.Is6() != v6 {
			continue
		}
		if v6 {
			if ip.IsLinkLocalUnicast() {
				return ip, nil
			}
			continue
		}
		if a.Flags&unix.IFA_F_SECONDARY == 0 {
			return ip, nil
		}
		if !secondary.IsValid() {
			secondary = ip
		}
	}
	if secondary.IsValid() {
		return secondary, nil
	}
	what := "an IPv4 address"
	if v6 {
		what = "an IPv6 link-local address"
	}
	return netip.Addr{}, fmt.Errorf("%s has no %s to send adverts from (other than the VIPs); add one or set unicast_src_ip", link.Attrs().Name, what)
}

// start opens (or shares) the unit's sockets, removes VIPs left over from
// an earlier run and starts the driver loop.
func (d *Daemon) start(u *unit) error {
	for i, in := range u.insts {
		var err error
		if in.cfg.UseVMAC {
			err = d.createVMAC(in) // vmac_linux.go
		}
		if err == nil {
			in.conn, err = d.acquire(in)
			if err != nil {
				d.deleteVMAC(in)
			}
		}
		if err != nil {
			for _, prev := range u.insts[:i] {
				d.release(prev)
			}
			return fmt.Errorf("vrrp instance %s: %w", in.cfg.Name, err)
		}
	}
	for _, in := range u.insts {
		in.removeVIPs(true)
	}
	u.notify = newNotifier(d.log, d.scriptPolicy, d.opts.NotifyTimeout)
	go u.run()
	return nil
}

// acquire returns the raw socket of the instance's interface and family,
// opening it on first use, and registers the instance's VRID on it.
func (d *Daemon) acquire(in *instance) (*conn, error) {
	attrs := in.sockLink().Attrs()
	key := connKey{attrs.Index, in.cfg.Is6(), in.ah()}
	c := d.conns[key]
	if c == nil {
		ifi, err := net.InterfaceByIndex(attrs.Index)
		if err != nil {
			return nil, err
		}
		if c, err = openConn(d.log, ifi, key.v6, key.ah); err != nil {
			return nil, err
		}
		d.conns[key] = c
	}
	if len(in.peers) == 0 {
		if err := c.join(); err != nil {
			if c.refs == 0 {
				c.close()
				delete(d.conns, key)
			}
			return nil, err
		}
	}
	c.refs++
	c.register(in)
	return c, nil
}

func (d *Daemon) release(in *instance) {
	defer d.deleteVMAC(in)
	c := in.conn
	if c == nil {
		return
	}
	in.conn = nil
	c.unregister(in)
	c.refs--
	if c.refs == 0 {
		c.close()
		delete(d.conns, c.key)
	}
}
