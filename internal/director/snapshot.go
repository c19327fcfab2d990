package director

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/health"
)

// The seam between the director and its dataplanes.
//
// The director owns the truth (configuration, health state, weights, the
// schedulers); a dataplane owns what it programs (listeners, nftables
// rules, NFQUEUE readers) and nothing else. What crosses is a Snapshot:
// per virtual service an immutable desired.Service (already parsed and
// validated: no dataplane reads the configuration) and the running
// VirtualService, which a dataplane uses only on its hot path, to
// schedule a connection (VirtualService.Schedule) and account it.
//
// One goroutine, the reconciler, owns every call into the dataplane, in
// order: a reload's Prepare and Commit and the director's own commit that
// follows it, and the Apply after health decisions. So no lock is held
// across netlink or socket I/O (the table's readers, the health paths and
// the API never wait for a dataplane), a health decision cannot slip a
// stale snapshot between a reload's dataplane commit and the director's,
// and decisions that come in a burst cost one Apply.

// Dataplane forwards the traffic of virtual services. Implementations live
// under internal/forward.
type Dataplane interface {
	// Prepare readies the dataplane to serve s, which may add, change and
	// remove services (a reload): it does everything that can fail and
	// that can be undone (binding listeners, checking routes, planning
	// rules) without changing what is served. The director then commits or
	// aborts the transaction, before any other call.
	Prepare(s *Snapshot) (Transaction, error)
	// Apply makes the dataplane serve s now, idempotently: the director
	// calls it after health decisions (weights, the set in service, the
	// sorry server) and after each reload with the state the reload left.
	// An error leaves it serving what it served before.
	Apply(s *Snapshot) error
	// Connections lists the dataplane's connections. Listing walks the live
	// tables without stopping traffic: an entry that starts or ends
	// meanwhile may or may not be listed.
	Connections(yield func(Connection) bool) error
	// Shutdown stops taking new connections and returns when established
	// ones have ended, or when ctx is done, whichever comes first.
	Shutdown(ctx context.Context) error
	// Close ends what is left and waits until the dataplane has released
	// everything. The director calls it after cancelling every connection's
	// context.
	Close() error
}

// Transaction is a prepared Snapshot.
type Transaction interface {
	// Commit makes the dataplane serve the prepared snapshot. An error
	// leaves it serving what it served before. Services no longer listed
	// stop taking new connections; their established ones run until their
	// VirtualService context ends.
	Commit() error
	// Abort releases what Prepare took; the dataplane serves what it
	// served before.
	Abort()
}

// Snapshot is what the director hands a dataplane: every virtual service
// it must serve, in configuration order.
type Snapshot struct {
	Services []ServiceSnapshot
}

// ServiceSnapshot is one virtual service of a Snapshot.
type ServiceSnapshot struct {
	// Desired is what to serve. Immutable.
	Desired *desired.Service
	// Live is the running service: the hot path schedules and accounts
	// connections through it. Nothing a dataplane programs is read from it.
	Live *VirtualService
}

// State is the snapshot's desired state alone.
func (s *Snapshot) State() *desired.State {
	st := &desired.State{Services: make([]*desired.Service, len(s.Services))}
	for i, e := range s.Services {
		st.Services[i] = e.Desired
	}
	return st
}

// Split divides s by forwarding method, keeping the order within each.
func (s *Snapshot) Split() map[desired.Forwarding]*Snapshot {
	out := map[desired.Forwarding]*Snapshot{}
	for _, e := range s.Services {
		f := e.Desired.Forwarding
		if out[f] == nil {
			out[f] = &Snapshot{}
		}
		out[f].Services = append(out[f].Services, e)
	}
	return out
}

// NullDataplane serves nothing and takes every snapshot: for tools and
// tests that need the director's table without traffic.
type NullDataplane struct{}

// Prepare implements Dataplane.
func (NullDataplane) Prepare(*Snapshot) (Transaction, error) { return NullTransaction{}, nil }

// Apply implements Dataplane.
func (NullDataplane) Apply(*Snapshot) error { return nil }

