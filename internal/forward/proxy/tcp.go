package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/sched"
)

type tcpServer struct {
	p       *Proxy
	vs      *director.VirtualService
	want    atomic.Pointer[wanted] // the service as last committed (proxy.go)
	ln      *net.TCPListener
	closed  atomic.Bool
	clients clientCount // connections per client address
}

func (t *tcpServer) close() {
	t.closed.Store(true)
	t.ln.Close()
}

func (t *tcpServer) acceptLoop() {
	defer t.p.loops.Done()
	var backoff time.Duration
	for {
		// A connection takes two descriptors: without them it waits in the
		// listen backlog (HAProxy's maxconn), rather than being accepted
		// into a process that then cannot serve it, its API or its health
		// checks.
		if !t.waitBudget() {
			return
		}
		c, err := t.ln.AcceptTCP()
		if err != nil {
			fds.give(2)
			if t.closed.Load() {
				return
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.p.log.Warn("accept failed", "service", t.want.Load().Name, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		t.p.conns.Add(1)
		go t.serve(c)
	}
}

// waitBudget waits until two descriptors are free; false once the listener
// has closed.
func (t *tcpServer) waitBudget() bool {
	wait := time.Millisecond
	for !fds.takeTCP() {
		if t.closed.Load() {
			return false
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
	if t.closed.Load() {
		fds.give(2)
		return false
	}
	return true
}

// tcpConn is one proxied connection.
type tcpConn struct {
	p        *Proxy
	srv      *tcpServer
	counted  bool // in srv.clients
	vs       *director.VirtualService
	rs       *director.RealServer
	binding  director.Binding
	bound    time.Time // when the real server was bound: signals count from here
	gotFirst bool      // a first byte came from the real server (downstream goroutine only)
	st       *wanted
	client   *net.TCPConn
	backend  *net.TCPConn
	clientAP netip.AddrPort
	start    time.Time     // accepted
	connect  time.Duration // accept to connected, retries included

	last atomic.Int64 // nanoseconds since start of the last byte moved
	// When the client's last bytes were read, and when the real server's
	// last bytes were written to the client (nanoseconds since start):
	// read before written, and written after the answer exists, so that
	// upReadAt > downAt means an answer is owed, whatever the goroutines'
	// scheduling.
	upReadAt  atomic.Int64
	downAt    atomic.Int64
	halfDone  atomic.Bool  // one direction has finished: IPVS counts it inactive
	firstFin  atomic.Int32 // which side sent the first FIN: finClient or finServer
	finished  atomic.Int32 // directions finished; the second one cleans up
	aborted   atomic.Bool
	abortOnce sync.Once
	reason    string                // why it was aborted; written once in abort
	code      accesslog.Termination // how it ended, if abort knew; written once in abort
	idle      *time.Timer
	stopCtx   func() bool
	in, out   atomic.Int64 // bytes each way, for listing and the access log
	inErr     error
	outErr    error
}

// TCP keepalive stays off on both sides, as HAProxy's defaults: it costs
// several setsockopt calls per connection, and the idle timeout already
// ends connections whose peer has gone.
var (
	dialer       = net.Dialer{KeepAlive: -1}
	listenConfig = net.ListenConfig{KeepAlive: -1, Control: freebind}
)

func (t *tcpServer) serve(client *net.TCPConn) {
	accepted := time.Now()
	vs := t.vs
	st := t.want.Load()
	clientAP := client.RemoteAddr().(*net.TCPAddr).AddrPort()
	clientAP = netip.AddrPortFrom(clientAP.Addr().Unmap(), clientAP.Port())
	// Clients are counted only where a limit is set: the count costs a
	// lock per connection.
	limit := st.MaxPerClient
	if limit > 0 && !t.clients.add(clientAP.Addr(), limit) {
		vs.Stats.ClientLimited.Add(1)
		t.p.log.Warn("client at its connection limit, connection refused", "service", st.Name,
			"client", clientAP.Addr().String(), "max_connections_per_client", limit)
		client.SetLinger(0)
		client.Close()
		fds.give(2)
		t.p.conns.Done()
		t.p.refused(st, accepted, clientAP, netip.AddrPort{}, accesslog.Termination{accesslog.ByProxy, accesslog.InConnect})
		return
	}
	b, backend, bound, failed := t.connect(st, clientAP)
	rs := b.RealServer
	if backend == nil {
		t.p.refused(st, accepted, clientAP, failed.rs, failed.code)
		vs.Stats.Refused.Add(1)
		t.p.log.Warn("no real server could take the connection", "service", st.Name, "client", clientAP.String())
		client.SetLinger(0)
		client.Close()
		if limit > 0 {
			t.clients.remove(clientAP.Addr())
		}
		fds.give(2)
		t.p.conns.Done()
		return
	}
	rs.Dest.Activate()
	rs.Stats.Conns.Add(1)
	vs.Stats.Conns.Add(1)
	c := &tcpConn{p: t.p, srv: t, counted: limit > 0, vs: vs, rs: rs, binding: b, bound: bound, st: st, client: client, backend: backend, clientAP: clientAP, start: accepted}
	c.connect = time.Since(accepted)
	if pp := st.sendProxy[rs.Addr]; pp != desired.ProxyNone {
		vip := client.LocalAddr().(*net.TCPAddr).AddrPort()
		var buf [64]byte
		if _, err := backend.Write(appendProxyHeader(buf[:0], pp, clientAP, vip)); err != nil {
			c.abort(accesslog.Termination{accesslog.ByServer, accesslog.InData}, "proxy header: "+err.Error())
		}
	}
	t.p.tcp.add(c)
	// The real server's context ends when an operator removed it (govsadm
	// -d, a reload) and its grace period is over, or when a stop's grace
	// period is over or a second signal came: killed, in either case.
	c.stopCtx = context.AfterFunc(rs.Context(), func() { c.abort(c.phase(accesslog.ByKilled), "grace period over") })
	if st.IdleTimeout > 0 {
		c.idle = time.AfterFunc(st.IdleTimeout, c.checkIdle)
	}
	// Both directions run on fresh goroutines and this one ends: its stack
	// grew while dialing, and an idle connection should not keep it.
	go c.pipe(true)
	go c.pipe(false)
}

// connectFailure is why no real server took a connection: the last one
// tried, and the termination code.
type connectFailure struct {
	rs   netip.AddrPort
	code accesslog.Termination
}

// connect schedules a real server and connects to it. A refused or timed out
// connect is retried on another real server, up to the service's retries, so
// the client never sees a real server that just failed.
func (t *tcpServer) connect(st *wanted, client netip.AddrPort) (director.Binding, *net.TCPConn, time.Time, connectFailure) {
	var buf [8]*director.RealServer
	tried := buf[:0]
	// No real server at all is the server side refusing (HAProxy's SC
	// with no server); one at its max_connections, govs's limit.
	failed := connectFailure{code: accesslog.Termination{accesslog.ByServer, accesslog.InConnect}}
	for attempt := 0; attempt <= st.Retries; attempt++ {
		b := t.vs.Schedule(client, tried)
		rs := b.RealServer
		if rs == nil {
			if len(tried) == 0 {
				failed = t.overloaded(failed)
			}
			return b, nil, time.Time{}, failed
		}
		tried = append(tried, rs)
		if !rs.Dest.Bind() {
			t.vs.Release(b)
			failed = connectFailure{rs.Addr, accesslog.Termination{accesslog.ByProxy, accesslog.InConnect}}
			continue // at its connection limit
		}
		bound := time.Now()
		ctx, cancel := context.WithTimeout(rs.Context(), st.ConnectTimeout)
		c, err := dialer.DialContext(ctx, "tcp", rs.Addr.String())
		cancel()
		// Adaptive schedulers learn from connect times, a failed connect's
		// included (as the time it wasted).
		t.vs.Observe(rs, sched.Signal{Kind: sched.ConnectTime, Latency: time.Since(bound)})
		if err == nil {
			return b, c.(*net.TCPConn), bound, connectFailure{}
		}
		failed = connectFailure{rs.Addr, connectCode(err)}
		t.vs.Release(b)
		rs.Dest.Unbind(false)
		rs.Stats.ConnectErrors.Add(1)
		t.vs.Stats.ConnectErrors.Add(1)
		t.vs.ConnectFailed(rs, err) // passive health: out of scheduling until its checks pass
		t.p.log.Debug("connect to real server failed", "service", st.Name, "backend", rs.Addr.String(), "err", err, "attempt", attempt+1)
	}
	return director.Binding{}, nil, time.Time{}, failed
}

// overloaded is the refusal's code when no real server could be scheduled:
// PC (govs's limit) if one is at its max_connections or upper threshold,
// else failed as it is.
func (t *tcpServer) overloaded(failed connectFailure) connectFailure {
	return overloadedCode(t.vs, failed)
}

func overloadedCode(vs *director.VirtualService, failed connectFailure) connectFailure {
	for _, rs := range vs.RealServers() {
		if rs.Dest.Overloaded() && rs.Dest.Weight() > 0 {
			return connectFailure{rs.Addr, accesslog.Termination{accesslog.ByProxy, accesslog.InConnect}}
		}
	}
	return failed
}

// connectCode is the termination of a failed connect: a timeout is the
// server's (sC), no local port or descriptor govs's resources (RC), a
// connect cut by the real server's removal or a stop killed (KC), the rest
// a refusal (SC).
func connectCode(err error) accesslog.Termination {
	switch {
	case errors.Is(err, context.Canceled):
		// The real server's context: removed by an operator, or a stop.
		return accesslog.Termination{accesslog.ByKilled, accesslog.InConnect}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return accesslog.Termination{accesslog.ByServerTimeout, accesslog.InConnect}
	case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM):
		return accesslog.Termination{accesslog.ByResource, accesslog.InConnect}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return accesslog.Termination{accesslog.ByServerTimeout, accesslog.InConnect}
	}
	return accesslog.Termination{accesslog.ByServer, accesslog.InConnect}
}

// pipe moves one direction: upstream is client to real server.
func (c *tcpConn) pipe(upstream bool) {
	src, dst := c.backend, c.client
	if upstream {
		src, dst = c.client, c.backend
	}
	read := func() {}
	if upstream {
		read = func() { c.upReadAt.Store(int64(time.Since(c.start))) }
	}
	_, err := copyStream(dst, src, read, func(n int) { c.count(upstream, n) })
	if upstream {
		c.inErr = err
	} else {
		c.outErr = err
	}
	if err == nil {
		// The source sent FIN: pass it on and keep the other direction open.
		dst.CloseWrite()
		if c.halfDone.CompareAndSwap(false, true) {
			c.rs.Dest.Deactivate()
			fin := int32(finServer)
			if upstream {
				fin = finClient
			}
			c.firstFin.Store(fin)
			// Half-closed: from now on the shorter tcpfin timeout applies
			// (IPVS's FIN_WAIT), so a peer that never closes its side does
			// not hold two descriptors for the whole idle timeout.
			if c.idle != nil {
				c.last.Store(int64(time.Since(c.start)))
				c.idle.Reset(c.timeout())
			}
		}
	} else {
		// Who failed: the source on a read error, the destination on a
		// write error (dstError). A closed socket is our own abort from
		// the other direction, whose code is already set.
		by := byte(accesslog.ByServer)
		if upstream != isDstError(err) {
			by = accesslog.ByClient
		}
		c.abort(c.phase(by), "")
	}
	if c.finished.Add(1) == 2 {
		c.finish()
	}
}

func (c *tcpConn) count(upstream bool, n int) {
	if upstream {
		c.in.Add(int64(n))
		c.rs.Stats.InBytes.Add(uint64(n))
		c.vs.Stats.InBytes.Add(uint64(n))
	} else {
		c.out.Add(int64(n))
		c.rs.Stats.OutBytes.Add(uint64(n))
		c.vs.Stats.OutBytes.Add(uint64(n))
		if !c.gotFirst {
			// Time to first byte: the real server's latency as a
			// request/response client sees it.
			c.gotFirst = true
			c.vs.Observe(c.rs, sched.Signal{Kind: sched.FirstByte, Latency: time.Since(c.bound)})
		}
	}
	now := int64(time.Since(c.start))
	if !upstream {
		c.downAt.Store(now)
	}
	c.last.Store(now)
}

// timeout is the inactivity timeout in force: idle_timeout, or
// tcpfin_timeout once one side has half-closed.
func (c *tcpConn) timeout() time.Duration {
	return c.st.inactivity(c.halfDone.Load())
}

func (c *tcpConn) checkIdle() {
	idleFor := time.Since(c.start) - time.Duration(c.last.Load())
	timeout := c.timeout()
	if idleFor >= timeout {
		if c.halfDone.Load() && timeout != c.st.IdleTimeout {
			// tcpfin_timeout: the side that has not closed is late.
			by := byte(accesslog.ByServerTimeout)
			if c.firstFin.Load() == finServer {
				by = accesslog.ByClientTimeout
			}
			c.abort(accesslog.Termination{by, accesslog.InClosing}, "half-closed timeout")
		} else {
			// Idle: the server's timeout if the client waits for an
			// answer, the client's otherwise.
			by := byte(accesslog.ByClientTimeout)
			if c.upReadAt.Load() > c.downAt.Load() {
				by = accesslog.ByServerTimeout
			}
			c.abort(c.phase(by), "idle timeout")
		}
		return
	}
	c.idle.Reset(timeout - idleFor)
}

// quiet reports whether a stop may close c now: nothing moved for d, and
// the last bytes went to the client (or none moved at all), so no answer
// is owed to the client: an idle keep-alive or pooled connection, not a
// request waiting for its response. Half-closed connections are left to
// end or to tcpfin_timeout.
func (c *tcpConn) quiet(d time.Duration) bool {
	if c.halfDone.Load() || c.upReadAt.Load() > c.downAt.Load() {
		return false
	}
	return time.Since(c.start)-time.Duration(c.last.Load()) >= d
}

// closeQuiet ends c with a FIN to both sides, not a reset: to an HTTP
// client this is a server closing an idle keep-alive connection, which it
// handles by connecting again.
func (c *tcpConn) closeQuiet() {
	c.abortOnce.Do(func() {
		c.reason = "closed idle at stop"
		c.code = accesslog.Termination{accesslog.ByProxy, accesslog.InData}
		c.aborted.Store(true)
		c.client.Close()
		c.backend.Close()
	})
}

// abort resets both sides: a reset on one side is passed to the other, and
// a connection closed by govs (idle, grace over) is not left half open.
func (c *tcpConn) abort(code accesslog.Termination, reason string) {
	c.abortOnce.Do(func() {
		c.reason = reason
		c.code = code
		c.aborted.Store(true)
		c.client.SetLinger(0)
		c.backend.SetLinger(0)
		c.client.Close()
		c.backend.Close()
	})
}

func (c *tcpConn) finish() {
	if c.idle != nil {
		c.idle.Stop()
	}
	c.stopCtx()
	c.abortOnce.Do(func() {
		c.client.Close()
		c.backend.Close()
	})
	c.rs.Dest.Unbind(!c.halfDone.Load())
	c.vs.Release(c.binding)
	c.vs.Observe(c.rs, sched.Signal{Kind: sched.Duration, Latency: time.Since(c.bound)})
	c.p.ended(c.st, c.start, c.clientAP, c.rs.Addr, c.connect, c.in.Load(), c.out.Load(), c.code, c.reason, c.inErr, c.outErr)
	c.p.tcp.remove(c)
	if c.counted {
		c.srv.clients.remove(c.clientAP.Addr())
	}
	fds.give(2)
	c.p.conns.Done()
}

// ended counts and logs a proxied connection's end: the access-log record,
// or a log line when the service logs connections and no access log is
// configured.
func (p *Proxy) ended(st *wanted, start time.Time, client, rs netip.AddrPort, connect time.Duration,
	in, out int64, code accesslog.Termination, reason string, inErr, outErr error) {
	if code[0] == 0 {
		code = accesslog.Normal
	}
	dur := time.Since(start)
	r := accesslog.Record{Time: start, Service: st.Name, Client: client, RealServer: rs,
		ConnectMs: ms(connect), DurationMs: ms(dur), BytesIn: uint64(in), BytesOut: uint64(out),
		Termination: code}
	if !accesslog.Emit(&r, st.AccessLog) && st.AccessLog {
		end := "closed"
		switch {
		case reason != "":
			end = reason
		case inErr != nil || outErr != nil:
			end = "reset: " + errors.Join(inErr, outErr).Error()
		}
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "connection",
			slog.String("service", st.Name), slog.String("client", client.String()),
			slog.String("backend", rs.String()), slog.Int64("bytes_in", in),
			slog.Int64("bytes_out", out), slog.Duration("duration", dur),
			slog.String("end", end), slog.String("termination", code.String()))
	}
}

// phase is the code for a connection ended by by: in data, or closing once
// one side has half-closed.
func (c *tcpConn) phase(by byte) accesslog.Termination {
	if c.halfDone.Load() {
		return accesslog.Termination{by, accesslog.InClosing}
	}
	return accesslog.Termination{by, accesslog.InData}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// refused records a connection that no real server took: counted, and
// logged when the service logs connections.
func (p *Proxy) refused(st *wanted, accepted time.Time, client, rs netip.AddrPort, code accesslog.Termination) {
	r := accesslog.Record{Time: accepted, Service: st.Name, Client: client, RealServer: rs, ConnectMs: -1,
		DurationMs: ms(time.Since(accepted)), Termination: code}
	if !accesslog.Emit(&r, st.AccessLog) && st.AccessLog {
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "connection",
			slog.String("service", st.Name), slog.String("client", client.String()),
			slog.String("backend", addrString(rs)), slog.Duration("duration", time.Since(accepted)),
			slog.String("end", "refused"), slog.String("termination", code.String()))
	}
}

func addrString(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return ap.String()
}

// take implements server.
func (t *tcpServer) take(want *desired.Service) {
	t.want.Store(newWanted(want, t.want.Load()))
}
