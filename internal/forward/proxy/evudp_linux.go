package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward/proxy/loop"
)

// UDP services on the event loops (docs/proxy.md#event-loops).
//
// Each service has one socket per loop, all bound to the VIP with
// SO_REUSEPORT. For UDP the kernel picks the socket of a group by a hash of
// the datagram's addresses and ports, so every datagram of one client
// reaches the same socket, hence the same loop, while the group stands (it
// stands from the service's first bind to its last close: a reload that
// keeps the service keeps its sockets). A flow therefore lives on one loop:
// its connected socket towards the real server is registered there, its
// idle timeout is a timer of that loop, and the loop's own table finds it
// without a lock. The service-wide table (udpServer.flows, under its mutex)
// is touched only when a flow begins or ends, for max_flows, the per-client
// limit and the connection list.

// udpBatch is how many datagrams one recvmmsg/sendmmsg moves.
const udpBatch = 8

// udpMaxDatagram holds the largest UDP payload (65,507 bytes over IPv4).
const udpMaxDatagram = 64 << 10

// udpListener is one of a UDP service's sockets, on one loop.
type udpListener struct {
	s     *udpServer
	l     *loop.Loop
	fd    int                         // -1 once closed
	flows map[netip.AddrPort]*udpFlow // the flows on this loop; its goroutine only
}

// udpFlowEv is a flow's part on the loops.
type udpFlowEv struct {
	lst     *udpListener // its loop, and the socket replies leave from
	fd      int          // connected to the real server (unconnected with ops); -1 once closed
	fam     int          // of fd
	timer   *loop.Timer  // idle timeout
	startNs int64        // loop clock at the start: last counts from here
	salen   uint32       // of sa; 0 until the first datagram gave it
	sa      unix.RawSockaddrInet6
}

// udpBatchBufs are the buffers of one recvmmsg and one sendmmsg. Handlers
// take them from a pool for the time of one event, so an idle flow holds no
// buffer and a loop holds one set while it works.
type udpBatchBufs struct {
	buf  [udpBatch][]byte
	iov  [udpBatch]unix.Iovec
	hdr  [udpBatch]unix.Mmsghdr
	name [udpBatch]unix.RawSockaddrAny
	siov [udpBatch]unix.Iovec
	shdr [udpBatch]unix.Mmsghdr
}

var udpBatchPool = sync.Pool{New: func() any {
	b := &udpBatchBufs{}
	slab := make([]byte, udpBatch*udpMaxDatagram)
	for i := range b.buf {
		b.buf[i] = slab[i*udpMaxDatagram : (i+1)*udpMaxDatagram : (i+1)*udpMaxDatagram]
		b.iov[i].Base = &b.buf[i][0]
		b.iov[i].SetLen(udpMaxDatagram)
		b.hdr[i].Hdr.Iov = &b.iov[i]
		b.hdr[i].Hdr.SetIovlen(1)
		b.hdr[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.name[i]))
		b.shdr[i].Hdr.Iov = &b.siov[i]
		b.shdr[i].Hdr.SetIovlen(1)
	}
	return b
}}

// recv reads up to udpBatch datagrams from fd without waiting.
func (b *udpBatchBufs) recv(fd int) (int, error) {
	for i := range b.hdr {
		b.hdr[i].Hdr.Namelen = unix.SizeofSockaddrAny
	}
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdr[0])), udpBatch,
		unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// send sends the n datagrams prepared in shdr from fd; it returns how many
// left and the error that stopped the rest.
func (b *udpBatchBufs) send(fd, n int) (int, error) {
	sent := 0
	for sent < n {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.shdr[sent])), uintptr(n-sent),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return sent, errnoErr(e)
		}
		sent += int(r)
	}
	return sent, nil
}

func rawSendto(fd int, p []byte, sa *unix.RawSockaddrInet6, salen uint32) error {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(sa)), uintptr(salen))
		if e != unix.EINTR {
			return errnoErr(e)
		}
	}
}

// putRawSockaddr writes ap into sa as a socket of family fam takes it
// (IPv4 addresses IPv4-mapped for an IPv6 socket) and returns its length.
func putRawSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, fam int) uint32 {
	port := [2]byte{byte(ap.Port() >> 8), byte(ap.Port())}
	if fam == unix.AF_INET && ap.Addr().Unmap().Is4() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().Unmap().As4()}
		*(*[2]byte)(unsafe.Pointer(&s4.Port)) = port
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ap.Addr().As16()}
	*(*[2]byte)(unsafe.Pointer(&sa.Port)) = port
	return unix.SizeofSockaddrInet6
}

