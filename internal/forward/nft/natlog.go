package nft

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/ctevent"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// The access log of kernel-forwarded flows. The kernel forwards the
// packets of nat and fullnat services: govs sees no connection end, but
// conntrack reports each flow's end in a destroy event (ctevent), with its
// tuples (client, VIP, real server), counters (nf_conntrack_acct),
// start and stop times (nf_conntrack_timestamp) and TCP state. While
// logging.access_log is set and a nat or fullnat service runs, govs reads
// those events and writes one access-log line per flow of its services
// (natlog_code.go makes the code and duration), the same lines as the
// proxy's, through accesslog.Emit: counted per real server and code,
// queued to the writer, never waited for.
//
// Bounded: the reader never blocks on the writer (Emit drops and counts a
// line the queue has no room for), and the kernel never waits for the
// reader: when the socket's buffer (natLogBuffer) is full the kernel drops
// events, the next read says so, and accesslog.ConntrackOverruns counts it
// (govs_access_log_conntrack_overruns_total). Forwarding is unaffected
// either way.

const (
	natLogBuffer  = 8 << 20 // the event socket's receive buffer
	natLogTimeout = 200 * time.Millisecond
	// timeoutsEvery is how often the namespace's conntrack timeouts are
	// read again (an operator may change them).
	timeoutsEvery = 30 * time.Second
)

// natLog is the reader of destroy events and what it needs to write lines.
type natLog struct {
	d        *Dataplane
	r        *ctevent.Reader
	evs      []ctevent.Event
	nft      *nftables.Conn // the mark table's
	marks    bool           // the mark rules are in force
	vips     []vipKey       // the services in the mark table's sets
	timeouts ctTimeouts
	readAt   time.Time // when timeouts were read
	view     *view     // services was built from it
	// services are the nat and fullnat services by VIP, those a reload
	// removed included while their grace period runs.
	services map[vipKey]*director.VirtualService
	// wants are the services' desired states, as their last snapshot had
	// them (name, access log).
	wants  map[*director.VirtualService]*desired.Service
	lostAt time.Time // last overrun warning
}

// wantNATLog reports whether a nat or fullnat service of v writes an
// access log.
func wantNATLog(v *view) bool {
	for vs := range v.modes {
		if !v.dr[vs] && v.want[vs].AccessLog {
			return true
		}
	}
	return false
}

// accessLogLoop runs the reader while some service wants it, until the
// dataplane stops. It checks every natLogTimeout: a flow created before
// the reader subscribes has no destroy event (the kernel attaches event
// delivery to a flow at its creation, while someone listens), so the
// flows of the first moments after a start or a reload that turns the
// access log on may have no line.
func (d *Dataplane) accessLogLoop() {
	defer d.wg.Done()
	var nl *natLog
	defer func() {
		if nl != nil {
			nl.flushFinished()
			nl.close()
		}
	}()
	var retry time.Time
	idle := time.NewTimer(natLogTimeout)
	defer idle.Stop()
	for {
		select {
		case <-d.stop:
			return
		default:
		}
		v := d.view.Load()
		want := wantNATLog(v)
		switch {
		case want && nl == nil && time.Now().After(retry):
			var err error
			if nl, err = d.openNATLog(v); err != nil {
				d.log.Warn("no access log for nat and fullnat flows", "err", err)
				retry = time.Now().Add(10 * time.Second)
			}
		case !want && nl != nil:
			nl.close()
			nl = nil
		}
		if nl == nil {
			idle.Reset(natLogTimeout)
			select {
			case <-d.stop:
				return
			case <-idle.C:
			}
			continue
		}
		nl.readOnce(v)
	}
}

// openNATLog turns conntrack's accounting and timestamps on, reads the
// timeouts, subscribes to destroy events and installs the mark rules, in
// the dataplane's namespace.
func (d *Dataplane) openNATLog(v *view) (*natLog, error) {
	nl := &natLog{d: d}
	if err := ctevent.InNetNS(d.opts.NetNS, func() error {
		for _, s := range []string{"nf_conntrack_acct", "nf_conntrack_timestamp"} {
			on, err := enableSysctl(s)
			if err != nil {
				d.log.Warn("cannot enable net.netfilter."+s+": access-log lines of nat flows lack what it gives", "err", err)
			} else if on {
				d.log.Info("enabled net.netfilter." + s + " for the access log of nat and fullnat flows")
			}
		}
		nl.timeouts = readTimeouts()
		return nil
	}); err != nil {
		return nil, err
	}
	nl.readAt = time.Now()
	r, err := ctevent.Open(d.opts.NetNS, ctevent.GroupDestroy, natLogBuffer, natLogTimeout)
	if err != nil {
		return nil, err
	}
	nl.r = r
	nl.follow(v)
	nl.vips = sortedVIPs(nl.services)
	c, err := nftables.New(nftables.WithNetNSFd(d.opts.NetNS))
	if err == nil {
		err = programMarks(c, d.opts.Table, nl.vips)
	}
	if err != nil {
		d.log.Warn("conntrack mark rules not installed: who reset or closed a nat flow first is unknown in its termination code", "err", err)
	} else {
		nl.nft, nl.marks = c, true
	}
	d.log.Info("access log of nat and fullnat flows: reading conntrack destroy events", "mark_rules", nl.marks)
	return nl, nil
}

