package proxy

import (
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward/proxy/loop"
	"github.com/govs-lb/govs/internal/sched"
)

// evConn is one proxied connection on an event loop: both sockets are
// registered with the loop that accepted the client, and everything below
// runs on that loop's goroutine, except the methods other goroutines call
// (entry, quiet, closeQuiet: listing and stops), which read atomics or
// post to the loop. An idle connection holds no goroutine, no buffer and
// no pipe: the struct, its timer and its two descriptors.
type evConn struct {
	l        *loop.Loop
	p        *Proxy
	srv      *evServer
	vs       *director.VirtualService
	st       *wanted
	rs       *director.RealServer
	binding  director.Binding
	counted  bool // in srv.clients
	gotFirst bool // a first byte came from the real server
	state    connState
	clientAP netip.AddrPort
	start    time.Time     // accepted (for the access log)
	startNs  int64         // accepted, loop clock
	boundNs  int64         // the real server was bound, loop clock: signals count from here
	connect  time.Duration // accept to connected, retries included
	cfd, bfd int           // client and real-server sockets, -1 when closed
	cs, bs   sockFlags
	up, down evDir // upstream: client to real server
	attempts int
	tried    []*director.RealServer // while connecting only, on triedBuf
	triedBuf [2]*director.RealServer
	failed   connectFailure
	timer    loop.Timer // the connect timeout, then the idle timeout
	ls       *evLoopState
	watching *rsWatch // the list of c.rs's connections on this loop c is in
	wprev    *evConn
	wnext    *evConn
	reason   string
	code     accesslog.Termination
	inErr    error
	outErr   error

	// Read by other goroutines: times are nanoseconds since startNs, as
	// tcpConn's (upReadAt > downAt: an answer is owed).
	last, upReadAt, downAt atomic.Int64
	halfDone               atomic.Bool
	firstFin               atomic.Int32
	in, out                atomic.Int64
}

type connState uint8

const (
	idle connState = iota // between connect attempts
	connecting
	established
	closed
)

// sockFlags is what the loop knows a socket can do, edge-triggered: set by
// its events, cleared by the read or write that found it could not.
type sockFlags struct {
	readable, writable bool
	rdhup              bool // the peer's FIN (or an error) is queued: read on to it
	fin                bool // the peer's FIN, no error: a short read has read all before it
}

func (f *sockFlags) update(ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		f.readable = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		f.rdhup = true
	}
	switch {
	case ev&unix.EPOLLERR != 0:
		f.fin = false // a reset after the FIN: the read passes it on
	case ev&unix.EPOLLRDHUP != 0:
		f.fin = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		f.writable = true
	}
}

// evDir is one direction's bytes in flight: a pooled buffer or a pipe,
// held only between a read and the write that empties it. Like
// streamCopier, a direction that fills its buffer twice running moves to
// splice(2) and back when its chunks turn small.
type evDir struct {
	buf       *[]byte
	off, n    int
	p         *pipe
	inPipe    int
	bulk      bool
	fullRuns  uint8
	smallRuns uint8
	eof       bool // the source sent FIN
	done      bool // and it was passed on
}

func (d *evDir) pending() int {
	if d.p != nil {
		return d.inPipe
	}
	return d.n - d.off
}

// release gives back what d holds; a pipe with bytes inside is closed.
func (d *evDir) release() {
	if d.buf != nil {
		copyBufPool.Put(d.buf)
		d.buf = nil
	}
	if d.p != nil {
		if d.inPipe == 0 {
			pipePool.Put(d.p)
		} else {
			d.p.close()
		}
		d.p, d.inPipe = nil, 0
	}
}

// Event implements loop.Handler.
func (c *evConn) Event(fd int, ev uint32) {
	switch c.state {
	case connecting:
		if fd == c.bfd {
			c.connectDone(ev)
			return
		}
		c.cs.update(ev) // the client's bytes wait for the connect
	case established:
		if fd == c.cfd {
			c.cs.update(ev)
		} else {
			c.bs.update(ev)
		}
		c.pump(true)
		c.pump(false)
	case idle:
		c.cs.update(ev)
	}
}