func (p *Proxy) listenUDPEv(vs *director.VirtualService, want *desired.Service) (server, error) {
	fds, err := p.bindOnLoops(vs, "udp", listenUDPReusePort)
	if err != nil {
		return nil, err
	}
	ls := make([]*udpListener, len(p.ev.loops))
	for i, l := range p.ev.loops {
		ls[i] = &udpListener{l: l, fd: fds[i], flows: map[netip.AddrPort]*udpFlow{}}
	}
	u := newUDPServer(p, vs, nil, ls)
	u.take(want)
	for _, a := range ls {
		done := make(chan error, 1)
		if !a.l.Post(func() { done <- a.l.Register(a.fd, a) }) {
			done <- errors.New("event loop stopped")
		}
		if err := <-done; err != nil {
			u.closeSocket()
			return nil, fmt.Errorf("virtual service %s: %w", vs.Key, err)
		}
	}
	return u, nil
}

// listenUDPReusePort binds n datagram sockets to ap with SO_REUSEPORT, as
// listenReusePort does for TCP: a first bind without it checks that nobody
// else holds the address; a wildcard address is dual-stack. No
// SO_REUSEADDR: for UDP it would let another socket share the port.
func listenUDPReusePort(ap netip.AddrPort, n int) ([]int, error) {
	return bindReusePort(ap, n, unix.SOCK_DGRAM, udpListenSocket, nil)
}

func udpListenSocket(fam int, dual bool, addr netip.AddrPort, reuseport bool) (int, error) {
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if reuseport {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1) // freebind_linux.go's reason
	if fam == unix.AF_INET6 {
		v6only := 1
		if dual {
			v6only = 0
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only)
	}
	if err := unix.Bind(fd, addrPortSockaddr(addr)); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}

// closeFd closes the listener's socket; on its loop (or once it stopped).
func (a *udpListener) closeFd() {
	if a.fd >= 0 {
		a.l.Forget(a.fd)
		unix.Close(a.fd)
		a.fd = -1
	}
}

// closeListeners closes the service's sockets, each on its loop. Off the
// loops it waits for them (the address is free when close returns, for a
// reload that binds it again); from a loop (from) it closes that loop's and
// leaves the others to their loops, since two loops waiting for each other
// would never return.
func (s *udpServer) closeListeners(from *udpListener) {
	for _, a := range s.ls {
		switch {
		case a == from:
			a.closeFd()
		case from != nil:
			if !a.l.Post(a.closeFd) {
				a.closeFd() // the loop is gone: nobody else touches a
			}
		default:
			done := make(chan struct{})
			if !a.l.Post(func() { a.closeFd(); close(done) }) {
				a.closeFd()
				close(done)
			}
			<-done
		}
	}
}

// Event: datagrams from clients are waiting. Read them in batches until a
// batch comes back short (edge-triggered: the socket was empty, the next
// datagram raises a new edge) and pass each to its flow's real server.
func (a *udpListener) Event(_ int, ev uint32) {
	if ev&unix.EPOLLIN == 0 {
		return // the first EPOLLOUT edge: replies never wait for room
	}
	b := udpBatchPool.Get().(*udpBatchBufs)
	defer udpBatchPool.Put(b)
	for errs := 0; a.fd >= 0 && errs < 4; {
		n, err := b.recv(a.fd)
		if err != nil {
			if err == unix.EAGAIN {
				return
			}
			if err != unix.EINTR {
				errs++
				a.s.p.log.Debug("udp read", "service", a.s.want.Load().Name, "err", err)
			}
			continue
		}
		st := a.s.want.Load()
		for i := 0; i < n && a.fd >= 0; i++ {
			a.forward(b, i, st)
		}
		if n < udpBatch {
			return
		}
	}
}

