package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward/proxy/loop"
	"github.com/govs-lb/govs/internal/sched"
)

// eventLoopSupported: Linux has epoll.
const eventLoopSupported = true

// baseProcs is GOMAXPROCS without the Ps that running loops hold.
func baseProcs() int { return loop.Procs() }

// evLoops are the proxy's event loops, one per core it may use: every TCP
// virtual service has one SO_REUSEPORT listener in each, and a connection
// lives on one loop, both its sockets with it: the loop that accepted it,
// or the one with fewer connections it was handed to (evServer.pick).
type evLoops struct {
	loops []*loop.Loop
	state []*evLoopState // by loop, as loops
}

// evLoopState is what the proxy keeps per loop, touched by that loop's
// goroutine only.
type evLoopState struct {
	l *loop.Loop
	// watches: the loop's connections by real server, each list ended
	// together when its real server's context ends (removed and its
	// grace period over, or a stop's): one context.AfterFunc per real
	// server and loop, not one per connection (its allocations, the
	// context's lock and map insert and delete on every connection).
	watches map[*director.RealServer]*rsWatch
	// early counts the connects confirmed by the write of the client's
	// first bytes (sendEarly), for tests.
	early int
	// conns counts the TCP connections living on this loop, from their
	// accept (or their hand-off to it) to their end: the other loops read
	// it to choose where a connection they accept lives (evServer.pick).
	conns atomic.Int64
}

// ended gives back what a connection held on its loop: its two descriptors,
// its place in the proxy's drain count and in the loop's.
func (ls *evLoopState) ended(p *Proxy) {
	fds.give(2)
	p.conns.Done()
	ls.conns.Add(-1)
}

// rsWatch is one real server's connections on one loop: a list through
// the connections themselves (evConn.wprev, wnext).
type rsWatch struct {
	head *evConn
}

func newEvLoops(n int) (*evLoops, error) {
	e := &evLoops{}
	for range n {
		l, err := loop.New()
		if err != nil {
			e.stop()
			return nil, err
		}
		e.loops = append(e.loops, l)
		e.state = append(e.state, &evLoopState{l: l, watches: map[*director.RealServer]*rsWatch{}})
		go l.Run()
	}
	return e, nil
}

func (e *evLoops) stop() {
	for _, l := range e.loops {
		l.Stop()
	}
	e.loops, e.state = nil, nil
}

// evServer is a TCP virtual service served by the event loops.
type evServer struct {
	p       *Proxy
	vs      *director.VirtualService
	want    atomic.Pointer[wanted] // the service as last committed (proxy.go)
	ls      []*evListener
	closed  atomic.Bool
	clients clientCount
}

// evListener is one of a service's listeners, on one loop.
type evListener struct {
	s       *evServer
	l       *loop.Loop
	ls      *evLoopState
	fd      int // -1 once closed
	retry   *loop.Timer
	backoff time.Duration
}

func (p *Proxy) listenEv(vs *director.VirtualService, want *desired.Service) (server, error) {
	fds, err := p.bindOnLoops(vs, "tcp", listenReusePort)
	if err != nil {
		return nil, err
	}
	s := &evServer{p: p, vs: vs}
	s.take(want)
	for i, l := range p.ev.loops {
		a := &evListener{s: s, l: l, ls: p.ev.state[i], fd: fds[i]}
		s.ls = append(s.ls, a)
	}
	for _, a := range s.ls {
		done := make(chan error, 1)
		if !a.l.Post(func() { done <- a.l.Register(a.fd, a) }) {
			done <- errors.New("event loop stopped")
		}
		if err := <-done; err != nil {
			s.close()
			return nil, fmt.Errorf("virtual service %s: %w", vs.Key, err)
		}
	}
	return s, nil
}

// close stops accepting: each loop closes its listener (connections waiting
// in its backlog are reset, as when one listener closes). It returns once
// the listeners are closed, so that the address is free again.
func (s *evServer) close() {
	s.closed.Store(true)
	for _, a := range s.ls {
		done := make(chan struct{})
		if !a.l.Post(func() { a.close(); close(done) }) {
			a.close()
			close(done)
		}
		<-done
	}
}

