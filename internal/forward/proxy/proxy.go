package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// Proxy is the userspace dataplane.
type Proxy struct {
	log *slog.Logger

	mu       sync.Mutex
	servers  map[string]server // by virtual service key
	stopping bool
	stopped  atomic.Bool // Shutdown has begun: idle flows and connections end

	// UDP services removed but still carrying flows; a reload that brings
	// one back revives it instead of binding again.
	dmu      sync.Mutex
	draining map[string]*udpServer

	// Event loops (evtcp_linux.go, evudp_linux.go): nloops of them, started
	// with the first service; 0 for the goroutine data path (tcp.go, udp.go).
	nloops int
	ev     *evLoops

	conns sync.WaitGroup // connections and flows in flight
	tcp   connSet        // TCP connections in flight, for listing
	loops sync.WaitGroup // accept and read loops
}

var logLoopsOnce sync.Once

// server is one virtual service's listener.
type server interface {
	close()
	// take makes want the service's settings for new connections.
	take(want *desired.Service)
}

// New returns a proxy dataplane that logs to log. Its connections and flows
// share the process's file descriptors within a budget sized to the
// open-file limit (fds.go), logged here.
func New(log *slog.Logger) *Proxy {
	initFDs(log)
	p := &Proxy{log: log, servers: map[string]server{}, draining: map[string]*udpServer{}}
	n, err := configuredLoops()
	if err != nil {
		log.Error("proxy event loops", "err", err)
	}
	p.nloops = n
	logLoopsOnce.Do(func() {
		if n > 0 {
			log.Info("proxy event loops", "loops", n, "gomaxprocs", runtime.GOMAXPROCS(0), "override", loopsEnv)
		} else {
			log.Info("proxy data path: a goroutine per connection direction", "override", loopsEnv)
		}
	})
	return p
}

// wanted is a service's desired state as the proxy last committed it,
// with the per-real-server settings the hot path reads indexed by address.
type wanted struct {
	*desired.Service
	// sendProxy has the real servers (and sorry server) that get a PROXY
	// protocol header, those of the previous snapshot included: between a
	// reload's dataplane commit and the director's, the scheduler may
	// still pick a real server the new snapshot no longer lists.
	sendProxy map[netip.AddrPort]desired.ProxyProtocol
}

func newWanted(s *desired.Service, prev *wanted) *wanted {
	w := &wanted{Service: s}
	add := func(r desired.RealServer) {
		if r.SendProxy != desired.ProxyNone {
			if w.sendProxy == nil {
				w.sendProxy = map[netip.AddrPort]desired.ProxyProtocol{}
			}
			w.sendProxy[r.Addr] = r.SendProxy
		}
	}
	if prev != nil {
		for _, r := range prev.Served() {
			add(r)
		}
	}
	for _, r := range s.Served() {
		add(r)
	}
	return w
}

// proxyTx is a prepared snapshot: the listeners of the services it adds
// are bound already.
type proxyTx struct {
	p      *Proxy
	s      *director.Snapshot
	opened map[string]server
	done   bool
}

// Prepare implements director.Dataplane: it binds listeners for new
// services; nothing is served differently until Commit.
func (p *Proxy) Prepare(s *director.Snapshot) (director.Transaction, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return nil, errors.New("proxy is shutting down")
	}
	opened := map[string]server{}
	for _, e := range s.Services {
		want, vs := e.Desired, e.Live
		if _, ok := p.servers[vs.Key]; ok {
			continue
		}
		if want.Forwarding != desired.Proxy {
			p.undo(opened)
			return nil, fmt.Errorf("%s: forwarding %s is not served by the proxy dataplane", vs.Key, want.Forwarding)
		}
		if u := p.takeDraining(vs.Key); u != nil {
			opened[vs.Key] = u
			continue
		}
		srv, err := p.listen(vs, want)
		if err != nil {
			p.undo(opened)
			return nil, err
		}
		opened[vs.Key] = srv
	}
	return &proxyTx{p: p, s: s, opened: opened}, nil
}

// Commit implements director.Transaction: the new services' listeners
// serve, the removed ones' close, every service takes its new settings.
// It cannot fail.
func (tx *proxyTx) Commit() error {
	p := tx.p
	p.mu.Lock()
	defer p.mu.Unlock()
	tx.done = true
	if p.stopping {
		p.undo(tx.opened)
		return errors.New("proxy is shutting down")
	}
	want := make(map[string]bool, len(tx.s.Services))
	for _, e := range tx.s.Services {
		want[e.Live.Key] = true
	}
	for key, srv := range p.servers {
		if !want[key] {
			p.retire(key, srv)
			delete(p.servers, key)
		}
	}
	for key, srv := range tx.opened {
		p.servers[key] = srv
	}
	for _, e := range tx.s.Services {
		if srv, ok := p.servers[e.Live.Key]; ok {
			srv.take(e.Desired)
		}
	}
	return nil
}