func (nl *natLog) close() {
	nl.r.Close()
	if nl.nft != nil {
		if err := removeMarks(nl.nft, nl.d.opts.Table); err != nil {
			nl.d.log.Warn("removing the conntrack mark rules", "table", labelTable(nl.d.opts.Table), "err", err)
		}
	}
}

// readOnce reads one datagram of events (or times out) and writes the
// lines of the flows of govs's services.
func (nl *natLog) readOnce(v *view) {
	var err error
	nl.evs, err = nl.r.Read(nl.evs[:0])
	if ctevent.Lost(err) {
		accesslog.ConntrackOverruns.Add(1)
		if now := time.Now(); now.Sub(nl.lostAt) >= 10*time.Second {
			nl.lostAt = now
			nl.d.log.Warn("conntrack destroy events lost: govs read them too slowly; their access-log lines are missing",
				"overruns_total", accesslog.ConntrackOverruns.Load())
		}
	}
	if time.Since(nl.readAt) >= timeoutsEvery {
		nl.readAt = time.Now()
		ctevent.InNetNS(nl.d.opts.NetNS, func() error { nl.timeouts = readTimeouts(); return nil })
	}
	nl.follow(v)
	for i := range nl.evs {
		nl.event(&nl.evs[i])
	}
}

// follow updates the services from the view v.
func (nl *natLog) follow(v *view) {
	if v == nl.view {
		return
	}
	nl.view = v
	m := make(map[vipKey]*director.VirtualService, len(v.byVIP))
	wants := make(map[*director.VirtualService]*desired.Service, len(v.byVIP))
	for k, vs := range v.byVIP {
		if !v.dr[vs] {
			m[k], wants[vs] = vs, v.want[vs]
		}
	}
	// A service a reload removed keeps its flows for its grace period:
	// their ends are logged too.
	for k, vs := range nl.services {
		if _, ok := m[k]; !ok && vs.Context().Err() == nil {
			m[k], wants[vs] = vs, nl.wants[vs]
		}
	}
	nl.services, nl.wants = m, wants
	if nl.nft == nil {
		return
	}
	if vips := sortedVIPs(m); !slices.Equal(vips, nl.vips) {
		if err := setMarkVIPs(nl.nft, nl.d.opts.Table, vips); err != nil {
			nl.d.log.Warn("updating the services of the conntrack mark rules", "err", err)
			return
		}
		nl.vips = vips
	}
}

// event writes the line of a destroyed flow of a service; false if it is
// not one.
func (nl *natLog) event(ev *ctevent.Event) bool { return nl.write(ev, false) }

// write writes the line of the flow of ev if it is a service's; with
// expiring, the flow is known to end by its timeout.
func (nl *natLog) write(ev *ctevent.Event, expiring bool) bool {
	if ev.Kind != ctevent.Destroy || ev.Status&ctevent.StatusDstNAT == 0 {
		return false
	}
	o := ev.Orig
	vs := nl.services[vipKey{proto: ev.Proto, addr: unmapAP(o.Dst)}]
	st := nl.wants[vs]
	if vs == nil || st == nil {
		return false
	}
	if ev.HasCounters && ev.OrigPackets == 0 && ev.ReplyPackets == 0 {
		// No packet crossed this director: a flow the connection sync
		// installed from a peer.
		return false
	}
	end := flowEndAs(ev, &nl.timeouts, expiring)
	start := end.start
	if start.IsZero() {
		start = time.Now() // no timestamps: the time of its end
	}
	r := accesslog.Record{Time: start, Service: st.Name, Client: unmapAP(o.Src), RealServer: unmapAP(ev.Reply.Src),
		ConnectMs: -1, DurationMs: float64(end.duration) / float64(time.Millisecond),
		BytesIn: ev.OrigBytes, BytesOut: ev.ReplyBytes, Termination: end.code}
	if !accesslog.Emit(&r, st.AccessLog) && st.AccessLog {
		nl.d.log.LogAttrs(context.Background(), slog.LevelInfo, "flow",
			slog.String("service", st.Name), slog.String("client", r.Client.String()),
			slog.String("backend", r.RealServer.String()), slog.Uint64("bytes_in", r.BytesIn),
			slog.Uint64("bytes_out", r.BytesOut), slog.Duration("duration", end.duration),
			slog.String("termination", r.Termination.String()))
	}
	return true
}

