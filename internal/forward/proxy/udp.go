package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// udpServer proxies one UDP virtual service. Each client address is a flow
// with its own connected socket towards its real server, so replies are told
// apart by the kernel; a flow ends after IdleTimeout without datagrams either
// way (IPVS's UDP timeout), when its real server's grace ends, or when the
// real server answers with ICMP port unreachable.
//
// On the goroutine data path (GOVS_PROXY_LOOPS=off) one socket is read by
// readLoop, each flow's by its replyLoop, and expireLoop ends idle flows. On
// the event loops (evudp_linux.go) the service has one SO_REUSEPORT socket
// per loop instead (ls), a flow lives on the loop whose socket received its
// first datagram, and its idle timeout is a timer of that loop: no goroutine
// per flow or per service.
type udpServer struct {
	p    *Proxy
	vs   *director.VirtualService
	want atomic.Pointer[wanted] // the service as last committed (proxy.go)
	conn *net.UDPConn           // goroutine data path; nil on the loops
	ls   []*udpListener         // event loops: one socket per loop

	mu       sync.Mutex
	flows    map[netip.AddrPort]*udpFlow
	clients  map[netip.Addr]int // flows per client address, for max_flows_per_client
	draining bool               // no new flows; the socket closes with the last flow
	closed   bool
	done     chan struct{}
}

type udpFlow struct {
	s      *udpServer
	client netip.AddrPort
	rs     *director.RealServer // nil with one-packet scheduling
	bind   director.Binding
	up     *net.UDPConn // goroutine data path
	ev     udpFlowEv    // event loops: the flow's socket, loop and timer
	start  time.Time
	last   atomic.Int64 // nanoseconds since start of the last datagram
	once   sync.Once
	stop   func() bool
	in     atomic.Int64
	out    atomic.Int64
}

var udpBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func newUDPServer(p *Proxy, vs *director.VirtualService, conn *net.UDPConn, ls []*udpListener) *udpServer {
	s := &udpServer{p: p, vs: vs, conn: conn, ls: ls, flows: map[netip.AddrPort]*udpFlow{}, clients: map[netip.Addr]int{}, done: make(chan struct{})}
	for _, a := range ls {
		a.s = s
	}
	// Everything ends when the service's grace period is over.
	context.AfterFunc(vs.Context(), s.closeSocket)
	return s
}

// close stops new flows; the socket stays open for the flows in progress.
func (s *udpServer) close() {
	s.mu.Lock()
	s.draining = true
	idle := len(s.flows) == 0
	s.mu.Unlock()
	if idle {
		s.closeSocket()
	}
}

// revive takes a draining server back into service; false if its socket is
// already closed.
func (s *udpServer) revive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.draining = false
	return true
}

func (s *udpServer) closeSocket() { s.shut(nil) }

// shut closes the service's sockets and ends its flows. from is the
// listener whose loop runs the call (the last flow of a draining service
// ended there), nil off the loops: a loop must not wait for itself.
func (s *udpServer) shut(from *udpListener) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	flows := make([]*udpFlow, 0, len(s.flows))
	for _, f := range s.flows {
		flows = append(flows, f)
	}
	s.mu.Unlock()
	close(s.done)
	if s.conn != nil {
		s.conn.Close()
	}
	s.closeListeners(from)
	for _, f := range flows {
		f.end(killed, "service closed")
	}
	s.p.forget(s.vs.Key, s)
}

func (s *udpServer) readLoop() {
	defer s.p.loops.Done()
	buf := make([]byte, 64<<10)
	for {
		n, client, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.p.log.Debug("udp read", "service", s.want.Load().Name, "err", err)
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		st := s.want.Load()
		f := s.flow(client, st, nil)
		if f == nil {
			s.vs.Stats.Dropped.Add(1)
			continue
		}
		// Counted before it is sent: whoever sees the reply sees the count.
		if f.rs != nil {
			f.account(f.rs, true, n)
			_, err = f.up.Write(buf[:n])
		} else {
			// One-packet scheduling: every datagram is scheduled on its own.
			b := s.vs.Schedule(client, nil)
			rs := b.RealServer
			if rs == nil || !rs.Dest.Bind() {
				s.vs.Release(b)
				s.vs.Stats.Dropped.Add(1)
				continue
			}
			rs.Dest.Unbind(false)
			s.vs.Release(b)
			rs.Stats.Conns.Add(1)
			s.vs.Stats.Conns.Add(1)
			f.account(rs, true, n)
			_, err = f.up.WriteToUDPAddrPort(buf[:n], rs.Addr)
		}
		if err != nil {
			s.p.log.Debug("udp send to real server", "service", st.Name, "err", err)
		}
	}
}