// forward sends the batch's datagram i to its flow's real server, creating
// the flow for a new client.
func (a *udpListener) forward(b *udpBatchBufs, i int, st *wanted) {
	s := a.s
	client := rawAddrPort(&b.name[i])
	f := a.flows[client]
	if f == nil {
		if f = s.flow(client, st, a); f == nil {
			s.vs.Stats.Dropped.Add(1)
			return
		}
	}
	if f.ev.salen == 0 {
		// The client's address as the socket gave it (an IPv6 scope
		// included), for the replies' sendmmsg.
		f.ev.salen = min(b.hdr[i].Hdr.Namelen, uint32(unsafe.Sizeof(f.ev.sa)))
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&f.ev.sa)), f.ev.salen), unsafe.Slice((*byte)(unsafe.Pointer(&b.name[i])), f.ev.salen))
	}
	n := int(b.hdr[i].Len)
	data := b.buf[i][:n]
	f.last.Store(a.l.Now() - f.ev.startNs)
	var err error
	if f.rs != nil {
		// Counted before it is sent: whoever sees the reply sees the count.
		f.count(f.rs, true, n)
		_, err = rawWrite(f.ev.fd, data)
	} else {
		// One-packet scheduling: every datagram is scheduled on its own.
		bd := s.vs.Schedule(client, nil)
		rs := bd.RealServer
		if rs == nil || !rs.Dest.Bind() {
			s.vs.Release(bd)
			s.vs.Stats.Dropped.Add(1)
			return
		}
		rs.Dest.Unbind(false)
		s.vs.Release(bd)
		rs.Stats.Conns.Add(1)
		s.vs.Stats.Conns.Add(1)
		f.count(rs, true, n)
		var sa unix.RawSockaddrInet6
		err = rawSendto(f.ev.fd, data, &sa, putRawSockaddr(&sa, rs.Addr, f.ev.fam))
	}
	if err != nil {
		s.p.log.Debug("udp send to real server", "service", st.Name, "err", err)
	}
}

// openEv opens the flow's socket on lst's loop: connected to to, or, with
// one-packet scheduling (to not valid), unconnected and dual-stack so that
// it reaches real servers of either family.
func (f *udpFlow) openEv(lst *udpListener, to netip.AddrPort) error {
	var fd, fam int
	var err error
	if to.IsValid() {
		to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
		fam = unix.AF_INET6
		if to.Addr().Is4() {
			fam = unix.AF_INET
		}
		if fd, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return os.NewSyscallError("socket", err)
		}
		if err = unix.Connect(fd, addrPortSockaddr(to)); err != nil {
			unix.Close(fd)
			return os.NewSyscallError("connect", err)
		}
	} else {
		fam = unix.AF_INET6
		if fd, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			fam = unix.AF_INET // no IPv6 here
			if fd, err = unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
				return os.NewSyscallError("socket", err)
			}
		} else {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		}
	}
	if err := lst.l.Register(fd, f); err != nil {
		unix.Close(fd)
		return err
	}
	f.ev = udpFlowEv{lst: lst, fd: fd, fam: fam}
	return nil
}

// startEv puts a new flow in its loop's table and arms its idle timer; on
// its loop, with the service's mutex held.
func (f *udpFlow) startEv(st *wanted) {
	a := f.ev.lst
	a.flows[f.client] = f
	f.ev.startNs = a.l.Now()
	f.ev.timer = a.l.AfterFunc(max(int64(st.IdleTimeout), 0), f.expire)
}

// on reports whether f belongs to lst's loop (nil: the goroutine path).
func (f *udpFlow) on(lst *udpListener) bool { return f.ev.lst == lst }

// expire is the flow's idle timer: the flow ends once quiet for the idle
// timeout (stopQuiet during a stop); otherwise the timer is set for the
// rest of it. The timer is not moved on every datagram, only here.
func (f *udpFlow) expire() {
	if f.ev.fd < 0 {
		return
	}
	idle := int64(f.s.want.Load().IdleTimeout)
	if f.s.p.stopped.Load() {
		idle = min(idle, int64(stopQuiet))
	}
	quiet := f.ev.lst.l.Now() - f.ev.startNs - f.last.Load()
	if quiet >= idle {
		f.close(accesslog.Normal, "idle timeout") // how UDP flows end
		return
	}
	f.ev.timer.Reset(idle - quiet)
}