// Connections implements Dataplane.
func (NullDataplane) Connections(func(Connection) bool) error { return nil }

// Shutdown implements Dataplane.
func (NullDataplane) Shutdown(context.Context) error { return nil }

// Close implements Dataplane.
func (NullDataplane) Close() error { return nil }

// NullTransaction commits nothing.
type NullTransaction struct{}

// Commit implements Transaction.
func (NullTransaction) Commit() error { return nil }

// Abort implements Transaction.
func (NullTransaction) Abort() {}

// reconciler is the goroutine that owns the calls into the dataplane.
type reconciler struct {
	reloads chan reloadReq
	dirty   chan struct{} // capacity 1: a decision changed what a service wants
	stop    chan struct{}
	done    chan struct{}
}

// reloadReq is a reload's dataplane step: prepare and commit next, then
// run commit (the director's own commit) on the reconciler goroutine, so
// no Apply of the old table comes between the two.
type reloadReq struct {
	next   *Snapshot
	commit func()
	reply  chan error
}

// applyRetry is when a failed Apply is tried again, if no decision came
// meanwhile: the dataplane serves the last snapshot it took until then.
const applyRetry = time.Second

func (r *reconciler) init() {
	r.reloads = make(chan reloadReq)
	r.dirty = make(chan struct{}, 1)
	r.stop = make(chan struct{})
	r.done = make(chan struct{})
}

// run is the reconciler's loop, until stopReconciler.
func (d *Director) runReconciler() {
	r := &d.rec
	defer close(r.done)
	var retry <-chan time.Time
	for {
		select {
		case <-r.stop:
			return
		case req := <-r.reloads:
			req.reply <- d.reload(req)
			continue
		case <-r.dirty:
		case <-retry:
		}
		retry = nil
		if err := d.dp.Apply(d.snapshot()); err != nil {
			d.log.Error("dataplane update failed: it serves the previous state; retrying", "err", err, "retry_in", applyRetry)
			retry = time.After(applyRetry)
		}
	}
}

// reload runs a reload's dataplane step on the reconciler goroutine.
func (d *Director) reload(req reloadReq) error {
	tx, err := d.dp.Prepare(req.next)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	req.commit()
	d.publish() // the state the reload left, with what health decided meanwhile
	return nil
}

// reloadDataplane hands a reload's snapshot to the reconciler and waits
// for it; commit runs there once the dataplane committed.
func (d *Director) reloadDataplane(next *Snapshot, commit func()) error {
	req := reloadReq{next: next, commit: commit, reply: make(chan error, 1)}
	select {
	case d.rec.reloads <- req:
	case <-d.rec.done:
		return errors.New("director is shutting down")
	}
	return <-req.reply
}

// publish asks the reconciler to apply the current state; decisions that
// come before it does cost one Apply.
func (d *Director) publish() {
	select {
	case d.rec.dirty <- struct{}{}:
	default: // one is due already
	}
}

// stopReconciler ends the reconciler after the call in progress.
func (d *Director) stopReconciler() {
	select {
	case <-d.rec.stop:
	default:
		close(d.rec.stop)
	}
	<-d.rec.done
}

// snapshot is the desired state of the services in force.
func (d *Director) snapshot() *Snapshot {
	services := d.Services()
	s := &Snapshot{Services: make([]ServiceSnapshot, 0, len(services))}
	for _, vs := range services {
		if w := vs.want.Load(); w != nil {
			s.Services = append(s.Services, ServiceSnapshot{Desired: w, Live: vs})
		}
	}
	return s
}

// Desired returns what the dataplanes were last asked to serve for vs
// (nil before its first reload completes).
func (vs *VirtualService) Desired() *desired.Service { return vs.want.Load() }

