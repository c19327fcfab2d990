package api

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/vrrp/vrrpd"
)

// serviceObject is a virtual service as the API shows it: its
// configuration and, under "status", its runtime state.
func (s *Server) serviceObject(vc *config.VirtualServer) (object, error) {
	o, err := spec(vc)
	if err != nil {
		return nil, err
	}
	vs := s.d.Service(vc.Key())
	if reals, ok := o.get("real_servers").([]any); ok {
		for i, x := range reals {
			ro, ok := x.(object)
			if !ok || i >= len(vc.RealServers) {
				continue
			}
			ro.set("status", s.realServerStatus(vs, vc.RealServers[i]))
			reals[i] = ro
		}
	} else {
		o.set("real_servers", []any{})
	}
	st := ServiceStatus{Key: vc.Key()}
	if vs != nil {
		st.Stats, st.Rates = s.stats.stats(&vs.Stats), s.stats.rates(&vs.Stats)
	}
	o.set("status", st)
	return o, nil
}

// realServerObject is a real server as the API shows it.
func (s *Server) realServerObject(key string, rc *config.RealServer) (object, error) {
	o, err := spec(rc)
	if err != nil {
		return nil, err
	}
	o.set("status", s.realServerStatus(s.d.Service(key), rc))
	return o, nil
}

func (s *Server) realServerStatus(vs *director.VirtualService, rc *config.RealServer) RealServerStatus {
	if vs == nil {
		return RealServerStatus{Health: Health{State: "unchecked"}}
	}
	addr := rc.Address.AddrPort()
	for _, rs := range vs.RealServers() {
		if rs.Addr == addr {
			return s.realServerRuntime(vs, rs)
		}
	}
	return RealServerStatus{Health: Health{State: "unchecked"}}
}

// realServerRuntime reads what the director knows of a running real server.
func (s *Server) realServerRuntime(vs *director.VirtualService, rs *director.RealServer) RealServerStatus {
	hs := rs.Health()
	st := RealServerStatus{
		Weight:                hs.Weight,
		ActiveConnections:     rs.Dest.ActiveConns(),
		InactiveConnections:   rs.Dest.InactiveConns(),
		PersistentConnections: rs.Dest.PersistConns(),
		Drained:               hs.Draining,
		Standby:               hs.Standby,
		Up:                    hs.Up || hs.State == "",
		Health:                toHealth(hs),
		Stats:                 s.stats.stats(&rs.Stats),
		Rates:                 s.stats.rates(&rs.Stats),
		Agent:                 agentFigures(hs),
	}
	return st
}

func toHealth(hs director.HealthStatus) Health {
	h := Health{State: hs.State, Checked: hs.Checked, Check: hs.Check, InService: hs.InService, Reason: hs.Reason,
		Checks: hs.Checks, Passes: hs.Passes, Fails: hs.Fails}
	if h.State == "" {
		h.State, h.InService = "up", true
	}
	if !hs.Changed.IsZero() {
		t := hs.Changed.UTC()
		h.Since = &t
	}
	if hs.Checked && !hs.Last.At.IsZero() {
		h.Last = &CheckResult{OK: hs.Last.OK, Message: hs.Last.Msg, At: hs.Last.At.UTC(), Latency: hs.Last.Latency.Seconds()}
	}
	return h
}

func (s *Server) setDrain(key string, addr netip.AddrPort, on bool) error {
	return s.d.SetDrain(key, addr, on)
}

// VRRPSource gives the VRRP instances' state: *vrrpd.Daemon.
type VRRPSource interface {
	Nodes() []vrrpd.Node
}

// SetVRRP makes the server report the instances of v (nil: none).
func (s *Server) SetVRRP(v VRRPSource) {
	s.mu.Lock()
	s.vrrp = v
	s.mu.Unlock()
}

func (s *Server) vrrpNodes() []vrrpd.Node {
	s.mu.Lock()
	v := s.vrrp
	s.mu.Unlock()
	if v == nil {
		return nil
	}
	return v.Nodes()
}

// vrrpState is the VRRP instances' state.
func (s *Server) vrrpState() VRRP {
	nodes := s.vrrpNodes()
	if len(nodes) == 0 {
		return VRRP{Instances: []VRRPInstance{}, Status: "vrrp not configured"}
	}
	out := VRRP{Instances: make([]VRRPInstance, 0, len(nodes))}
	for _, n := range nodes {
		in := VRRPInstance{Name: n.Name, State: strings.ToUpper(n.State.String()), Group: n.Group, Interface: n.Interface,
			VRID: int(n.VRID), Version: int(n.Version), Priority: int(n.Priority), BasePriority: int(n.BasePriority),
			MasterPriority: int(n.MasterPriority), Faults: n.Faults}
		if n.Master.IsValid() {
			in.Master = n.Master.String()
		}
		for _, p := range n.VIPs {
			in.VIPs = append(in.VIPs, p.String())
		}
		if !n.Since.IsZero() {
			t := n.Since.UTC()
			in.Since = &t
		}
		out.Instances = append(out.Instances, in)
	}
	return out
}