// flushFinished, at a stop, writes the lines of the TCP flows of the
// services that have finished (TIME_WAIT, CLOSE, LAST_ACK) but wait in
// conntrack for their timeout (TIME_WAIT's is 2 minutes): no reader would
// see their end. Their last packet was their state's timeout less the
// time they have left. Each is deleted once written, so that a govs
// started later does not write it again. Flows still open end unseen.
func (nl *natLog) flushFinished() {
	c, err := dialConntrack(nl.d.opts.NetNS)
	if err != nil {
		nl.d.log.Warn("access log of nat flows at stop", "err", err)
		return
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		nl.d.log.Warn("access log of nat flows at stop", "err", err)
		return
	}
	now, n := time.Now(), 0
	for i := range flows {
		f := &flows[i]
		if f.TupleOrig.Proto.Protocol != 6 || f.ProtoInfo.TCP == nil {
			continue
		}
		switch f.ProtoInfo.TCP.State {
		case tcpTimeWait, tcpClose, tcpLastAck:
		default:
			continue
		}
		ev := finishedEvent(f, now)
		if nl.write(&ev, true) {
			c.Delete(*f)
			n++
		}
	}
	nl.d.log.Info("access log: lines of the finished nat flows written at stop", "flows", n)
}

// finishedEvent is the destroy event a finished flow will have when it
// expires, its time left from now (conntrack gives whole seconds: the
// middle of that second).
func finishedEvent(f *conntrack.Flow, now time.Time) ctevent.Event {
	ap := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
	o, r := f.TupleOrig, f.TupleReply
	ev := ctevent.Event{Kind: ctevent.Destroy, Proto: o.Proto.Protocol, Status: uint32(f.Status), Mark: f.Mark,
		Orig:        ctevent.Tuple{Src: ap(o.IP.SourceAddress, o.Proto.SourcePort), Dst: ap(o.IP.DestinationAddress, o.Proto.DestinationPort)},
		Reply:       ctevent.Tuple{Src: ap(r.IP.SourceAddress, r.Proto.SourcePort), Dst: ap(r.IP.DestinationAddress, r.Proto.DestinationPort)},
		OrigPackets: f.CountersOrig.Packets, OrigBytes: f.CountersOrig.Bytes,
		ReplyPackets: f.CountersReply.Packets, ReplyBytes: f.CountersReply.Bytes,
		Stop: now.Add(time.Duration(f.Timeout)*time.Second + time.Second/2).UnixNano()}
	ev.HasCounters = ev.OrigPackets+ev.ReplyPackets > 0
	if f.ProtoInfo.TCP != nil {
		ev.State = f.ProtoInfo.TCP.State
	}
	if !f.Timestamp.Start.IsZero() {
		ev.Start = f.Timestamp.Start.UnixNano()
	}
	return ev
}

func unmapAP(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

const sysctlDir = "/proc/sys/net/netfilter/"

// enableSysctl sets net.netfilter.NAME to 1 if it is 0, in the calling
// thread's namespace; it reports whether it changed it.
func enableSysctl(name string) (bool, error) {
	b, err := os.ReadFile(sysctlDir + name)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(b)) != "0" {
		return false, nil
	}
	if err := os.WriteFile(sysctlDir+name, []byte("1"), 0o644); err != nil {
		return false, fmt.Errorf("writing %s: %w", sysctlDir+name, err)
	}
	return true, nil
}

// readTimeouts reads the calling thread's namespace's conntrack timeouts;
// the kernel's defaults stand in for those it cannot read.
func readTimeouts() ctTimeouts {
	t := defaultTimeouts
	read := func(name string, into *time.Duration) {
		b, err := os.ReadFile(sysctlDir + name)
		if err != nil {
			return
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 {
			*into = time.Duration(n) * time.Second
		}
	}
	for state, name := range map[int]string{tcpSynSent: "syn_sent", tcpSynRecv: "syn_recv", tcpEstablished: "established",
		tcpFinWait: "fin_wait", tcpCloseWait: "close_wait", tcpLastAck: "last_ack", tcpTimeWait: "time_wait",
		tcpClose: "close", tcpSynSent2: "syn_sent"} {
		read("nf_conntrack_tcp_timeout_"+name, &t.tcp[state])
	}
	read("nf_conntrack_udp_timeout", &t.udp)
	read("nf_conntrack_udp_timeout_stream", &t.udpStream)
	return t
}