// Abort implements director.Transaction: the listeners Prepare bound close.
func (tx *proxyTx) Abort() {
	p := tx.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !tx.done {
		tx.done = true
		p.undo(tx.opened)
	}
}

// Apply implements director.Dataplane: Prepare and Commit in one.
func (p *Proxy) Apply(s *director.Snapshot) error {
	tx, err := p.Prepare(s)
	if err != nil {
		return err
	}
	return tx.Commit()
}

// undo stops what a failed Prepare opened; a revived UDP server goes back to
// draining.
func (p *Proxy) undo(opened map[string]server) {
	for key, s := range opened {
		p.retire(key, s)
	}
}

// retire stops a server taking new connections; a UDP one keeps its flows.
func (p *Proxy) retire(key string, s server) {
	if u, ok := s.(*udpServer); ok {
		p.dmu.Lock()
		p.draining[key] = u
		p.dmu.Unlock()
	}
	s.close()
}

// takeDraining revives a draining UDP server for key, if there is one.
func (p *Proxy) takeDraining(key string) *udpServer {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	u := p.draining[key]
	if u == nil {
		return nil
	}
	delete(p.draining, key)
	if !u.revive() {
		return nil
	}
	return u
}

// forget drops a UDP server whose socket has closed.
func (p *Proxy) forget(key string, u *udpServer) {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if p.draining[key] == u {
		delete(p.draining, key)
	}
}

func (p *Proxy) listen(vs *director.VirtualService, want *desired.Service) (server, error) {
	switch want.Protocol {
	case desired.TCP:
		if p.nloops > 0 {
			return p.listenEv(vs, want)
		}
		l, err := listenConfig.Listen(context.Background(), "tcp", vs.Address.String())
		if err != nil {
			return nil, fmt.Errorf("virtual service %s: %w", vs.Key, err)
		}
		t := &tcpServer{p: p, vs: vs, ln: l.(*net.TCPListener)}
		t.take(want)
		p.loops.Add(1)
		go t.acceptLoop()
		return t, nil
	case desired.UDP:
		if int64(want.MaxFlows) > fds.udpCeiling() {
			p.log.Info("max_flows is above what the open-file limit allows: new flows are shed beyond max_udp_flows",
				"service", want.Name, "max_flows", want.MaxFlows, "max_udp_flows", fds.udpCeiling())
		}
		if p.nloops > 0 {
			return p.listenUDPEv(vs, want)
		}
		pc, err := listenConfig.ListenPacket(context.Background(), "udp", vs.Address.String())
		if err != nil {
			return nil, fmt.Errorf("virtual service %s: %w", vs.Key, err)
		}
		u := newUDPServer(p, vs, pc.(*net.UDPConn), nil)
		u.take(want)
		p.loops.Add(2)
		go u.readLoop()
		go u.expireLoop()
		return u, nil
	}
	return nil, fmt.Errorf("virtual service %s: unknown protocol %q", vs.Key, want.Protocol)
}

// stopQuiet is how long a UDP flow, or a TCP connection that owes its client
// no answer, must have been quiet for a stop to close it rather than wait
// for it: a stop waits for traffic, not for idle flows and keep-alive
// connections (docs/proxy.md).
const stopQuiet = time.Second

// Shutdown implements director.Dataplane: listeners close; UDP flows and TCP
// connections end once quiet (stopQuiet), or when they end on their own, or
// when ctx is done.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.stopped.Store(true)
	p.mu.Lock()
	p.stopping = true
	for key, s := range p.servers {
		p.retire(key, s)
		delete(p.servers, key)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.conns.Wait(); close(done) }()
	tick := time.NewTicker(stopQuiet / 4)
	defer tick.Stop()
	for {
		p.closeQuiet()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeQuiet closes the TCP connections a stop need not wait for; UDP
// flows expire in their servers' expire loops, or on the event loops when
// told here (their timers were armed for the idle timeout).
func (p *Proxy) closeQuiet() {
	for _, u := range p.udpServers() {
		u.expireQuietEv()
	}
	var batch []proxied
	for i := range p.tcp.shards {
		sh := &p.tcp.shards[i]
		batch = batch[:0]
		sh.mu.Lock()
		for c := range sh.m {
			if c.quiet(stopQuiet) {
				batch = append(batch, c)
			}
		}
		sh.mu.Unlock()
		for _, c := range batch {
			c.closeQuiet()
		}
	}
}

// Close implements director.Dataplane. Connections end when their contexts
// are cancelled; Close waits for them, a bounded time.
func (p *Proxy) Close() error {
	done := make(chan struct{})
	go func() { p.conns.Wait(); p.loops.Wait(); close(done) }()
	select {
	case <-done:
		p.mu.Lock()
		if p.ev != nil {
			p.ev.stop()
			p.ev = nil
		}
		p.mu.Unlock()
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("proxy: connections still open 10s after close")
	}
}
