package vrrpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/vrrp"
)

// unit is one driver loop: a sync group's members, or a lone instance. Its
// goroutine owns the machines; the snapshots are guarded by mu.
type unit struct {
	d     *Daemon
	key   string
	fp    string
	gcfg  *config.VRRPSyncGroup
	group *vrrp.SyncGroup
	insts []*instance

	inbox  chan any // packetEvent, linkEvent, addrEvent, scriptEvent
	quit   chan struct{}
	done   chan struct{}
	notify *notifier

	mu sync.Mutex
}

// instance is one VRRP instance of a unit.
type instance struct {
	u     *unit
	cfg   *config.VRRPInstance
	m     *vrrp.Machine
	link  netlink.Link // the interface
	vmac  netlink.Link // use_vmac: its macvlan, while running (vmac_linux.go)
	conn  *conn
	src   netip.Addr
	peers []netip.Addr
	vips  []vip
	// routes are the virtual_routes, installed with the VIPs (routes.go).
	routes []*netlink.Route
	rules  []*netlink.Rule // virtual_rules, after the routes (rules_linux.go)
	// tracks are the fault sources and weights: the instance's interface
	// first, then track_interfaces and track_scripts.
	tracks []*tracked

	pkt  vrrp.Packet
	buf  []byte
	ipID uint16 // the IPv4 identification of the last AH advert

	decodeDrops     [vrrp.NumReasons]uint64
	sendErrors      uint64
	addrErrors      uint64
	restored        uint64
	sendFailing     bool // the last advert could not be sent (logged once)
	announceFailing bool // the last GARP / NA could not be sent (logged once)
	since           time.Time

	snap Node // guarded by u.mu
}

type vip struct {
	prefix netip.Prefix
	link   netlink.Link
	label  string
	onVMAC bool // goes on the instance's VMAC interface (use_vmac, no dev of its own)
}

// tracked is a tracked interface (iface set), script (script set) or
// virtual service (service set).
type tracked struct {
	iface   string
	service string
	script  *config.TrackScript
	weight  int
	up      bool
}

func (t *tracked) source() string {
	switch {
	case t.script != nil:
		return "track script " + t.script.Name
	case t.service != "":
		return "virtual service " + t.service
	}
	return "interface " + t.iface
}

type packetEvent struct {
	in   *instance
	b    []byte
	info vrrp.IPInfo
}

type holdEvent struct{ held bool }

type linkEvent struct {
	name string
	up   bool
}

type addrEvent struct {
	index int
	addr  netip.Addr
	added bool
}

type scriptEvent struct {
	in *instance
	t  *tracked
	up bool
}

func (u *unit) run() {
	defer close(u.done)
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	for _, in := range u.insts {
		for _, t := range in.tracks {
			switch {
			case t.iface != "":
				t.up = linkUp(t.iface)
			case t.service != "":
				t.up = serviceUp(u.d.opts.Services, t.service)
				go watchService(ctx, u.d.opts.Services, t.service, t.up, u.scriptReporter(ctx, in, t))
			default:
				go runTrackScript(ctx, u.d.log, t.script, u.d.scriptPolicy, u.scriptReporter(ctx, in, t))
			}
		}
		in.since = now
		in.applyTracks(now)
		in.m.SetHold(now, u.d.hold.Load())
	}
	if u.group != nil {
		u.group.Start(now)
	} else {
		u.insts[0].m.Start(now)
	}
	u.drain(now)
	u.publish()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var tc <-chan time.Time
		if dl, ok := u.nextDeadline(); ok {
			timer.Reset(time.Until(dl))
			tc = timer.C
		}
		select {
		case ev := <-u.inbox:
			u.handle(ev, time.Now())
		case <-tc:
			u.tick(time.Now())
		case <-u.quit:
			cancel()
			now := time.Now()
			if u.group != nil {
				u.group.Shutdown(now)
			} else {
				u.insts[0].m.Shutdown(now)
			}
			u.drain(now)
			u.publish()
			u.notify.close(min(u.d.opts.NotifyTimeout, 5*time.Second))
			return
		}
		u.drain(time.Now())
		u.publish()
	}
}

