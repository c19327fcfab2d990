package director

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/script"
)

// The executor of the health policy's effects: the ServiceMachine of each
// service decides (internal/health/machine.go); what it decides to log,
// record and run is done here, after the service's lock is released, so
// that no log handler or command start ever runs under it.

// HealthEventsKept bounds the director's record of transitions.
const HealthEventsKept = 512

// notifyTimeout bounds notify_up, notify_down, quorum_up and quorum_down.
const notifyTimeout = 30 * time.Second

// HealthEvent is a transition of a real server (or of a service's quorum,
// with Backend not valid), as logged.
type HealthEvent struct {
	Time    time.Time
	Service string // name
	Key     string // "tcp/VIP:PORT"
	Backend netip.AddrPort
	From    string // up, down, draining, maint; quorum events: quorum up, quorum lost
	To      string
	Reason  string
	// Kind is CapacityAlertKind for a capacity alert (forecast.go), empty
	// for transitions and quorum changes.
	Kind string
}

// effects is the director's executor: the event ring and the notify
// commands in flight. Its own small locks guard only its own state (the
// ring, the closed flag); they are never held across a command or a log.
type effects struct {
	evMu   sync.Mutex
	events []HealthEvent // ring
	evNext int

	notifies sync.WaitGroup
	nmu      sync.Mutex
	closed   bool
	runAs    atomic.Pointer[script.Policy] // who notify commands run as
}

func (e *effects) init() { e.events = make([]HealthEvent, 0, HealthEventsKept) }

// HealthEvents returns the latest transitions, oldest first.
func (d *Director) HealthEvents() []HealthEvent {
	h := &d.hc
	h.evMu.Lock()
	defer h.evMu.Unlock()
	out := make([]HealthEvent, 0, len(h.events))
	if len(h.events) == HealthEventsKept {
		out = append(out, h.events[h.evNext:]...)
		out = append(out, h.events[:h.evNext]...)
	} else {
		out = append(out, h.events...)
	}
	return out
}

func (e *effects) record(ev HealthEvent) {
	e.evMu.Lock()
	defer e.evMu.Unlock()
	if len(e.events) < HealthEventsKept {
		e.events = append(e.events, ev)
		return
	}
	e.events[e.evNext] = ev
	e.evNext = (e.evNext + 1) % HealthEventsKept
}

// healthActions collects what decisions must do once the service's lock is
// released: the effects, copied out of the machine, and whether the
// dataplanes need a new snapshot.
type healthActions struct {
	d       *Director
	service string
	key     string
	items   []health.Effect
	changed *VirtualService // the scheduler's set or weights changed
}

// add takes a decision's effects; they are copied, since the machine
// reuses its slice.
func (a *healthActions) add(vs *VirtualService, effs []health.Effect) {
	if len(effs) == 0 {
		return
	}
	a.d, a.service, a.key = vs.d(), vs.serviceName(), vs.Key
	a.items = append(a.items, effs...)
}

// run performs the effects, in order.
func (a *healthActions) run() {
	if vs := a.changed; vs != nil && vs.d().Service(vs.Key) == vs {
		// A new snapshot for the dataplanes (snapshot.go). A service a
		// reload is adding is not published yet: the reload hands it over.
		vs.d().publish()
	}
	for _, it := range a.items {
		ev := HealthEvent{Time: it.Event.Time, Service: a.service, Key: a.key, Backend: it.Event.Backend,
			From: it.Event.From, To: it.Event.To, Reason: it.Event.Reason}
		attrs := []any{"service", ev.Service}
		if ev.Backend.IsValid() {
			attrs = append(attrs, "backend", ev.Backend.String())
		}
		if it.Kind == health.EffectTransition {
			attrs = append(attrs, "from", ev.From, "to", ev.To, "reason", ev.Reason)
		} else if ev.Reason != "" {
			attrs = append(attrs, "reason", ev.Reason)
		}
		a.d.log.Log(context.Background(), it.Level, it.Msg, attrs...)
		if it.Kind != health.EffectLog {
			a.d.hc.record(ev)
			a.d.emit(ev) // events.go: alerts
		}
		if it.Command != "" {
			a.d.hc.notify(a.d.log, it.Command, ev)
		}
	}
}

// notify runs a notify or quorum command in the background, bounded,
// through internal/script's runner (health.RunCommand).
func (e *effects) notify(log *slog.Logger, command string, ev HealthEvent) {
	e.nmu.Lock()
	if e.closed {
		e.nmu.Unlock()
		return
	}
	e.notifies.Add(1)
	e.nmu.Unlock()
	go func() {
		defer e.notifies.Done()
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		env := []string{"GOVS_SERVICE=" + ev.Service, "GOVS_STATE=" + ev.To}
		if ev.Backend.IsValid() {
			env = append(env, "GOVS_REAL_SERVER="+ev.Backend.String())
		}
		var runAs script.Policy // nil: the safe default
		if p := e.runAs.Load(); p != nil {
			runAs = *p
		}
		code, out, err := health.RunCommand(ctx, runAs, command, env)
		if err != nil || code != 0 {
			log.Warn("notify command failed", "command", command, "exit", code, "err", err, "output", out)
		}
	}()
}

// closeNotifies refuses further commands.
func (e *effects) closeNotifies() {
	e.nmu.Lock()
	e.closed = true
	e.nmu.Unlock()
}

// waitNotifies waits for running notify commands, up to limit.
func (d *Director) waitNotifies(limit time.Duration) {
	done := make(chan struct{})
	go func() { d.hc.notifies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		d.log.Warn("notify commands still running at shutdown", "waited", limit)
	}
}