func (a *evListener) close() {
	if a.retry != nil {
		a.retry.Stop()
	}
	if a.fd >= 0 {
		a.l.Forget(a.fd)
		rawClose(a.fd)
		a.fd = -1
	}
}

// Event: connections are waiting. Accept them all (edge-triggered: until
// EAGAIN), within the descriptor budget.
func (a *evListener) Event(int, uint32) { a.accept() }

func (a *evListener) accept() {
	for a.fd >= 0 {
		// Two descriptors per connection: without them the connection
		// waits in the backlog (as tcp.go's acceptLoop).
		if !fds.takeTCP() {
			a.retryIn(min(max(2*a.backoff, time.Millisecond), 100*time.Millisecond))
			return
		}
		nfd, client, err := rawAccept(a.fd)
		if err != nil {
			fds.give(2)
			switch err {
			case unix.EAGAIN:
				a.backoff = 0
				return
			case unix.EINTR, unix.ECONNABORTED:
				continue
			}
			// Out of descriptors and the like: wait and go on.
			a.backoff = min(max(2*a.backoff, 5*time.Millisecond), time.Second)
			a.s.p.log.Warn("accept failed", "service", a.s.want.Load().Name, "err", err, "retry_in", a.backoff)
			a.retryIn(a.backoff)
			return
		}
		a.backoff = 0
		a.s.p.conns.Add(1)
		to := a.s.pick(a.ls)
		if to != a.ls {
			s := a.s
			if to.l.Post(func() { s.serve(to, nfd, client) }) {
				continue
			}
			// That loop is stopping: the connection stays here.
			to.conns.Add(-1)
			a.ls.conns.Add(1)
			to = a.ls
		}
		a.s.serve(to, nfd, client)
	}
}

// pick chooses the loop where a connection accepted on ls lives and counts
// it there: ls, unless another loop has fewer connections (the first of the
// fewest). The kernel spreads connections over the listeners by a hash of
// their addresses, so that a few long-lived ones (keep-alive clients, a
// pool) are split unevenly: 28 and 22 of 50 is common, and the loop with
// more makes its clients wait longer, which shows in the p99 (HAProxy
// hands each accepted connection to its least loaded thread for that).
// The counts are read without a lock: two loops that accept at once may
// both pick a third, which the next accepts even out.
func (s *evServer) pick(ls *evLoopState) *evLoopState {
	best, n := ls, ls.conns.Load()
	for _, a := range s.ls {
		if m := a.ls.conns.Load(); m < n {
			best, n = a.ls, m
		}
	}
	best.conns.Add(1)
	return best
}

func (a *evListener) retryIn(d time.Duration) {
	a.backoff = d
	if a.retry == nil {
		a.retry = a.l.AfterFunc(int64(d), a.accept)
		return
	}
	a.retry.Reset(int64(d))
}

// serve takes an accepted connection: the per-client limit, then a connect
// to a real server, all on the loop.
func (s *evServer) serve(ls *evLoopState, cfd int, clientAP netip.AddrPort) {
	l := ls.l
	accepted := time.Now()
	vs := s.vs
	st := s.want.Load()
	limit := st.MaxPerClient
	if limit > 0 && !s.clients.add(clientAP.Addr(), limit) {
		vs.Stats.ClientLimited.Add(1)
		s.p.log.Warn("client at its connection limit, connection refused", "service", st.Name,
			"client", clientAP.Addr().String(), "max_connections_per_client", limit)
		resetClose(cfd)
		ls.ended(s.p)
		s.p.refused(st, accepted, clientAP, netip.AddrPort{}, accesslog.Termination{accesslog.ByProxy, accesslog.InConnect})
		return
	}
	c := &evConn{l: l, ls: ls, p: s.p, srv: s, vs: vs, st: st, counted: limit > 0, clientAP: clientAP,
		start: accepted, startNs: loop.Clock(), cfd: cfd, bfd: -1}
	c.tried = c.triedBuf[:0]
	c.timer.Init(l, c)
	c.failed = connectFailure{code: accesslog.Termination{accesslog.ByServer, accesslog.InConnect}}
	if err := l.Register(cfd, c); err != nil {
		c.failed = connectFailure{code: accesslog.Termination{accesslog.ByResource, accesslog.InConnect}}
		c.refuse()
		return
	}
	if !c.earlyRead() {
		return
	}
	c.connectNext()
}