func (u *unit) scriptReporter(ctx context.Context, in *instance, t *tracked) func(bool) {
	return func(up bool) {
		select {
		case u.inbox <- scriptEvent{in: in, t: t, up: up}:
		case <-ctx.Done():
		}
	}
}

func (u *unit) nextDeadline() (time.Time, bool) {
	if u.group != nil {
		return u.group.NextDeadline()
	}
	return u.insts[0].m.NextDeadline()
}

func (u *unit) tick(now time.Time) {
	for _, in := range u.insts {
		in.m.Tick(now)
	}
}

func (u *unit) handle(ev any, now time.Time) {
	switch ev := ev.(type) {
	case packetEvent:
		ev.in.receive(now, ev)
	case scriptEvent:
		if ev.t.up != ev.up {
			ev.t.up = ev.up
			u.d.log.Info("vrrp tracked object changed", "instance", ev.in.cfg.Name, "tracked", ev.t.source(), "up", ev.up)
			ev.in.applyTracks(now)
		}
	case holdEvent:
		for _, in := range u.insts {
			in.m.SetHold(now, ev.held)
		}
	case linkEvent:
		for _, in := range u.insts {
			changed := false
			for _, t := range in.tracks {
				if t.iface == ev.name && t.up != ev.up {
					t.up, changed = ev.up, true
				}
			}
			if changed {
				u.d.log.Info("vrrp tracked interface changed", "instance", in.cfg.Name, "interface", ev.name, "up", ev.up)
				in.applyTracks(now)
			}
		}
	case addrEvent:
		if ev.added {
			return
		}
		for _, in := range u.insts {
			if in.m.State() == vrrp.StateMaster {
				in.restoreVIP(ev.index, ev.addr)
			}
		}
	}
}

// drain performs the actions every member queued, then the group's.
func (u *unit) drain(now time.Time) {
	for _, in := range u.insts {
		for _, a := range in.m.Ready() {
			in.perform(now, a)
		}
	}
	if u.group == nil {
		return
	}
	for _, a := range u.group.Ready() {
		if a.Kind != vrrp.ActNotify {
			continue
		}
		g := u.gcfg
		u.d.log.Info("vrrp sync group state", "group", g.Name, "state", a.State.String())
		u.runNotify("group "+g.Name, g.Name, "GROUP", a.State, 0,
			[...]string{g.NotifyMaster, g.NotifyBackup, g.NotifyFault, g.NotifyStop, g.Notify})
		if f := u.d.opts.OnGroupState; f != nil {
			f(g.Name, stateWord(a.State), now)
		}
	}
}

// runNotify queues the notify scripts of a state change: the one of the
// state (master, backup, fault, stop) as written, then notify with
// keepalived's arguments: GROUP|INSTANCE, name, state, priority.
func (u *unit) runNotify(what, name, kind string, s vrrp.State, prio uint8, scripts [5]string) {
	idx, word := -1, s.String()
	switch s {
	case vrrp.StateMaster:
		idx = 0
	case vrrp.StateBackup:
		idx = 1
	case vrrp.StateFault:
		idx = 2
	case vrrp.StateInit:
		idx, word = 3, "STOP"
	}
	if idx >= 0 {
		u.notify.add("notify_"+strings.ToLower(word)+" of "+what, scripts[idx])
	}
	u.notify.add("notify of "+what, scripts[4], kind, name, word, strconv.Itoa(int(prio)))
}