// flow returns the client's flow, creating it (and scheduling its real
// server) for a new client. It returns nil when the datagram must be
// dropped: draining, flow table full, or no real server available.
//
// lst is the listener that received the datagram on the event loops (the
// call runs on its loop), nil on the goroutine data path.
func (s *udpServer) flow(client netip.AddrPort, st *wanted, lst *udpListener) *udpFlow {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flows[client]; f != nil {
		if !f.on(lst) {
			// Another loop's flow: SO_REUSEPORT sends a client's datagrams
			// to one socket while the group stands, so this is not seen.
			return nil
		}
		return f
	}
	if s.draining || s.closed {
		return nil
	}
	if len(s.flows) >= st.MaxFlows {
		s.vs.Stats.FlowLimit.Add(1) // counted apart: the alert on a full table
		return nil
	}
	if limit := st.MaxPerClient; limit > 0 && s.clients[client.Addr()] >= limit {
		s.vs.Stats.ClientLimited.Add(1)
		s.p.log.Warn("client at its flow limit, datagram dropped", "service", st.Name,
			"client", client.Addr().String(), "max_flows_per_client", limit)
		return nil
	}
	// A flow holds a socket. New flows are the first thing shed when
	// descriptors run short, before TCP connections, listeners and the API.
	if !fds.takeUDP() {
		s.vs.Stats.Overload.Add(1)
		s.p.log.Warn("out of file descriptors for new udp flows, datagram dropped", "service", st.Name,
			"client", client.String(), "max_udp_flows", fds.udpCeiling())
		return nil
	}
	f, err := s.newFlow(client, st, lst)
	if f == nil {
		fds.give(1)
		if err != nil {
			s.p.log.Warn("udp flow socket", "service", st.Name, "err", err)
		}
		return nil
	}
	s.flows[client] = f
	s.clients[client.Addr()]++
	s.vs.Flows.Add(1)
	s.p.conns.Add(1)
	ctx := s.vs.Context()
	if f.rs != nil {
		ctx = f.rs.Context()
	}
	f.stop = context.AfterFunc(ctx, func() { f.end(killed, "grace period over") })
	if lst != nil {
		f.startEv(st)
	} else {
		go f.replyLoop()
	}
	return f
}