// earlyRead reads what the client sent with its connection before the
// connect to a real server, as HAProxy does: most clients speak first
// (HTTP, TLS) and their first bytes are usually in by the time the
// connection is accepted. Held, they go out right after the connect
// (sendEarly), and that write tells whether the connect has completed,
// without a round of the loop for the socket's first event. Nothing there
// yet costs one read, whose EAGAIN clears the flag until the client's
// bytes raise an edge (cfd was registered before the read: no edge is
// lost). A client that reset its connection already is let go without a
// connect (false).
func (c *evConn) earlyRead() bool {
	c.cs.readable = true
	c.fill(&c.up, &c.cs, c.cfd, true)
	if c.inErr == nil {
		return true
	}
	c.l.Forget(c.cfd)
	rawClose(c.cfd)
	c.cfd = -1
	c.state = closed
	c.stopTimer()
	c.p.refused(c.st, c.start, c.clientAP, netip.AddrPort{}, accesslog.Termination{accesslog.ByClient, accesslog.InConnect})
	if c.counted {
		c.srv.clients.remove(c.clientAP.Addr())
	}
	c.ls.ended(c.p)
	return false
}

// sendEarly writes the client's bytes read by earlyRead as soon as the
// connect has started: a write that goes through means the real server
// took the connection (on loopback and on a fast network the handshake
// is done by now); EAGAIN that it is still in progress (its event will
// come, as without the bytes); an error that it failed, and the next real
// server is tried with the same bytes. Not with a PROXY header to send
// first (connected writes it).
func (c *evConn) sendEarly() {
	d := &c.up
	if d.pending() == 0 || d.p != nil || c.st.sendProxy[c.rs.Addr] != desired.ProxyNone {
		return
	}
	n, err := rawSend(c.bfd, (*d.buf)[d.off:d.n])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil:
		c.connectFailed(os.NewSyscallError("connect", err))
		c.connectNext()
		return
	}
	d.off += n
	c.ls.early++
	c.count(true, n)
	if d.pending() == 0 {
		copyBufPool.Put(d.buf) // an idle connection holds no buffer
		d.buf = nil
	}
	c.connected(unix.EPOLLOUT)
}

// connectNext schedules a real server and starts a non-blocking connect to
// it; a real server at its limit or whose connect fails at once is passed
// over for another, up to the service's retries, as tcp.go's connect.
func (c *evConn) connectNext() {
	vs, st := c.vs, c.st
	for c.attempts <= st.Retries {
		c.attempts++
		b := vs.Schedule(c.clientAP, c.tried)
		rs := b.RealServer
		if rs == nil {
			if len(c.tried) == 0 {
				c.failed = c.srv.overloaded(c.failed)
			}
			break
		}
		c.tried = append(c.tried, rs)
		if !rs.Dest.Bind() {
			vs.Release(b)
			c.failed = connectFailure{rs.Addr, accesslog.Termination{accesslog.ByProxy, accesslog.InConnect}}
			continue
		}
		c.rs, c.binding = rs, b
		c.boundNs = loop.Clock()
		if err := rs.Context().Err(); err != nil {
			c.connectFailed(err)
			continue
		}
		fd, err := dialNonblock(rs.Addr)
		if err == nil {
			c.bfd = fd
			if err = c.l.Register(fd, c); err != nil {
				rawClose(fd)
				c.bfd = -1
			}
		}
		if err != nil {
			c.connectFailed(err)
			continue
		}
		c.state = connecting
		if st.ConnectTimeout > 0 {
			c.armTimer(int64(st.ConnectTimeout))
		}
		c.watch(rs)
		c.sendEarly()
		return
	}
	c.refuse()
}

// watch ends the connection (or its connect) when rs's context ends: an
// operator removed it and its grace period is over, or a stop's is. The
// loop watches each real server's context once (rsWatch).
func (c *evConn) watch(rs *director.RealServer) {
	c.unwatch()
	ls := c.ls
	w := ls.watches[rs]
	if w == nil {
		w = &rsWatch{}
		ls.watches[rs] = w
		l := ls.l
		// Never stopped: the entry lives as long as its real server's
		// context, which ends when the real server goes (after its grace
		// period) or the proxy stops; a context already ended calls this
		// at once.
		context.AfterFunc(rs.Context(), func() { l.Post(func() { ls.killAll(rs, w) }) })
	}
	c.watching = w
	c.wnext = w.head
	if w.head != nil {
		w.head.wprev = c
	}
	w.head = c
}