// publish refreshes the snapshots.
func (u *unit) publish() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, in := range u.insts {
		n := &in.snap
		n.State = in.m.State()
		n.Priority = in.m.Priority()
		n.Master, n.MasterPriority = in.m.Master()
		n.MasterAdvertInterval = in.m.MasterAdverInterval()
		n.Since = in.since
		n.Stats = in.m.Stats()
		n.Dropped = in.decodeDrops
		for r, c := range n.Stats.Dropped {
			n.Dropped[r] += c
		}
		n.SendErrors, n.AddrErrors, n.Restored = in.sendErrors, in.addrErrors, in.restored
		n.Faults = n.Faults[:0]
		for _, t := range in.tracks {
			if !t.up && t.weight == 0 {
				n.Faults = append(n.Faults, t.source())
			}
		}
		sort.Strings(n.Faults)
	}
}

func (in *instance) log() *slog.Logger { return in.u.d.log }

// applyTracks turns the tracked objects into faults and a priority delta.
func (in *instance) applyTracks(now time.Time) {
	delta := 0
	for _, t := range in.tracks {
		switch {
		case t.weight == 0:
			in.m.SetFault(now, t.source(), !t.up)
		case t.weight > 0 && t.up, t.weight < 0 && !t.up:
			delta += t.weight
		}
	}
	in.m.SetPriorityDelta(now, delta)
}

// stateWord names a state entered as notify scripts and alerts do: Init is
// STOP.
func stateWord(s vrrp.State) string {
	if s == vrrp.StateInit {
		return "STOP"
	}
	return s.String()
}

func (in *instance) ah() bool { return in.m.Config().AuthType == vrrp.AuthAH }

// receive decodes and steps one advert.
func (in *instance) receive(now time.Time, ev packetEvent) {
	var err error
	if in.ah() {
		ev.info, err = vrrp.DecodeAH(ev.b, in.m.AuthKey(), ev.info.Unicast, &in.pkt)
	} else {
		err = vrrp.Decode(ev.b, ev.info, &in.pkt)
	}
	if err != nil {
		in.decodeDrops[vrrp.ReasonOf(err)]++
		in.log().Debug("vrrp advert dropped", "instance", in.cfg.Name, "from", ev.info.Src, "reason", vrrp.ReasonOf(err).String())
		return
	}
	if err := in.m.Step(now, &in.pkt, ev.info.Src); err != nil {
		in.log().Debug("vrrp advert dropped", "instance", in.cfg.Name, "from", ev.info.Src, "reason", vrrp.ReasonOf(err).String())
	}
}

func (in *instance) perform(now time.Time, a vrrp.Action) {
	switch a.Kind {
	case vrrp.ActSendAdvert:
		in.sendAdvert(a)
	case vrrp.ActAddVIPs:
		in.addVIPs()
	case vrrp.ActRemoveVIPs:
		in.removeVIPs(false)
	case vrrp.ActGARP:
		var only *vip
		for i := range in.vips {
			if in.vips[i].prefix.Addr() == a.Addr {
				only = &in.vips[i]
			}
		}
		if a.Addr.IsValid() && only == nil {
			return
		}
		in.announce(a.Count, only)
	case vrrp.ActNotify:
		in.since = now
		in.log().Info("vrrp state", "instance", in.cfg.Name, "state", a.State.String(), "priority", in.m.Priority())
		c := in.cfg
		in.u.runNotify("instance "+c.Name, c.Name, "INSTANCE", a.State, in.m.Priority(),
			[...]string{c.NotifyMaster, c.NotifyBackup, c.NotifyFault, c.NotifyStop, c.Notify})
		if f := in.u.d.opts.OnState; f != nil {
			f(c.Name, stateWord(a.State), now)
		}
	case vrrp.ActLog:
		lvl := slog.LevelInfo
		switch a.Event {
		case vrrp.EventSplitBrain, vrrp.EventOwnerConflict, vrrp.EventAddrListMismatch, vrrp.EventFault:
			lvl = slog.LevelWarn
		}
		attrs := []any{"instance", in.cfg.Name, "event", a.Event.String()}
		if a.Peer.IsValid() {
			attrs = append(attrs, "peer", a.Peer, "peer_priority", a.PeerPrio)
		} else if a.Event == vrrp.EventPriorityChanged {
			attrs = append(attrs, "priority", a.PeerPrio)
		}
		if a.Interval != 0 {
			attrs = append(attrs, "interval", a.Interval)
		}
		if a.Source != "" {
			attrs = append(attrs, "source", a.Source)
		}
		in.log().Log(context.Background(), lvl, "vrrp event", attrs...)
	}
}