// statsBook keeps what the API adds to the director's counters: the
// baselines of govsadm -Z (the counters themselves only grow, so /metrics
// stays monotonic) and rates estimated as IPVS does. Both are keyed by the
// counters' identity, so a service deleted and created again starts afresh.
type statsBook struct {
	mu   sync.Mutex
	base map[*director.Stats]director.StatsSnapshot
	est  map[*director.Stats]*estimator
}

func newStatsBook() *statsBook {
	return &statsBook{base: map[*director.Stats]director.StatsSnapshot{}, est: map[*director.Stats]*estimator{}}
}

func (b *statsBook) stats(st *director.Stats) Stats {
	cur := st.Snapshot()
	b.mu.Lock()
	base, ok := b.base[st]
	b.mu.Unlock()
	if ok {
		cur = director.StatsSnapshot{
			Conns: sub(cur.Conns, base.Conns), InPkts: sub(cur.InPkts, base.InPkts), OutPkts: sub(cur.OutPkts, base.OutPkts),
			InBytes: sub(cur.InBytes, base.InBytes), OutBytes: sub(cur.OutBytes, base.OutBytes),
			ConnectErrors: sub(cur.ConnectErrors, base.ConnectErrors), Refused: sub(cur.Refused, base.Refused),
			Dropped: sub(cur.Dropped, base.Dropped), ClientLimited: sub(cur.ClientLimited, base.ClientLimited),
			Overload: sub(cur.Overload, base.Overload),
		}
	}
	return toStats(cur)
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// zero sets the baselines of a service and its real servers to now.
func (b *statsBook) zero(vs *director.VirtualService) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.base[&vs.Stats] = vs.Stats.Snapshot()
	for _, rs := range vs.RealServers() {
		b.base[&rs.Stats] = rs.Stats.Snapshot()
	}
}

func (b *statsBook) rates(st *director.Stats) Rates {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.est[st]; e != nil {
		return e.rates()
	}
	return Rates{}
}

// estimator averages rates as IPVS's estimator does: every interval the
// rate over the interval moves the average a quarter of the way.
type estimator struct {
	last                              director.StatsSnapshot
	at                                time.Time
	cps, inpps, outpps, inbps, outbps float64
}

func (e *estimator) update(cur director.StatsSnapshot, now time.Time) {
	dt := now.Sub(e.at).Seconds()
	if dt <= 0 {
		return
	}
	move := func(avg *float64, a, b uint64) {
		r := float64(sub(a, b)) / dt
		*avg += (r - *avg) / 4
	}
	move(&e.cps, cur.Conns, e.last.Conns)
	move(&e.inpps, cur.InPkts, e.last.InPkts)
	move(&e.outpps, cur.OutPkts, e.last.OutPkts)
	move(&e.inbps, cur.InBytes, e.last.InBytes)
	move(&e.outbps, cur.OutBytes, e.last.OutBytes)
	e.last, e.at = cur, now
}

func (e *estimator) rates() Rates {
	r := func(x float64) uint64 { return uint64(x + 0.5) }
	return Rates{CPS: r(e.cps), InPPS: r(e.inpps), OutPPS: r(e.outpps), InBPS: r(e.inbps), OutBPS: r(e.outbps)}
}

// sample updates every rate; counters no longer served are forgotten.
func (b *statsBook) sample(d *director.Director, now time.Time) {
	if d == nil {
		return
	}
	alive := map[*director.Stats]bool{}
	for _, vs := range d.Services() {
		alive[&vs.Stats] = true
		for _, rs := range vs.RealServers() {
			alive[&rs.Stats] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for st := range alive {
		cur := st.Snapshot()
		e := b.est[st]
		if e == nil {
			b.est[st] = &estimator{last: cur, at: now}
			continue
		}
		e.update(cur, now)
	}
	for st := range b.est {
		if !alive[st] {
			delete(b.est, st)
		}
	}
	for st := range b.base {
		if !alive[st] {
			delete(b.base, st)
		}
	}
}

// estimate samples the rates until Close.
func (s *Server) estimate(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.stats.sample(s.d, now)
			s.forecasts.sample(s.d, now)
		}
	}
}

// toStats is a director's counters as the API shows them (the type is
// apiclient's, which links no director).
func toStats(s director.StatsSnapshot) Stats {
	return Stats{
		Connections: s.Conns, InPackets: s.InPkts, OutPackets: s.OutPkts, InBytes: s.InBytes, OutBytes: s.OutBytes,
		ConnectErrors: s.ConnectErrors, Refused: s.Refused, Dropped: s.Dropped,
		ClientLimited: s.ClientLimited, Overload: s.Overload,
	}
}
