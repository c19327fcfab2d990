// Package alert sends govs's alerts: a mail in keepalived's format
// (keepalived/core/smtp.c and its callers) and a JSON POST to each webhook,
// when a real server goes up or down, a virtual service gains or loses its
// quorum, or a VRRP instance or sync group changes state.
//
// Sending never blocks the caller (the health checks, the VRRP state
// machine): each sink has a bounded queue and one worker; an alert that
// finds its queue full is dropped, logged and counted. Mails are sent once,
// as keepalived's; webhooks are retried with backoff.
package alert

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// Kinds of alerts.
const (
	KindRealServer    = "real_server"
	KindVirtualServer = "virtual_server"
	KindVRRPInstance  = "vrrp_instance"
	KindCapacity      = "capacity" // the forecast crosses a service's capacity (docs/forecast.md)
	KindVRRPGroup     = "vrrp_sync_group"
)

// Event is one alert, as the webhook receives it.
type Event struct {
	Time     time.Time `json:"time"`
	RouterID string    `json:"router_id"`
	Kind     string    `json:"kind"`
	// Service is the virtual server, in keepalived's form [VIP]:tcp:PORT;
	// RealServer the real server likewise; Instance the VRRP instance;
	// Group the VRRP sync group.
	Service    string `json:"service,omitempty"`
	RealServer string `json:"real_server,omitempty"`
	Instance   string `json:"instance,omitempty"`
	Group      string `json:"group,omitempty"`
	// State is UP or DOWN (real and virtual servers), or the VRRP state:
	// MASTER, BACKUP, FAULT, STOP.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Subject and Body are the mail's, keepalived's wording.
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// QueueSize bounds the alerts waiting for each sink.
const QueueSize = 256

// Sender sends the alerts of the configuration in force. Its methods are
// safe for concurrent use and never block on the network.
type Sender struct {
	log   *slog.Logger
	state atomic.Pointer[settings]

	mail, hooks chan Event
	wg          sync.WaitGroup
	closeOnce   sync.Once
	mu          sync.RWMutex // guards closed against sends on closed queues
	closed      bool
	dropped     atomic.Uint64

	// Backoff is the first webhook retry's delay, doubled at each retry
	// (tests shorten it); Attempts bounds the tries of one POST.
	Backoff  time.Duration
	Attempts int
}

// settings are what one configuration says.
type settings struct {
	routerID string
	email    *config.AlertEmail
	webhooks []string
	services map[string]*service // by the director's key, tcp/VIP:PORT
	vrrp     map[string]bool     // instance name: alerts on
	groups   map[string]bool     // sync group name: alerts on
}

type service struct {
	name          string // [VIP]:tcp:PORT
	proto         string
	alert         bool
	capacity      bool // capacity alerts (forecast.capacity_alert)
	quorum, hyst  int
	realAlert     map[netip.AddrPort]bool
	realCheckType map[netip.AddrPort]string
}

// New returns a Sender with no sinks until Apply.
func New(log *slog.Logger) *Sender {
	s := &Sender{log: log, mail: make(chan Event, QueueSize), hooks: make(chan Event, QueueSize),
		Backoff: time.Second, Attempts: 5}
	s.state.Store(&settings{})
	s.wg.Add(2)
	go s.run(s.mail, s.sendMail)
	go s.run(s.hooks, s.postHooks)
	return s
}

// Dropped is the number of alerts dropped because a queue was full.
func (s *Sender) Dropped() uint64 { return s.dropped.Load() }

// Apply takes the alert settings of a validated configuration.
func (s *Sender) Apply(c *config.Config) {
	st := &settings{services: map[string]*service{}, vrrp: map[string]bool{}, groups: map[string]bool{}}
	if a := c.Alerts; a != nil {
		st.routerID, st.email, st.webhooks = a.RouterID, a.Email, a.Webhooks
	}
	if st.routerID == "" {
		st.routerID, _ = os.Hostname()
	}
	for _, vs := range c.VirtualServers {
		if vs == nil {
			continue
		}
		sv := &service{name: trio(vs.Address.Addr, string(vs.Protocol), vs.Address.Port), proto: string(vs.Protocol),
			alert: on(vs.Alert), capacity: vs.Forecast.AlertOn(), quorum: config.DefaultQuorum, hyst: vs.QuorumHysteresis,
			realAlert: map[netip.AddrPort]bool{}, realCheckType: map[netip.AddrPort]string{}}
		if sv.proto == "" {
			sv.proto = "tcp"
			sv.name = trio(vs.Address.Addr, "tcp", vs.Address.Port)
		}
		if vs.FWMark != 0 {
			sv.name = vs.Display() // keepalived's "FWM N"
		}
		if vs.Quorum != nil {
			sv.quorum = *vs.Quorum
		}
		for _, rs := range vs.RealServers {
			if rs == nil {
				continue
			}
			port := rs.Address.Port
			if !rs.Address.HasPort {
				port = vs.Address.Port
			}
			ap := netip.AddrPortFrom(rs.Address.Addr, port)
			sv.realAlert[ap] = on(rs.Alert)
			if rs.Check != nil {
				sv.realCheckType[ap] = rs.Check.Type
			}
		}
		st.services[vs.Key()] = sv
	}
	for _, vi := range c.VRRPInstances {
		if vi != nil {
			st.vrrp[vi.Name] = on(vi.Alert)
		}
	}
	for _, g := range c.VRRPSyncGroups {
		if g != nil {
			st.groups[g.Name] = on(g.Alert)
		}
	}
	s.state.Store(st)
}

func on(b *bool) bool { return b == nil || *b }

// trio is keepalived's inet_sockaddrtotrio: [ADDR]:PROTO:PORT.
func trio(a netip.Addr, proto string, port uint16) string {
	return fmt.Sprintf("[%s]:%s:%d", a, strings.ToLower(proto), port)
}

// RealServer alerts that the real server backend of the service key (the
// director's tcp/VIP:PORT) went up or down.
func (s *Sender) RealServer(key string, backend netip.AddrPort, up bool, reason string, at time.Time) {
	st := s.state.Load()
	sv := st.services[key]
	if sv == nil || !sv.realAlert[backend] {
		return
	}
	ev := Event{Time: at, RouterID: st.routerID, Kind: KindRealServer, Service: sv.name,
		RealServer: trio(backend.Addr(), sv.proto, backend.Port()), State: "DOWN", Reason: reason}
	if up {
		ev.State = "UP"
	}
	ev.Subject = fmt.Sprintf("[%s] Realserver %s of virtual server %s - %s", st.routerID, ev.RealServer, sv.name, ev.State)
	ev.Body = checkerBody(sv.realCheckType[backend], up)
	s.enqueue(st, ev)
}

// checkerBody is the body keepalived's checker sends (check_tcp.c,
// check_http.c; the others say much the same).
func checkerBody(checkType string, up bool) string {
	switch {
	case checkType == "tcp" && up:
		return "=> TCP CHECK succeed on service <="
	case checkType == "tcp":
		return "=> TCP CHECK failed on service <="
	case (checkType == "http" || checkType == "https") && !up:
		return "=> CHECK failed on service : HTTP/SSL request failed <="
	case up:
		return "=> CHECK succeed on service <="
	}
	return "=> CHECK failed on service <="
}

// Quorum alerts that the service key gained or lost its quorum, with the
// live weight it has (keepalived's ipwrapper.c).
func (s *Sender) Quorum(key string, up bool, weight int, at time.Time) {
	st := s.state.Load()
	sv := st.services[key]
	if sv == nil || !sv.alert {
		return
	}
	ev := Event{Time: at, RouterID: st.routerID, Kind: KindVirtualServer, Service: sv.name, State: "DOWN"}
	// keepalived's threshold: the quorum plus the hysteresis to gain it,
	// minus it to lose it; its mail writes "+" either way.
	what, threshold := "Lost quorum", sv.quorum-sv.hyst
	if up {
		ev.State, what, threshold = "UP", "Gained quorum", sv.quorum+sv.hyst
	}
	ev.Reason = fmt.Sprintf("live weight %d", weight)
	ev.Subject = fmt.Sprintf("[%s] Virtualserver %s - %s", st.routerID, sv.name, ev.State)
	ev.Body = fmt.Sprintf("=> %s %d+%d=%d <= %d <=", what, sv.quorum, sv.hyst, threshold, weight)
	s.enqueue(st, ev)
}

// Capacity alerts that the forecast of the service key crossed its
// capacity (exceeded) or fell back below it; reason has the figures.
// keepalived has no such alert: the subject follows its virtual server
// alerts' form.
func (s *Sender) Capacity(key string, exceeded bool, reason string, at time.Time) {
	st := s.state.Load()
	sv := st.services[key]
	if sv == nil || !sv.capacity {
		return
	}
	ev := Event{Time: at, RouterID: st.routerID, Kind: KindCapacity, Service: sv.name, State: "OK", Reason: reason}
	if exceeded {
		ev.State = "EXCEEDED"
	}
	ev.Subject = fmt.Sprintf("[%s] Virtualserver %s - capacity %s", st.routerID, sv.name, ev.State)
	ev.Body = "=> " + reason + " <="
	s.enqueue(st, ev)
}

// VRRP alerts that instance entered state (MASTER, BACKUP, FAULT; STOP
// when it stops), keepalived's vrrp_notify.c.
func (s *Sender) VRRP(instance, state string, at time.Time) {
	st := s.state.Load()
	if enabled, known := st.vrrp[instance]; !known || !enabled {
		return
	}
	ev := Event{Time: at, RouterID: st.routerID, Kind: KindVRRPInstance, Instance: instance, State: state}
	what, body := "Entering "+state+" state", "=> VRRP Instance is no longer owning VRRP VIPs <="
	switch state {
	case "MASTER":
		body = "=> VRRP Instance is now owning VRRP VIPs <="
	case "STOP":
		what, body = "Stopping", "=> VRRP Instance stopping <="
	}
	ev.Subject = fmt.Sprintf("[%s] VRRP Instance %s - %s", st.routerID, instance, what)
	ev.Body = body
	s.enqueue(st, ev)
}

// VRRPGroup alerts that the sync group entered state (MASTER, BACKUP,
// FAULT; STOP when it stops): keepalived's vrrp_sync_smtp_notifier.
func (s *Sender) VRRPGroup(group, state string, at time.Time) {
	st := s.state.Load()
	if enabled, known := st.groups[group]; !known || !enabled {
		return
	}
	ev := Event{Time: at, RouterID: st.routerID, Kind: KindVRRPGroup, Group: group, State: state}
	what, body := "Entering "+state+" state", "=> All VRRP group instances are now in "+state+" state <="
	if state == "STOP" {
		what, body = "Stopping", "=> All VRRP group instances are now stopping <="
	}
	ev.Subject = fmt.Sprintf("[%s] VRRP Group %s - %s", st.routerID, group, what)
	ev.Body = body
	s.enqueue(st, ev)
}

func (s *Sender) enqueue(st *settings, ev Event) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	if st.email != nil {
		s.offer(s.mail, ev, "mail")
	}
	if len(st.webhooks) > 0 {
		s.offer(s.hooks, ev, "webhook")
	}
}

func (s *Sender) offer(q chan Event, ev Event, sink string) {
	select {
	case q <- ev:
	default:
		s.dropped.Add(1)
		s.log.Warn("alert dropped: queue full", "sink", sink, "subject", ev.Subject)
	}
}

func (s *Sender) run(q chan Event, send func(Event)) {
	defer s.wg.Done()
	for ev := range q {
		send(ev)
	}
}

// Close stops taking alerts and waits up to timeout for the queued ones.
func (s *Sender) Close(timeout time.Duration) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.mail)
		close(s.hooks)
		s.mu.Unlock()
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		s.log.Warn("alerts still queued at exit")
	}
}