// connected: the real server accepted (ev is its socket's event). Count it, send the PROXY header,
// start moving bytes.
func (c *evConn) connected(ev uint32) {
	c.stopTimer()
	now := loop.Clock()
	rs, vs := c.rs, c.vs
	vs.Observe(rs, sched.Signal{Kind: sched.ConnectTime, Latency: time.Duration(now - c.boundNs)})
	c.connect = time.Duration(now - c.startNs)
	c.tried, c.triedBuf = nil, [2]*director.RealServer{}
	c.state = established
	c.bs.update(ev) // the real server may have spoken first: its bytes' edge is this event
	rs.Dest.Activate()
	rs.Stats.Conns.Add(1)
	vs.Stats.Conns.Add(1)
	c.cs.writable = true
	if pp := c.st.sendProxy[rs.Addr]; pp != desired.ProxyNone {
		var vip netip.AddrPort
		if sa, err := unix.Getsockname(c.cfd); err == nil {
			vip = sockAddr(sa)
		}
		var buf [108]byte
		hdr := appendProxyHeader(buf[:0], pp, c.clientAP, vip)
		// The socket has just connected: its send buffer is empty and
		// takes the header whole.
		if n, err := rawSend(c.bfd, hdr); err != nil || n != len(hdr) {
			if err == nil {
				err = unix.EAGAIN
			}
			c.p.tcp.add(c)
			c.abort(accesslog.Termination{accesslog.ByServer, accesslog.InData}, "proxy header: "+err.Error())
			return
		}
	}
	c.p.tcp.add(c)
	if c.st.IdleTimeout > 0 {
		c.armTimer(int64(c.st.IdleTimeout))
	}
	c.pump(true)
	c.pump(false)
}

// pump moves one direction as far as the sockets allow: write what is in
// flight, pass a FIN on, read the next chunk. Reading stops at a short
// read (the socket is drained: its next bytes raise a new edge), unless
// the peer's FIN is queued, and at a short write (the destination is full:
// EPOLLOUT raises a new edge), so no syscall is spent on EAGAIN in the
// common request/response exchange.
func (c *evConn) pump(up bool) {
	d, src, dst, sfd, dfd := &c.up, &c.cs, &c.bs, c.cfd, c.bfd
	if !up {
		d, src, dst, sfd, dfd = &c.down, &c.bs, &c.cs, c.bfd, c.cfd
	}
	for !d.done && c.state == established {
		if d.pending() > 0 {
			if !dst.writable || !c.flush(d, dst, dfd, up) {
				return
			}
		}
		if d.eof {
			// The source sent FIN: pass it on, keep the other direction.
			// When that one has ended too, the close in finish sends the
			// FIN: no shutdown call.
			other := &c.down
			if !up {
				other = &c.up
			}
			if !other.done {
				rawShutdown(dfd, unix.SHUT_WR)
			}
			d.done = true
			c.finDir(up)
			return
		}
		if !src.readable || !dst.writable {
			return
		}
		if !c.fill(d, src, sfd, up) {
			return
		}
	}
}

// flush writes what d holds; false when it could not write it all (the
// destination is full, or the connection ended).
func (c *evConn) flush(d *evDir, dst *sockFlags, dfd int, up bool) bool {
	for d.pending() > 0 {
		var n int
		var err error
		if d.p != nil {
			n, err = rawSplice(d.p.r, dfd, d.inPipe)
		} else {
			n, err = rawSend(dfd, (*d.buf)[d.off:d.n])
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			dst.writable = false
			return false
		case err != nil:
			c.fail(up, dstError{err})
			return false
		}
		if d.p != nil {
			d.inPipe -= n
		} else {
			d.off += n
		}
		c.count(up, n)
		if d.pending() > 0 && d.p == nil {
			dst.writable = false // a short write: the socket buffer is full
			return false
		}
		// A short splice is retried at once: in bulk the peer is reading
		// while we write, and waiting for EPOLLOUT (a third of the buffer
		// free) costs more than the call that may find room or EAGAIN.
	}
	if d.p != nil {
		pipePool.Put(d.p)
		d.p = nil
	} else if d.buf != nil {
		copyBufPool.Put(d.buf)
		d.buf = nil
	}
	return true
}

