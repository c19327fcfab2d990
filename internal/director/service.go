package director

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/sched"
)

// Settings are the parts of a virtual service that a reload may change in
// place. Dataplanes read them once per new connection or flow.
type Settings struct {
	Name           string
	SchedulerName  string
	Scheduler      sched.Scheduler
	Forwarding     config.Forwarding
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration
	Retries        int
	MaxFlows       int
	OnePacket      bool
	AccessLog      bool

	schedOpts sched.Options
}

// VirtualService is a running virtual service. Its identity (protocol and
// address) never changes; everything else can change on reload.
type VirtualService struct {
	Key      string
	Protocol config.Protocol
	Address  netip.AddrPort
	Stats    Stats

	settings atomic.Pointer[Settings]
	reals    atomic.Pointer[[]*RealServer] // in service, in configuration order

	mu       sync.Mutex             // guards retiring and updates
	retiring map[netip.AddrPort]*RealServer

	ctx    context.Context // ends when the service's connections must end
	cancel context.CancelFunc
	retire *time.Timer
}

// Settings returns the current settings.
func (vs *VirtualService) Settings() *Settings { return vs.settings.Load() }

// RealServers returns the real servers in service, in configuration order.
// The slice must not be modified.
func (vs *VirtualService) RealServers() []*RealServer {
	if p := vs.reals.Load(); p != nil {
		return *p
	}
	return nil
}

// Retiring returns real servers removed by a reload whose connections may
// still run until the grace period ends.
func (vs *VirtualService) Retiring() []*RealServer {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	out := make([]*RealServer, 0, len(vs.retiring))
	for _, rs := range vs.retiring {
		out = append(out, rs)
	}
	return out
}

// Context ends when the service's connections must be closed: after
// shutdown or after its removal, once the grace period has passed.
func (vs *VirtualService) Context() context.Context { return vs.ctx }

// Schedule chooses a real server for a new connection from client, skipping
// those in exclude (real servers that already failed this connection). It
// returns nil when no real server is available.
func (vs *VirtualService) Schedule(client netip.AddrPort, exclude []*RealServer) *RealServer {
	k := sched.Key{Client: client, VIP: vs.Address}
	if d := vs.Settings().Scheduler.Pick(&k); d != nil {
		rs := d.Owner.(*RealServer)
		if !contains(exclude, rs) {
			return rs
		}
	}
	if len(exclude) == 0 {
		return nil
	}
	// The scheduler's choice already failed this connection (a hashing
	// scheduler keeps choosing it): try the others in configuration order.
	for _, rs := range vs.RealServers() {
		if rs.Dest.Available() && !contains(exclude, rs) {
			return rs
		}
	}
	return nil
}

func contains(list []*RealServer, rs *RealServer) bool {
	for _, x := range list {
		if x == rs {
			return true
		}
	}
	return false
}

// RealServer is a running real server of a virtual service.
type RealServer struct {
	Addr  netip.AddrPort
	Dest  *sched.Dest // scheduler state: effective weight, connection counts
	Stats Stats

	cfg    atomic.Pointer[config.RealServer]
	ctx    context.Context
	cancel context.CancelFunc
	retire *time.Timer
}

// Config returns the real server's current configuration.
func (rs *RealServer) Config() *config.RealServer { return rs.cfg.Load() }

// Context ends when the real server's connections must be closed: after
// shutdown or after its removal, once the grace period has passed.
func (rs *RealServer) Context() context.Context { return rs.ctx }