// newFlow schedules a new client's real server and opens the flow's
// socket: connected to the real server, or, with one-packet scheduling,
// unconnected (replies are checked to come from a real server). It returns
// nil when there is none to be had.
func (s *udpServer) newFlow(client netip.AddrPort, st *wanted, lst *udpListener) (*udpFlow, error) {
	f := &udpFlow{s: s, client: client, start: time.Now()}
	var err error
	if st.OnePacket {
		if lst != nil {
			err = f.openEv(lst, netip.AddrPort{})
		} else {
			f.up, err = net.ListenUDP("udp", nil)
		}
	} else {
		var tried [8]*director.RealServer
		n := 0
		for attempt := 0; attempt <= st.Retries && n < len(tried); attempt++ {
			b := s.vs.Schedule(client, tried[:n])
			rs := b.RealServer
			if rs == nil {
				break
			}
			tried[n] = rs
			n++
			if rs.Dest.Bind() {
				f.rs, f.bind = rs, b
				break
			}
			s.vs.Release(b)
		}
		if f.rs == nil {
			return nil, nil
		}
		if lst != nil {
			err = f.openEv(lst, f.rs.Addr)
		} else {
			f.up, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(f.rs.Addr))
		}
		if err != nil {
			f.rs.Dest.Unbind(false)
			s.vs.Release(f.bind)
		} else {
			f.rs.Stats.Conns.Add(1)
			s.vs.Stats.Conns.Add(1)
		}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (f *udpFlow) account(rs *director.RealServer, in bool, n int) {
	f.count(rs, in, n)
	f.last.Store(int64(time.Since(f.start)))
}

// count adds a datagram of n bytes to the counters; the caller records when.
func (f *udpFlow) count(rs *director.RealServer, in bool, n int) {
	if in {
		rs.Stats.InPkts.Add(1)
		rs.Stats.InBytes.Add(uint64(n))
		f.s.vs.Stats.InPkts.Add(1)
		f.s.vs.Stats.InBytes.Add(uint64(n))
		f.in.Add(int64(n))
	} else {
		rs.Stats.OutPkts.Add(1)
		rs.Stats.OutBytes.Add(uint64(n))
		f.s.vs.Stats.OutPkts.Add(1)
		f.s.vs.Stats.OutBytes.Add(uint64(n))
		f.out.Add(int64(n))
	}
}

// replyLoop returns the real server's datagrams to the client from the VIP.
// It waits in the poller without a buffer and takes one from the pool only
// when a datagram is there, so an idle flow costs no buffer memory.
func (f *udpFlow) replyLoop() {
	rc, err := f.up.SyscallConn()
	if err != nil {
		f.close(accesslog.Termination{accesslog.ByInternal, accesslog.InData}, "socket: "+err.Error())
		return
	}
	var (
		n    int
		from unix.Sockaddr
		rerr error
		bp   *[]byte
	)
	read := func(fd uintptr) bool {
		bp = udpBufPool.Get().(*[]byte)
		for {
			if f.rs != nil {
				n, rerr = unix.Read(int(fd), *bp)
			} else {
				n, from, rerr = unix.Recvfrom(int(fd), *bp, unix.MSG_DONTWAIT)
			}
			switch rerr {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				udpBufPool.Put(bp)
				bp = nil
				return false
			}
			return true
		}
	}
	for {
		if err := rc.Read(read); err != nil {
			return // socket closed: the flow has ended
		}
		if rerr != nil {
			if bp != nil {
				udpBufPool.Put(bp)
			}
			if rerr == unix.ECONNREFUSED {
				f.unreachable()
				return
			}
			continue
		}
		rs := f.rs
		if rs == nil {
			// The one-packet socket is not connected: anyone may send to
			// its port. Only a real server's datagrams go to the client.
			if rs = f.s.realServerAt(from); rs == nil {
				f.s.vs.Stats.Dropped.Add(1)
				f.s.p.log.Warn("udp reply from an address that is no real server, dropped",
					"service", f.s.want.Load().Name, "from", sockaddrString(from))
				udpBufPool.Put(bp)
				bp = nil
				continue
			}
		}
		// Counted before it is sent, so that a client that has its reply
		// finds it counted (the unit tests, an operator watching stats).
		f.account(rs, false, n)
		f.s.conn.WriteToUDPAddrPort((*bp)[:n], f.client)
		udpBufPool.Put(bp)
		bp = nil
	}
}

// unreachable ends a flow whose real server answered with ICMP port
// unreachable (it is not listening), so that the client's next datagram is
// scheduled anew; it counts as a failed connect (passive health).
func (f *udpFlow) unreachable() {
	if f.rs == nil {
		return // one-packet sockets are not connected: no error reaches them
	}
	f.rs.Stats.ConnectErrors.Add(1)
	f.s.vs.Stats.ConnectErrors.Add(1)
	f.s.vs.ConnectFailed(f.rs, unix.ECONNREFUSED) // passive health
	code := accesslog.Termination{accesslog.ByServer, accesslog.InData}
	if f.out.Load() == 0 {
		code[1] = accesslog.InConnect // never answered: refused
	}
	f.close(code, "real server unreachable")
}

// realServerAt finds the real server a one-packet-scheduled reply came
// from, among those in service and those a reload is retiring; nil if the
// sender is none of them.
func (s *udpServer) realServerAt(sa unix.Sockaddr) *director.RealServer {
	addr, ok := sockaddrAddrPort(sa)
	if !ok {
		return nil
	}
	return s.realServerAddr(addr)
}

func (s *udpServer) realServerAddr(addr netip.AddrPort) *director.RealServer {
	for _, rs := range s.vs.RealServers() {
		if rs.Addr == addr {
			return rs
		}
	}
	for _, rs := range s.vs.Retiring() {
		if rs.Addr == addr {
			return rs
		}
	}
	return nil
}

func sockaddrAddrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

func sockaddrString(sa unix.Sockaddr) string {
	if ap, ok := sockaddrAddrPort(sa); ok {
		return ap.String()
	}
	return "unknown"
}

// killed ends a flow whose real server an operator removed (its grace
// period over), or whose service stops.
var killed = accesslog.Termination{accesslog.ByKilled, accesslog.InData}

// end closes f from any goroutine: on the event loops the close runs on the
// flow's loop, which owns its socket and timer.
func (f *udpFlow) end(code accesslog.Termination, reason string) {
	if f.ev.lst != nil {
		f.endEv(code, reason)
		return
	}
	f.close(code, reason)
}

// close ends f: on the flow's loop for the event loops (end posts it there).
func (f *udpFlow) close(code accesslog.Termination, reason string) {
	f.once.Do(func() {
		s := f.s
		f.stop()
		if f.up != nil {
			f.up.Close()
		}
		f.closeEv()
		if f.rs != nil {
			f.rs.Dest.Unbind(false)
			s.vs.Release(f.bind)
		}
		fds.give(1)
		s.mu.Lock()
		if s.flows[f.client] == f {
			delete(s.flows, f.client)
			f.forgetEv()
			s.vs.Flows.Add(-1)
			a := f.client.Addr()
			if n := s.clients[a]; n <= 1 {
				delete(s.clients, a)
			} else {
				s.clients[a] = n - 1
			}
		}
		last := s.draining && len(s.flows) == 0
		s.mu.Unlock()
		st := s.want.Load()
		var rsAddr netip.AddrPort
		if f.rs != nil {
			rsAddr = f.rs.Addr
		}
		r := accesslog.Record{Time: f.start, Service: st.Name, Client: f.client, RealServer: rsAddr, ConnectMs: -1,
			DurationMs: ms(time.Since(f.start)), BytesIn: uint64(f.in.Load()), BytesOut: uint64(f.out.Load()),
			Termination: code}
		if !accesslog.Emit(&r, st.AccessLog) && st.AccessLog {
			backend := "ops"
			if f.rs != nil {
				backend = f.rs.Addr.String()
			}
			s.p.log.LogAttrs(context.Background(), slog.LevelInfo, "flow",
				slog.String("service", st.Name), slog.String("client", f.client.String()),
				slog.String("backend", backend), slog.Int64("bytes_in", f.in.Load()),
				slog.Int64("bytes_out", f.out.Load()), slog.Duration("duration", time.Since(f.start)),
				slog.String("end", reason), slog.String("termination", code.String()))
		}
		s.p.conns.Done()
		if last {
			s.shut(f.ev.lst)
		}
	})
}

func (s *udpServer) expireLoop() {
	defer s.p.loops.Done()
	var expired []*udpFlow
	for {
		idle := s.want.Load().IdleTimeout
		if s.p.stopped.Load() {
			// A stop waits for traffic, not for idle flows: a flow is
			// idle once quiet for stopQuiet.
			idle = min(idle, stopQuiet)
		}
		select {
		case <-s.done:
			return
		case <-time.After(min(max(idle/4, 50*time.Millisecond), time.Second)):
		}
		expired = expired[:0]
		s.mu.Lock()
		for _, f := range s.flows {
			if time.Since(f.start)-time.Duration(f.last.Load()) >= idle {
				expired = append(expired, f)
			}
		}
		s.mu.Unlock()
		for _, f := range expired {
			f.close(accesslog.Normal, "idle timeout") // how UDP flows end
		}
	}
}

// take implements server.
func (s *udpServer) take(want *desired.Service) {
	prev := s.want.Load()
	s.want.Store(newWanted(want, prev))
	if prev != nil && want.IdleTimeout < prev.IdleTimeout {
		s.retimeEv() // the loops' flow timers were armed for the longer timeout
	}
}
