package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The tcp check connects to the real server (keepalived's TCP_CHECK) and
// closes at once, with a reset, so that thousands of checks a second leave
// no TIME_WAIT sockets behind.
//
// It is the check that runs by the thousand, so it does the least work it
// can: a non-blocking socket, connect, and a zero-timeout poll that finds
// most nearby servers already answered; only a connection still under way
// goes to Go's poller to wait, with the check's deadline.

func init() {
	Register("tcp", func(s Spec) (Checker, error) { return newTCP(s.Target), nil })
}

type tcpChecker struct {
	family int
	sa     unix.Sockaddr
	target netip.AddrPort

	// The SYN probe's (syn.go): the family's prober, nil when connecting;
	// src is the address the route to the target leaves from (for the
	// IPv4 checksum), looked up again after a failure.
	prober *synProber
	probed bool
	src    netip.Addr
	port   uint16 // the next source port to try (synProber.stage)
}

// ready says whether the check sends SYNs: a prober was opened.
func (c *tcpChecker) ready() bool {
	if !c.probed {
		c.probed = true
		if c.target.Addr().Zone() == "" { // a scoped address connects
			c.prober = proberFor(c.family == unix.AF_INET)
		}
	}
	return c.prober != nil
}

func (c *tcpChecker) begin(j *Job, gen uint32, b *synBatch) error {
	if c.family == unix.AF_INET && !c.src.IsValid() {
		src, err := c.prober.route(c.target)
		if err != nil {
			return err
		}
		c.src = src
	}
	err := c.prober.stage(b, j, gen, c.src, c.target, &c.port)
	if err != nil {
		c.src = netip.Addr{}
	}
	return err
}

func (c *tcpChecker) cancel(j *Job, timedOut bool) {
	if timedOut {
		c.src = netip.Addr{} // the route may have changed
	}
	c.prober.cancel(j)
}

// routeSource is the local address that the route to dst leaves from: a
// UDP socket's after connect (which sends nothing).
func routeSource(dst netip.AddrPort) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route: %w", err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

func newTCP(addr netip.AddrPort) *tcpChecker {
	a := addr.Addr().Unmap()
	target := netip.AddrPortFrom(a, addr.Port())
	if a.Is4() {
		return &tcpChecker{family: unix.AF_INET, sa: &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}, target: target}
	}
	sa := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16(), ZoneId: zoneID(a.Zone())}
	return &tcpChecker{family: unix.AF_INET6, sa: sa, target: target}
}

var connected = Result{OK: true, Msg: "connected"}

func (c *tcpChecker) Check(ctx context.Context) Result {
	fd, err := unix.Socket(c.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return failErr(ctx, "socket", err)
	}
	// Close with a reset: no TIME_WAIT.
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	err = unix.Connect(fd, c.sa)
	if err == nil {
		unix.Close(fd)
		return connected
	}
	if err != unix.EINPROGRESS {
		unix.Close(fd)
		return failErr(ctx, "connect", err)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if n, _ := unix.Poll(pfd, 0); n == 1 {
		err := soError(fd)
		unix.Close(fd)
		if err != nil {
			return failErr(ctx, "connect", err)
		}
		return connected
	}
	// Still connecting: wait in Go's poller.
	f := os.NewFile(uintptr(fd), "")
	defer f.Close()
	if d, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return failErr(ctx, "connect", err)
	}
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		if cerr = soError(int(fd)); cerr != nil {
			return true
		}
		_, perr := unix.Getpeername(int(fd))
		return perr == nil // ENOTCONN: still connecting
	})
	switch {
	case werr != nil:
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			werr = context.DeadlineExceeded
		}
		return failErr(ctx, "connect", werr)
	case cerr != nil:
		return failErr(ctx, "connect", cerr)
	}
	return connected
}

// zoneID is the interface index of a link-local address's zone.
func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// soError is the socket's pending error (a failed connect's).
func soError(fd int) error {
	n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if n != 0 {
		return syscall.Errno(n)
	}
	return nil
}

// dialer is the dialer of the other checks: no keep-alive (a check's
// connection lives for one check).
func dialer() net.Dialer { return net.Dialer{KeepAlive: -1} }