// fill reads the next chunk into d; false when there was none (or the
// connection ended). EOF sets d.eof and returns true.
func (c *evConn) fill(d *evDir, src *sockFlags, sfd int, up bool) bool {
	if d.bulk {
		if d.p == nil {
			if p, _ := pipePool.Get().(*pipe); p != nil {
				d.p = p
			} else {
				d.bulk = false // out of pipes (descriptors): stay with the buffer
			}
		}
	}
	if d.p != nil {
		for {
			// No short-read shortcut here: a splice also stops short when
			// the pipe is full, with bytes left in the socket.
			n, err := rawSplice(sfd, d.p.w, pipeSize)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				src.readable = false
				pipePool.Put(d.p)
				d.p = nil
				return false
			case err != nil:
				pipePool.Put(d.p)
				d.p = nil
				c.fail(up, err)
				return false
			case n == 0:
				pipePool.Put(d.p)
				d.p = nil
				d.eof = true
				return true
			}
			d.inPipe = n
			c.readAt(up)
			if n < copyBufSize {
				if d.smallRuns++; d.smallRuns >= smallAfter {
					d.bulk, d.smallRuns = false, 0
				}
			} else {
				d.smallRuns = 0
			}
			return true
		}
	}
	if d.buf == nil {
		d.buf = copyBufPool.Get().(*[]byte)
	}
	for {
		n, err := rawRecv(sfd, *d.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			src.readable = false
			copyBufPool.Put(d.buf)
			d.buf = nil
			return false
		case err != nil:
			copyBufPool.Put(d.buf)
			d.buf = nil
			c.fail(up, err)
			return false
		case n == 0:
			copyBufPool.Put(d.buf)
			d.buf = nil
			d.eof = true
			return true
		}
		d.off, d.n = 0, n
		if n < len(*d.buf) {
			switch {
			case src.fin:
				// The FIN came before the event that told of it, and
				// all the bytes before it were queued then: a short read
				// took them all. The read that would return 0 is not
				// needed (HAProxy's read0 on a short read after a HUP):
				// 4.6 → 3.6 recvfrom per proxied HTTP/1.0 exchange. Not
				// after an error: its read passes the reset on.
				d.eof = true
			case !src.rdhup:
				src.readable = false // a short read drained the socket
			}
		}
		c.readAt(up)
		if n == len(*d.buf) {
			if d.fullRuns++; d.fullRuns >= bulkAfter {
				d.bulk, d.fullRuns, d.smallRuns = true, 0, 0
			}
		} else {
			d.fullRuns = 0
		}
		return true
	}
}

// readAt notes that the client's bytes were read: an answer is owed until
// the real server's next bytes are written (downAt), whatever the clock's
// granularity.
func (c *evConn) readAt(up bool) {
	if !up {
		return
	}
	now := c.l.Now() - c.startNs
	if d := c.downAt.Load(); now <= d {
		now = d + 1
	}
	c.upReadAt.Store(now)
}

func (c *evConn) count(up bool, n int) {
	now := c.l.Now() - c.startNs
	if up {
		c.in.Add(int64(n))
		c.rs.Stats.InBytes.Add(uint64(n))
		c.vs.Stats.InBytes.Add(uint64(n))
	} else {
		c.out.Add(int64(n))
		c.rs.Stats.OutBytes.Add(uint64(n))
		c.vs.Stats.OutBytes.Add(uint64(n))
		if !c.gotFirst {
			c.gotFirst = true
			c.vs.Observe(c.rs, sched.Signal{Kind: sched.FirstByte, Latency: time.Duration(c.l.Now() - c.boundNs)})
		}
		if u := c.upReadAt.Load(); now < u {
			now = u
		}
		c.downAt.Store(now)
	}
	c.last.Store(now)
}

// finDir: a FIN was passed on. The first one makes the connection inactive
// (IPVS's FIN_WAIT) and its timeout tcpfin_timeout; the second ends it.
func (c *evConn) finDir(up bool) {
	if c.halfDone.CompareAndSwap(false, true) {
		c.rs.Dest.Deactivate()
		fin := int32(finServer)
		if up {
			fin = finClient
		}
		c.firstFin.Store(fin)
		if c.st.IdleTimeout > 0 {
			c.last.Store(c.l.Now() - c.startNs)
			c.armTimer(int64(c.timeout()))
		}
	}
	if c.up.done && c.down.done {
		c.finish()
	}
}

// fail ends the connection on a socket error: the source's on a read
// error, the destination's on a write error (as tcpConn.pipe).
func (c *evConn) fail(up bool, err error) {
	if up {
		c.inErr = err
	} else {
		c.outErr = err
	}
	by := byte(accesslog.ByServer)
	if up != isDstError(err) {
		by = accesslog.ByClient
	}
	c.abort(c.phase(by), "")
}

