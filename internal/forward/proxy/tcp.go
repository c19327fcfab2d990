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

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/sched"
)

type tcpServer struct {
	p      *Proxy
	vs     *director.VirtualService
	ln     *net.TCPListener
	closed atomic.Bool
}

func (t *tcpServer) close() {
	t.closed.Store(true)
	t.ln.Close()
}

func (t *tcpServer) acceptLoop() {
	defer t.p.loops.Done()
	var backoff time.Duration
	for {
		c, err := t.ln.AcceptTCP()
		if err != nil {
			if t.closed.Load() {
				return
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.p.log.Warn("accept failed", "service", t.vs.Settings().Name, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		t.p.conns.Add(1)
		go t.serve(c)
	}
}

// tcpConn is one proxied connection.
type tcpConn struct {
	p        *Proxy
	vs       *director.VirtualService
	rs       *director.RealServer
	binding  director.Binding
	bound    time.Time // when the real server was bound: signals count from here
	gotFirst bool      // a first byte came from the real server (downstream goroutine only)
	st       *director.Settings
	client   *net.TCPConn
	backend  *net.TCPConn
	clientAP netip.AddrPort
	start    time.Time

	last      atomic.Int64 // nanoseconds since start of the last byte moved
	halfDone  atomic.Bool  // one direction has finished: IPVS counts it inactive
	firstFin  atomic.Int32 // which side sent the first FIN: finClient or finServer
	finished  atomic.Int32 // directions finished; the second one cleans up
	aborted   atomic.Bool
	abortOnce sync.Once
	reason    string // why it was aborted; written once in abort
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
	vs := t.vs
	st := vs.Settings()
	clientAP := client.RemoteAddr().(*net.TCPAddr).AddrPort()
	b, backend, bound := t.connect(st, clientAP)
	rs := b.RealServer
	if backend == nil {
		vs.Stats.Refused.Add(1)
		t.p.log.Warn("no real server could take the connection", "service", st.Name, "client", clientAP.String())
		client.SetLinger(0)
		client.Close()
		t.p.conns.Done()
		return
	}
	rs.Dest.Activate()
	rs.Stats.Conns.Add(1)
	vs.Stats.Conns.Add(1)
	c := &tcpConn{p: t.p, vs: vs, rs: rs, binding: b, bound: bound, st: st, client: client, backend: backend, clientAP: clientAP, start: time.Now()}
	if pp := rs.Config().SendProxy; pp != config.ProxyNone {
		vip := client.LocalAddr().(*net.TCPAddr).AddrPort()
		var buf [64]byte
		if _, err := backend.Write(appendProxyHeader(buf[:0], pp, clientAP, vip)); err != nil {
			c.abort("proxy header: " + err.Error())
		}
	}
	t.p.tcp.add(c)
	c.stopCtx = context.AfterFunc(rs.Context(), func() { c.abort("grace period over") })
	if st.IdleTimeout > 0 {
		c.idle = time.AfterFunc(st.IdleTimeout, c.checkIdle)
	}
	// Both directions run on fresh goroutines and this one ends: its stack
	// grew while dialing, and an idle connection should not keep it.
	go c.pipe(true)
	go c.pipe(false)
}

// connect schedules a real server and connects to it. A refused or timed out
// connect is retried on another real server, up to the service's retries, so
// the client never sees a real server that just failed.
func (t *tcpServer) connect(st *director.Settings, client netip.AddrPort) (director.Binding, *net.TCPConn, time.Time) {
	var buf [8]*director.RealServer
	tried := buf[:0]
	for attempt := 0; attempt <= st.Retries; attempt++ {
		b := t.vs.Schedule(client, tried)
		rs := b.RealServer
		if rs == nil {
			return b, nil, time.Time{}
		}
		tried = append(tried, rs)
		if !rs.Dest.Bind() {
			t.vs.Release(b)
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
			return b, c.(*net.TCPConn), bound
		}
		t.vs.Release(b)
		rs.Dest.Unbind(false)
		rs.Stats.ConnectErrors.Add(1)
		t.vs.Stats.ConnectErrors.Add(1)
		t.vs.ConnectFailed(rs, err) // passive health: out of scheduling until its checks pass
		t.p.log.Debug("connect to real server failed", "service", st.Name, "backend", rs.Addr.String(), "err", err, "attempt", attempt+1)
	}
	return director.Binding{}, nil, time.Time{}
}

// pipe moves one direction: upstream is client to real server.
func (c *tcpConn) pipe(upstream bool) {
	src, dst := c.backend, c.client
	if upstream {
		src, dst = c.client, c.backend
	}
	_, err := copyStream(dst, src, func(n int) { c.count(upstream, n) })
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
		}
	} else {
		c.abort("")
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
	c.last.Store(int64(time.Since(c.start)))
}

func (c *tcpConn) checkIdle() {
	idleFor := time.Since(c.start) - time.Duration(c.last.Load())
	if idleFor >= c.st.IdleTimeout {
		c.abort("idle timeout")
		return
	}
	c.idle.Reset(c.st.IdleTimeout - idleFor)
}

// abort resets both sides: a reset on one side is passed to the other, and
// a connection closed by govs (idle, grace over) is not left half open.
func (c *tcpConn) abort(reason string) {
	c.abortOnce.Do(func() {
		c.reason = reason
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
	if c.st.AccessLog {
		end := "closed"
		switch {
		case c.reason != "":
			end = c.reason
		case c.inErr != nil || c.outErr != nil:
			end = "reset: " + errors.Join(c.inErr, c.outErr).Error()
		}
		c.p.log.LogAttrs(context.Background(), slog.LevelInfo, "connection",
			slog.String("service", c.st.Name), slog.String("client", c.clientAP.String()),
			slog.String("backend", c.rs.Addr.String()), slog.Int64("bytes_in", c.in.Load()),
			slog.Int64("bytes_out", c.out.Load()), slog.Duration("duration", time.Since(c.start)),
			slog.String("end", end))
	}
	c.p.tcp.remove(c)
	c.p.conns.Done()
}