// Event: replies from the real server (or an ICMP error) are waiting. Read
// them in batches and send each batch to the client from the VIP in one
// sendmmsg. A batch that comes back short emptied the socket, unless an
// error is pending (EPOLLERR), which the next read returns.
func (f *udpFlow) Event(_ int, ev uint32) {
	if f.ev.fd < 0 || ev&(unix.EPOLLIN|unix.EPOLLERR) == 0 {
		return
	}
	b := udpBatchPool.Get().(*udpBatchBufs)
	defer udpBatchPool.Put(b)
	for errs := 0; f.ev.fd >= 0 && errs < 8; {
		n, err := b.recv(f.ev.fd)
		switch err {
		case nil:
		case unix.EAGAIN:
			return
		case unix.ECONNREFUSED:
			f.unreachable()
			return
		default:
			errs++   // bounded: an error that would not go away must not hold the loop
			continue // EINTR, or another ICMP error, which the read consumed
		}
		f.reply(b, n)
		if n < udpBatch && ev&unix.EPOLLERR == 0 {
			return
		}
	}
}

// reply sends the batch's n datagrams to the client.
func (f *udpFlow) reply(b *udpBatchBufs, n int) {
	s := f.s
	out := 0
	for i := range n {
		size := int(b.hdr[i].Len)
		rs := f.rs
		if rs == nil {
			// The one-packet socket is not connected: anyone may send to
			// its port. Only a real server's datagrams go to the client.
			from := rawAddrPort(&b.name[i])
			if rs = s.realServerAddr(from); rs == nil {
				s.vs.Stats.Dropped.Add(1)
				s.p.log.Warn("udp reply from an address that is no real server, dropped",
					"service", s.want.Load().Name, "from", from.String())
				continue
			}
		}
		// Counted before it is sent, so that a client that has its reply
		// finds it counted.
		f.count(rs, false, size)
		b.siov[out].Base = &b.buf[i][0]
		b.siov[out].SetLen(size)
		h := &b.shdr[out].Hdr
		h.Name = (*byte)(unsafe.Pointer(&f.ev.sa))
		h.Namelen = f.ev.salen
		out++
	}
	if out == 0 {
		return
	}
	f.last.Store(f.ev.lst.l.Now() - f.ev.startNs)
	lfd := f.ev.lst.fd
	if lfd < 0 || f.ev.salen == 0 {
		s.vs.Stats.Dropped.Add(uint64(out))
		return
	}
	if sent, err := b.send(lfd, out); err != nil {
		// A full socket buffer or a route gone: datagrams are lost, as UDP
		// may lose them; counted.
		s.vs.Stats.Dropped.Add(uint64(out - sent))
		s.p.log.Debug("udp send to client", "service", s.want.Load().Name, "client", f.client.String(), "err", err)
	}
}

// closeEv stops the flow's timer and closes its socket; on its loop.
func (f *udpFlow) closeEv() {
	if f.ev.lst == nil {
		return
	}
	if f.ev.timer != nil {
		f.ev.timer.Stop()
	}
	if f.ev.fd >= 0 {
		f.ev.lst.l.Forget(f.ev.fd)
		unix.Close(f.ev.fd)
		f.ev.fd = -1
	}
}

// forgetEv takes f out of its loop's table; on its loop.
func (f *udpFlow) forgetEv() {
	if a := f.ev.lst; a != nil && a.flows[f.client] == f {
		delete(a.flows, f.client)
	}
}

// endEv closes f on its loop.
func (f *udpFlow) endEv(code accesslog.Termination, reason string) {
	if !f.ev.lst.l.Post(func() { f.close(code, reason) }) {
		f.close(code, reason) // the loop is gone: nobody else touches f
	}
}

// onLoops runs fn on each of the service's loops with that loop's
// listener, without waiting.
func (s *udpServer) onLoops(fn func(a *udpListener)) {
	for _, a := range s.ls {
		if !a.l.Post(func() { fn(a) }) {
			fn(a)
		}
	}
}

// expireQuietEv ends the flows quiet for stopQuiet, during a stop: their
// timers were armed for the idle timeout.
func (s *udpServer) expireQuietEv() {
	s.onLoops(func(a *udpListener) {
		for _, f := range a.flows {
			f.expire()
		}
	})
}

// retimeEv makes every flow's timer look again at the idle timeout, which a
// reload shortened.
func (s *udpServer) retimeEv() {
	s.onLoops(func(a *udpListener) {
		for _, f := range a.flows {
			if f.ev.timer != nil {
				f.ev.timer.Reset(0)
			}
		}
	})
}