func (in *instance) sendAdvert(a vrrp.Action) {
	if in.conn == nil {
		return
	}
	p := in.m.Advert(a.Priority)
	dsts := in.peers
	if len(dsts) == 0 {
		dsts = []netip.Addr{vrrp.MulticastIPv4}
		if in.src.Is6() {
			dsts = []netip.Addr{vrrp.MulticastIPv6}
		}
	}
	for _, dst := range dsts {
		var b []byte
		var err error
		if in.ah() {
			// keepalived counts the identification up, skipping 0 (which
			// the kernel would replace, after the ICV covered it).
			if in.ipID++; in.ipID == 0 {
				in.ipID++
			}
			b, err = p.AppendAH(in.buf[:0], vrrp.AHParams{Src: in.src, Dst: dst, ID: in.ipID, Seq: a.Seq, Unicast: len(in.peers) > 0}, in.m.AuthKey())
			if err == nil {
				err = in.conn.writeRaw(b, dst)
			}
		} else if b, err = p.Append(in.buf[:0], in.src, dst); err == nil {
			err = in.conn.write(b, in.src, dst)
		}
		if b != nil {
			in.buf = b
		}
		if err != nil {
			in.sendErrors++
			if !in.sendFailing {
				in.sendFailing = true
				in.log().Warn("vrrp advert not sent", "instance", in.cfg.Name, "to", dst, "err", err)
			}
			continue
		}
		if in.sendFailing {
			in.sendFailing = false
			in.log().Info("vrrp adverts sent again", "instance", in.cfg.Name, "to", dst)
		}
	}
}

func (v vip) nl() *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: v.prefix.Addr().AsSlice(), Mask: net.CIDRMask(v.prefix.Bits(), v.prefix.Addr().BitLen())},
		Label: v.label}
	if v.prefix.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD // usable at once, as keepalived adds them
	}
	return a
}

// strictDrop says the instance drops traffic to its VIPs while master:
// strict_mode turns Accept_Mode off, except for the address owner.
func (in *instance) strictDrop() bool {
	return in.cfg.StrictMode && in.m.Config().Priority != vrrp.PriorityOwner
}

// setStrict puts the VIPs in the strict_mode drop sets, or takes them out.
func (in *instance) setStrict(on bool) {
	if !in.strictDrop() {
		return
	}
	addrs := make([]netip.Addr, len(in.vips))
	for i, v := range in.vips {
		addrs[i] = v.prefix.Addr()
	}
	if err := in.u.d.fw.setVIPs(addrs, on); err != nil {
		in.addrErrors++
		in.log().Error("vrrp: strict_mode drop rules", "instance", in.cfg.Name, "add", on, "err", err)
	}
}

func (in *instance) addVIPs() {
	in.setStrict(true)
	for _, v := range in.vips {
		if err := netlink.AddrReplace(v.link, v.nl()); err != nil {
			in.addrErrors++
			in.log().Error("vrrp: cannot add virtual address", "instance", in.cfg.Name, "address", v.prefix, "interface", v.link.Attrs().Name, "err", err)
		}
	}
	in.log().Info("vrrp virtual addresses added", "instance", in.cfg.Name, "addresses", len(in.vips))
	in.addRoutes()
	in.addRules()
}

