package proxy

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A pipe carries bytes between two sockets inside the kernel (splice(2)).
// Pipes are pooled and a direction holds one only while bytes are in flight,
// so an idle connection holds none.
type pipe struct{ r, w int }

// pipeSize is large enough that one splice moves what a socket buffer holds.
const pipeSize = 1 << 20

var pipePool = sync.Pool{New: func() any {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize) // best effort
	p := &pipe{r: fds[0], w: fds[1]}
	runtime.AddCleanup(p, func(fds [2]int) { unix.Close(fds[0]); unix.Close(fds[1]) }, fds)
	return p
}}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// splicer moves one direction of a TCP connection with splice(2), through
// the runtime's poller (syscall.RawConn), so it blocks no thread and honours
// Close from another goroutine.
type splicer struct {
	src, dst syscall.RawConn
	p        *pipe
	inPipe   int
	eof      bool
	err      error
	fill     func(fd uintptr) bool
	drain    func(fd uintptr) bool
}

var errNoPipe = errors.New("no pipe for splice")

func newSplicer(src, dst syscall.RawConn) *splicer {
	s := &splicer{src: src, dst: dst}
	s.fill = func(fd uintptr) bool {
		if s.p == nil {
			p, _ := pipePool.Get().(*pipe)
			if p == nil {
				s.err = errNoPipe
				return true
			}
			s.p = p
		}
		for {
			n, err := unix.Splice(int(fd), nil, s.p.w, nil, pipeSize, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				// Nothing to read: give the pipe back while we wait.
				pipePool.Put(s.p)
				s.p = nil
				return false
			case err != nil:
				s.err = err
			case n == 0:
				s.eof = true
			default:
				s.inPipe = int(n)
			}
			return true
		}
	}
	s.drain = func(fd uintptr) bool {
		for {
			n, err := unix.Splice(s.p.r, nil, int(fd), nil, s.inPipe, unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				s.err = err
			default:
				s.inPipe -= int(n)
			}
			return true
		}
	}
	return s
}

// copyStream copies src to dst until src's EOF (nil error) or an error,
// calling count after each chunk written.
func copyStream(dst, src *net.TCPConn, count func(int)) (int64, error) {
	sr, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dr, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	s := newSplicer(sr, dr)
	var total int64
	defer func() {
		if s.p != nil {
			if s.inPipe == 0 {
				pipePool.Put(s.p)
			} else {
				s.p.close() // bytes left inside: the pipe cannot be reused
			}
		}
	}()
	for {
		if err := sr.Read(s.fill); err != nil {
			return total, err
		}
		if s.err == errNoPipe {
			// Out of pipes (file descriptors): copy through memory instead.
			n, err := copyBuffered(dst, src, count)
			return total + n, err
		}
		if s.err != nil || s.eof {
			return total, s.err
		}
		for s.inPipe > 0 {
			before := s.inPipe
			if err := dr.Write(s.drain); err != nil {
				return total, err
			}
			if s.err != nil {
				return total, s.err
			}
			total += int64(before - s.inPipe)
			count(before - s.inPipe)
		}
		pipePool.Put(s.p)
		s.p = nil
	}
}