// unwatch takes c off its real server's list.
func (c *evConn) unwatch() {
	w := c.watching
	if w == nil {
		return
	}
	if c.wprev != nil {
		c.wprev.wnext = c.wnext
	} else {
		w.head = c.wnext
	}
	if c.wnext != nil {
		c.wnext.wprev = c.wprev
	}
	c.watching, c.wprev, c.wnext = nil, nil, nil
}

// killAll ends the connections of the loop to rs, whose context has ended.
func (ls *evLoopState) killAll(rs *director.RealServer, w *rsWatch) {
	if ls.watches[rs] == w {
		delete(ls.watches, rs)
	}
	for w.head != nil {
		c := w.head
		c.unwatch()
		c.killed(rs)
	}
}

func (c *evConn) killed(rs *director.RealServer) {
	if c.rs != rs {
		return
	}
	switch c.state {
	case connecting:
		c.connectFailed(context.Canceled)
		c.connectNext()
	case established:
		c.abort(c.phase(accesslog.ByKilled), "grace period over")
	}
}

// connectFailed accounts a failed connect to c.rs (the adaptive schedulers'
// signal, passive health) and closes its socket.
func (c *evConn) connectFailed(err error) {
	rs := c.rs
	c.unwatch()
	c.vs.Observe(rs, sched.Signal{Kind: sched.ConnectTime, Latency: time.Duration(loop.Clock() - c.boundNs)})
	if c.bfd >= 0 {
		c.l.Forget(c.bfd)
		rawClose(c.bfd)
		c.bfd = -1
	}
	c.stopTimer()
	c.state = idle
	c.failed = connectFailure{rs.Addr, connectCode(err)}
	c.vs.Release(c.binding)
	rs.Dest.Unbind(false)
	rs.Stats.ConnectErrors.Add(1)
	c.vs.Stats.ConnectErrors.Add(1)
	c.vs.ConnectFailed(rs, err)
	c.p.log.Debug("connect to real server failed", "service", c.st.Name, "backend", rs.Addr.String(), "err", err, "attempt", c.attempts)
	c.rs, c.binding = nil, director.Binding{}
}

// connectDone handles the backend socket's first event while connecting.
func (c *evConn) connectDone(ev uint32) {
	if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		err := error(unix.ECONNREFUSED)
		if v, gerr := rawGetsockoptInt(c.bfd, unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && v != 0 {
			err = syscall.Errno(v)
		}
		c.connectFailed(os.NewSyscallError("connect", err))
		c.connectNext()
		return
	}
	if ev&unix.EPOLLOUT == 0 {
		return
	}
	c.connected(ev)
}

// refuse ends a connection no real server took: reset, counted, logged.
func (c *evConn) refuse() {
	c.unwatch()
	c.stopTimer()
	st := c.st
	c.p.refused(st, c.start, c.clientAP, c.failed.rs, c.failed.code)
	c.vs.Stats.Refused.Add(1)
	c.p.log.Warn("no real server could take the connection", "service", st.Name, "client", c.clientAP.String())
	c.l.Forget(c.cfd)
	resetClose(c.cfd)
	c.cfd = -1
	c.up.release() // the client's bytes read before the connect
	c.state = closed
	if c.counted {
		c.srv.clients.remove(c.clientAP.Addr())
	}
	c.ls.ended(c.p)
}

// overloaded is tcpServer.overloaded for the loop's servers.
func (s *evServer) overloaded(failed connectFailure) connectFailure {
	return overloadedCode(s.vs, failed)
}

// dialNonblock starts a connect to ap: socket, TCP_NODELAY (as Go's
// dialer), connect. EINPROGRESS is the normal outcome; the loop reports
// the result.
func dialNonblock(ap netip.AddrPort) (int, error) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	fam := unix.AF_INET6
	if ap.Addr().Is4() {
		fam = unix.AF_INET
	}
	fd, err := rawSocket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	err = rawConnect(fd, ap)
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		rawClose(fd)
		return -1, os.NewSyscallError("connect", err)
	}
	return fd, nil
}