// removeVIPs deletes the VIPs; stale says they are left from an earlier run
// (startup), when their absence is the normal case.
func (in *instance) removeVIPs(stale bool) {
	in.removeRules()
	in.removeRoutes(stale)
	removed := 0
	for _, v := range in.vips {
		err := netlink.AddrDel(v.link, v.nl())
		switch {
		case err == nil:
			removed++
		case errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV):
		default:
			in.addrErrors++
			in.log().Error("vrrp: cannot remove virtual address", "instance", in.cfg.Name, "address", v.prefix, "err", err)
		}
	}
	if !stale {
		in.setStrict(false)
	}
	if stale && removed > 0 {
		in.log().Warn("vrrp: removed virtual addresses left from an earlier run", "instance", in.cfg.Name, "addresses", removed)
	} else if !stale {
		in.log().Info("vrrp virtual addresses removed", "instance", in.cfg.Name, "addresses", removed)
	}
}

// restoreVIP puts back a VIP that was removed while we are master (by
// hand, or by a tool that flushed the interface), and announces it.
func (in *instance) restoreVIP(index int, addr netip.Addr) {
	for _, v := range in.vips {
		if v.link.Attrs().Index != index || v.prefix.Addr() != addr {
			continue
		}
		if err := netlink.AddrReplace(v.link, v.nl()); err != nil {
			in.addrErrors++
			in.log().Error("vrrp: cannot restore virtual address", "instance", in.cfg.Name, "address", v.prefix, "err", err)
			return
		}
		in.restored++
		in.log().Warn("vrrp: virtual address removed while master: restored", "instance", in.cfg.Name, "address", v.prefix)
		in.announce(in.m.Config().GARPMasterRepeat, &v)
	}
}

// announce sends count gratuitous ARPs / unsolicited NAs for every VIP, or
// for only one.
func (in *instance) announce(count int, only *vip) {
	for range count {
		for _, v := range in.vips {
			if only != nil && v.prefix != only.prefix {
				continue
			}
			a := v.link.Attrs()
			err := in.u.d.ann.announce(a.Index, a.Name, a.HardwareAddr, v.prefix.Addr())
			if err != nil {
				in.sendErrors++
				if !in.announceFailing {
					in.log().Warn("vrrp: gratuitous ARP / NA not sent", "instance", in.cfg.Name, "address", v.prefix.Addr(), "err", err)
				}
			}
			in.announceFailing = err != nil
		}
	}
}

// linkUp reports whether the interface exists, is up and has carrier.
func linkUp(name string) bool {
	l, err := netlink.LinkByName(name)
	return err == nil && flagsUp(l.Attrs().RawFlags)
}

func flagsUp(raw uint32) bool { return raw&unix.IFF_UP != 0 && raw&unix.IFF_RUNNING != 0 }

// startWatcher subscribes to link and address changes and hands them to
// every unit, until watchDone is closed.
func (d *Daemon) startWatcher() error {
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	onErr := func(err error) {
		select {
		case <-done: // closing the subscription ends its read with an error
		default:
			d.log.Warn("vrrp: netlink subscription", "err", err)
		}
	}
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(done)
		return fmt.Errorf("vrrp: watch links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(done)
		return fmt.Errorf("vrrp: watch addresses: %w", err)
	}
	d.watchDone = done
	go func() {
		for links != nil || addrs != nil {
			var ev any
			select {
			case <-done:
				return
			case lu, ok := <-links:
				if !ok {
					links = nil
					continue
				}
				ev = linkEvent{name: lu.Attrs().Name, up: lu.Header.Type != unix.RTM_DELLINK && flagsUp(lu.Attrs().RawFlags)}
			case au, ok := <-addrs:
				if !ok {
					addrs = nil
					continue
				}
				ip, _ := netip.AddrFromSlice(au.LinkAddress.IP)
				ev = addrEvent{index: au.LinkIndex, addr: ip.Unmap(), added: au.NewAddr}
			}
			for _, u := range *d.units.Load() {
				select {
				case u.inbox <- ev:
				case <-u.done:
				case <-done:
					return
				}
			}
		}
	}()
	return nil
}