// abort resets both sides: a reset on one side is passed to the other, and
// a connection closed by govs (idle, grace over) is not left half open.
func (c *evConn) abort(code accesslog.Termination, reason string) {
	if c.state != established {
		return
	}
	c.reason, c.code = reason, code
	rawLinger0(c.cfd)
	rawLinger0(c.bfd)
	c.finish()
}

func (c *evConn) armTimer(d int64) { c.timer.Reset(d) }

func (c *evConn) stopTimer() { c.timer.Stop() }

// OnTimer implements loop.TimerHandler: the connect or the idle timeout.
func (c *evConn) OnTimer() {
	switch c.state {
	case connecting:
		c.connectFailed(errConnectTimeout)
		c.connectNext()
	case established:
		c.checkIdle()
	}
}

// errConnectTimeout is a connect that outlived connect_timeout: a
// timeout (sC) to connectCode.
var errConnectTimeout = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "connect: i/o timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

// timeout is the inactivity timeout in force: idle_timeout, or
// tcpfin_timeout once one side has half-closed.
func (c *evConn) timeout() time.Duration {
	return c.st.inactivity(c.halfDone.Load())
}

// checkIdle is tcpConn.checkIdle on the loop's clock.
func (c *evConn) checkIdle() {
	idleFor := time.Duration(c.l.Now() - c.startNs - c.last.Load())
	timeout := c.timeout()
	if idleFor < timeout {
		c.timer.Reset(int64(timeout - idleFor))
		return
	}
	if c.halfDone.Load() && timeout != c.st.IdleTimeout {
		by := byte(accesslog.ByServerTimeout)
		if c.firstFin.Load() == finServer {
			by = accesslog.ByClientTimeout
		}
		c.abort(accesslog.Termination{by, accesslog.InClosing}, "half-closed timeout")
		return
	}
	by := byte(accesslog.ByClientTimeout)
	if c.upReadAt.Load() > c.downAt.Load() {
		by = accesslog.ByServerTimeout
	}
	c.abort(c.phase(by), "idle timeout")
}

func (c *evConn) phase(by byte) accesslog.Termination {
	if c.halfDone.Load() {
		return accesslog.Termination{by, accesslog.InClosing}
	}
	return accesslog.Termination{by, accesslog.InData}
}

// finish closes both sockets and accounts the connection, once.
func (c *evConn) finish() {
	c.state = closed
	c.stopTimer()
	c.unwatch()
	c.up.release()
	c.down.release()
	for _, fd := range [2]*int{&c.cfd, &c.bfd} {
		if *fd >= 0 {
			c.l.Forget(*fd)
			rawClose(*fd)
			*fd = -1
		}
	}
	c.rs.Dest.Unbind(!c.halfDone.Load())
	c.vs.Release(c.binding)
	c.vs.Observe(c.rs, sched.Signal{Kind: sched.Duration, Latency: time.Duration(loop.Clock() - c.boundNs)})
	c.p.ended(c.st, c.start, c.clientAP, c.rs.Addr, c.connect, c.in.Load(), c.out.Load(), c.code, c.reason, c.inErr, c.outErr)
	c.p.tcp.remove(c)
	if c.counted {
		c.srv.clients.remove(c.clientAP.Addr())
	}
	c.ls.ended(c.p)
}

// Other goroutines: listing and stops.

func (c *evConn) clientPort() uint16 { return c.clientAP.Port() }

func (c *evConn) entry() director.Connection {
	return director.Connection{
		Service: c.vs.Key, Protocol: c.vs.Protocol, State: finState(c.firstFin.Load()),
		Expires: remaining(c.timeout(), c.start, c.last.Load()),
		Client:  c.clientAP, Virtual: c.vs.Address, RealServer: c.rs.Addr,
		InBytes: uint64(c.in.Load()), OutBytes: uint64(c.out.Load()),
	}
}

// quiet is tcpConn.quiet.
func (c *evConn) quiet(d time.Duration) bool {
	if c.halfDone.Load() || c.upReadAt.Load() > c.downAt.Load() {
		return false
	}
	return time.Duration(loop.Clock()-c.startNs-c.last.Load()) >= d
}

// closeQuiet ends c with a FIN to both sides (tcpConn.closeQuiet), on its
// loop.
func (c *evConn) closeQuiet() {
	c.l.Post(func() {
		if c.state != established {
			return
		}
		c.reason = "closed idle at stop"
		c.code = accesslog.Termination{accesslog.ByProxy, accesslog.InData}
		c.finish()
	})
}