// resetClose closes fd with a reset (SO_LINGER 0), as a refusal does.
func resetClose(fd int) {
	rawLinger0(fd)
	rawClose(fd)
}

// sockAddr is sockaddrAddrPort's address, the zero AddrPort if none.
func sockAddr(sa unix.Sockaddr) netip.AddrPort {
	ap, _ := sockaddrAddrPort(sa)
	return ap
}

func addrPortSockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// bindOnLoops starts the loops with the first service, TCP or UDP, and
// binds one reuseport socket of vs's address per loop with bind.
func (p *Proxy) bindOnLoops(vs *director.VirtualService, proto string, bind func(netip.AddrPort, int) ([]int, error)) ([]int, error) {
	if p.ev == nil {
		e, err := newEvLoops(p.nloops)
		if err != nil {
			return nil, fmt.Errorf("virtual service %s: %w", vs.Key, err)
		}
		p.ev = e
	}
	fds, err := bind(vs.Address, len(p.ev.loops))
	if err != nil {
		return nil, fmt.Errorf("virtual service %s: listen %s %s: %w", vs.Key, proto, vs.Address, err)
	}
	return fds, nil
}

// listenReusePort binds n listeners to ap with SO_REUSEPORT, so that the
// kernel spreads new connections over the loops. A first bind without
// SO_REUSEPORT checks that nobody else holds the address (another govs
// would otherwise join the group and take half the connections). A
// wildcard address is dual-stack, as Go's listeners are.
func listenReusePort(ap netip.AddrPort, n int) ([]int, error) {
	return bindReusePort(ap, n, unix.SOCK_STREAM, listenSocket, func(fd int) error {
		return os.NewSyscallError("listen", unix.Listen(fd, listenBacklog()))
	})
}

// bindReusePort binds n sockets of sotype, each made by open, to ap with
// SO_REUSEPORT after a probe bind without it; ready (nil: none) finishes
// each. A wildcard address is dual-stack where the kernel has IPv6.
func bindReusePort(ap netip.AddrPort, n, sotype int, open func(fam int, dual bool, addr netip.AddrPort, reuseport bool) (int, error), ready func(fd int) error) ([]int, error) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	fam, dual := unix.AF_INET, false
	switch {
	case ap.Addr().IsUnspecified():
		fam, dual = unix.AF_INET6, true
		if fd, err := unix.Socket(unix.AF_INET6, sotype|unix.SOCK_CLOEXEC, 0); err != nil {
			fam, dual = unix.AF_INET, false // no IPv6 here
			ap = netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port())
		} else {
			unix.Close(fd)
		}
	case ap.Addr().Is6():
		fam = unix.AF_INET6
	}
	addr := ap
	if dual {
		addr = netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
	}
	if ap.Port() != 0 {
		probe, err := open(fam, dual, addr, false)
		if err != nil {
			return nil, err
		}
		unix.Close(probe)
	}
	var out []int
	closeAll := func() {
		for _, f := range out {
			unix.Close(f)
		}
	}
	for range n {
		fd, err := open(fam, dual, addr, true)
		if err != nil {
			closeAll()
			return nil, err
		}
		if addr.Port() == 0 { // the others join the port the first got
			if sa, err := unix.Getsockname(fd); err == nil {
				addr = netip.AddrPortFrom(addr.Addr(), sockAddr(sa).Port())
			}
		}
		if ready != nil {
			if err := ready(fd); err != nil {
				unix.Close(fd)
				closeAll()
				return nil, err
			}
		}
		out = append(out, fd)
	}
	return out, nil
}

// listenSocket creates a socket bound to addr: SO_REUSEADDR as Go's
// listeners, IP_FREEBIND (freebind_linux.go's reason), TCP_NODELAY for the
// connections it accepts to inherit, and SO_REUSEPORT when reuseport.
func listenSocket(fam int, dual bool, addr netip.AddrPort, reuseport bool) (int, error) {
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if reuseport {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
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

// listenBacklog is the kernel's somaxconn, as Go's listeners use.
func listenBacklog() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 4096
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 4096
	}
	return min(n, 65535)
}

// take implements server.
func (s *evServer) take(want *desired.Service) {
	s.want.Store(newWanted(want, s.want.Load()))
}