// serviceSpec is the part of vc's desired state that only a reload
// changes; its real servers carry their configured settings, their
// weights and set being the health machine's to fill in (wantFrom).
func serviceSpec(vc *config.VirtualServer, cfg *config.Config) (*desired.Service, error) {
	s := &desired.Service{
		Key: vc.Key(), Name: vc.Name, Protocol: desired.Protocol(vc.Protocol), VIP: vc.Address.AddrPort(),
		FWMark: vc.FWMark, IPv6: vc.IsIPv6(),
		Forwarding:       desired.Forwarding(vc.Forwarding),
		Scheduler:        desired.Scheduler{Name: vc.Scheduler, Flags: append([]string(nil), vc.SchedulerFlags...)},
		ExpireNodestConn: vc.ExpireNodestConn,
		ConnectTimeout:   vc.ConnectTimeout.D(), IdleTimeout: vc.IdleTimeout.D(), TCPFinTimeout: vc.TCPFinTimeout.D(),
		MaxFlows: vc.MaxFlows, OnePacket: vc.OnePacket,
		AccessLog: cfg.Logging != nil && cfg.Logging.AccessLog.Enabled(),
	}
	if vc.Retries != nil {
		s.Retries = *vc.Retries
	}
	s.MaxPerClient = vc.MaxConnectionsPerClient
	if vc.Protocol == config.UDP {
		s.MaxPerClient = vc.MaxFlowsPerClient
	}
	o := vc.SchedOptions()
	s.Scheduler.MHFallback, s.Scheduler.MHPort = o.Fallback, o.Port
	if vc.PersistenceTimeout != 0 {
		s.Persistence = &desired.Persistence{Timeout: vc.PersistenceTimeout.D(), Netmask: vc.PersistenceNetmask}
	}
	for _, a := range vc.LocalAddresses {
		r, err := config.ParseAddrRange(a)
		if err != nil {
			return nil, fmt.Errorf("local_addresses: %w", err)
		}
		s.SNAT = append(s.SNAT, desired.AddrRange{First: r.First, Last: r.Last})
	}
	s.Reals = make([]desired.RealServer, len(vc.RealServers))
	for i, rc := range vc.RealServers {
		w := 0
		if rc.Weight != nil {
			w = *rc.Weight
		}
		s.Reals[i] = desired.RealServer{Addr: rc.Address.AddrPort(), Weight: w, LastWeight: max(w, 0),
			SendProxy: desired.ProxyProtocol(rc.SendProxy), Limited: rc.MaxConnections > 0 || rc.UpperThreshold > 0}
	}
	if !vc.SorryServer.IsZero() {
		s.Sorry = &desired.RealServer{Addr: vc.SorryServer.AddrPort(), Weight: 1, LastWeight: 1,
			SendProxy: desired.ProxyProtocol(vc.SendProxy)}
	}
	return s, nil
}

// wantFrom is spec with the weights and the set of a health decision
// (dec.Servers, in spec's order); reals are the running real servers at
// those positions, nil for one a reload is adding (its last weight is its
// configured one). Overload by connection thresholds is read as it is now:
// it is not a decision, and the schedulers that honour it see it live.
func wantFrom(spec *desired.Service, dec health.Decision, reals []*RealServer) *desired.Service {
	w := *spec
	w.Reals = make([]desired.RealServer, len(spec.Reals))
	for i, st := range dec.Servers {
		r := spec.Reals[i]
		r.Weight, r.InSet = st.Weight, st.InSet
		overloaded := false
		if rs := reals[i]; rs != nil {
			r.LastWeight = rs.Dest.LastWeight()
			overloaded = rs.Dest.Overloaded()
		}
		if st.Weight > 0 {
			r.LastWeight = st.Weight
		}
		r.Available = st.Weight > 0 && !overloaded
		w.Reals[i] = r
	}
	w.SorryActive = spec.Sorry != nil && dec.SorryActive
	if spec.Sorry != nil {
		sorry := *spec.Sorry
		sorry.InSet, sorry.Available = w.SorryActive, w.SorryActive
		w.Sorry = &sorry
	}
	return &w
}

// Snapshot returns what the dataplanes are asked to serve now.
func (d *Director) Snapshot() *Snapshot { return d.snapshot() }
