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

	"github.com/govs-lb/govs/internal/director"
)

// udpServer proxies one UDP virtual service. Each client address is a flow
// with its own connected socket towards its real server, so replies are told
// apart by the kernel; a flow ends after IdleTimeout without datagrams either
// way (IPVS's UDP timeout), when its real server's grace ends, or when the
// real server answers with ICMP port unreachable.
type udpServer struct {
	p    *Proxy
	vs   *director.VirtualService
	conn *net.UDPConn

	mu       sync.Mutex
	flows    map[netip.AddrPort]*udpFlow
	draining bool // no new flows; the socket closes with the last flow
	closed   bool
	done     chan struct{}
}

type udpFlow struct {
	s      *udpServer
	client netip.AddrPort
	rs     *director.RealServer // nil with one-packet scheduling
	bind   director.Binding
	up     *net.UDPConn
	start  time.Time
	last   atomic.Int64 // nanoseconds since start of the last datagram
	once   sync.Once
	stop   func() bool
	in     atomic.Int64
	out    atomic.Int64
}

var udpBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func newUDPServer(p *Proxy, vs *director.VirtualService, conn *net.UDPConn) *udpServer {
	s := &udpServer{p: p, vs: vs, conn: conn, flows: map[netip.AddrPort]*udpFlow{}, done: make(chan struct{})}
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

func (s *udpServer) closeSocket() {
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
	s.conn.Close()
	for _, f := range flows {
		f.close("service closed")
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
			s.p.log.Debug("udp read", "service", s.vs.Settings().Name, "err", err)
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		st := s.vs.Settings()
		f := s.flow(client, st)
		if f == nil {
			s.vs.Stats.Dropped.Add(1)
			continue
		}
		if f.rs != nil {
			_, err = f.up.Write(buf[:n])
			f.account(f.rs, true, n)
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
			_, err = f.up.WriteToUDPAddrPort(buf[:n], rs.Addr)
			f.account(rs, true, n)
		}
		if err != nil {
			s.p.log.Debug("udp send to real server", "service", st.Name, "err", err)
		}
	}
}

// flow returns the client's flow, creating it (and scheduling its real
// server) for a new client. It returns nil when the datagram must be
// dropped: draining, flow table full, or no real server available.
func (s *udpServer) flow(client netip.AddrPort, st *director.Settings) *udpFlow {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.flows[client]; f != nil {
		return f
	}
	if s.draining || s.closed {
		return nil
	}
	if len(s.flows) >= st.MaxFlows {
		s.vs.Stats.FlowLimit.Add(1) // counted apart: the alert on a full table
		return nil
	}
	f := &udpFlow{s: s, client: client, start: time.Now()}
	ctx := s.vs.Context()
	var err error
	if st.OnePacket {
		f.up, err = net.ListenUDP("udp", nil)
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
			return nil
		}
		f.up, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(f.rs.Addr))
		if err != nil {
			f.rs.Dest.Unbind(false)
			s.vs.Release(f.bind)
		} else {
			f.rs.Stats.Conns.Add(1)
			s.vs.Stats.Conns.Add(1)
		}
		ctx = f.rs.Context()
	}
	if err != nil {
		s.p.log.Warn("udp flow socket", "service", st.Name, "err", err)
		return nil
	}
	s.flows[client] = f
	s.vs.Flows.Add(1)
	s.p.conns.Add(1)
	f.stop = context.AfterFunc(ctx, func() { f.close("grace period over") })
	go f.replyLoop()
	return f
}

func (f *udpFlow) account(rs *director.RealServer, in bool, n int) {
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
	f.last.Store(int64(time.Since(f.start)))
}

// replyLoop returns the real server's datagrams to the client from the VIP.
// It waits in the poller without a buffer and takes one from the pool only
// when a datagram is there, so an idle flow costs no buffer memory.
func (f *udpFlow) replyLoop() {
	rc, err := f.up.SyscallConn()
	if err != nil {
		f.close("socket: " + err.Error())
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
				// ICMP port unreachable: the real server is not listening. End
				// the flow so the client's next datagram is scheduled anew.
				f.rs.Stats.ConnectErrors.Add(1)
				f.s.vs.Stats.ConnectErrors.Add(1)
				f.s.vs.ConnectFailed(f.rs, unix.ECONNREFUSED) // passive health
				f.close("real server unreachable")
				return
			}
			continue
		}
		rs := f.rs
		if rs == nil {
			rs = f.s.realServerAt(from)
		}
		if _, err := f.s.conn.WriteToUDPAddrPort((*bp)[:n], f.client); err == nil && rs != nil {
			f.account(rs, false, n)
		}
		udpBufPool.Put(bp)
		bp = nil
	}
}

// realServerAt finds the real server a one-packet-scheduled reply came from.
func (s *udpServer) realServerAt(sa unix.Sockaddr) *director.RealServer {
	var addr netip.AddrPort
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		addr = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		addr = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	default:
		return nil
	}
	for _, rs := range s.vs.RealServers() {
		if rs.Addr == addr {
			return rs
		}
	}
	return nil
}

func (f *udpFlow) close(reason string) {
	f.once.Do(func() {
		s := f.s
		f.stop()
		f.up.Close()
		if f.rs != nil {
			f.rs.Dest.Unbind(false)
			s.vs.Release(f.bind)
		}
		s.mu.Lock()
		if s.flows[f.client] == f {
			delete(s.flows, f.client)
			s.vs.Flows.Add(-1)
		}
		last := s.draining && len(s.flows) == 0
		s.mu.Unlock()
		if st := s.vs.Settings(); st.AccessLog {
			backend := "ops"
			if f.rs != nil {
				backend = f.rs.Addr.String()
			}
			s.p.log.LogAttrs(context.Background(), slog.LevelInfo, "flow",
				slog.String("service", st.Name), slog.String("client", f.client.String()),
				slog.String("backend", backend), slog.Int64("bytes_in", f.in.Load()),
				slog.Int64("bytes_out", f.out.Load()), slog.Duration("duration", time.Since(f.start)),
				slog.String("end", reason))
		}
		s.p.conns.Done()
		if last {
			s.closeSocket()
		}
	})
}

func (s *udpServer) expireLoop() {
	defer s.p.loops.Done()
	var expired []*udpFlow
	for {
		idle := s.vs.Settings().IdleTimeout
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
			f.close("idle timeout")
		}
	}
}
