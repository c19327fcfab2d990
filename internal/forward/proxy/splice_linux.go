package proxy

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// A pipe carries bytes between two sockets inside the kernel (splice(2)).
// Pipes are pooled and a direction holds one only while bytes are in flight,
// so an idle connection holds none.
type pipe struct {
	r, w int
	fds  *pipeFDs // what the cleanup closes, unless close did
}

type pipeFDs struct {
	fd     [2]int
	closed atomic.Bool
}

// pipeSize is what one splice moves at most. Larger pipes mean fewer
// syscalls, but the kernel caps the pipe memory of a user
// (fs.pipe-user-pages-soft, 64 MiB by default) and shrinks new pipes to one
// page past it; 256 KiB keeps 256 directions in bulk at full size.
const pipeSize = 256 << 10

// Pipes count against the descriptor budget: past it a direction stays with
// its buffer rather than take descriptors the listeners and the API need.
var pipePool = sync.Pool{New: func() any {
	if !fds.takePipe() {
		return nil
	}
	var pfd [2]int
	if err := unix.Pipe2(pfd[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		fds.give(2)
		return nil
	}
	unix.FcntlInt(uintptr(pfd[0]), unix.F_SETPIPE_SZ, pipeSize) // best effort
	p := &pipe{r: pfd[0], w: pfd[1], fds: &pipeFDs{fd: pfd}}
	runtime.AddCleanup(p, closePipe, p.fds)
	return p
}}

// closePipe closes a pipe's descriptors once: by close, or by the cleanup
// of a pipe the pool dropped.
func closePipe(pfd *pipeFDs) {
	if pfd.closed.Swap(true) {
		return
	}
	unix.Close(pfd.fd[0])
	unix.Close(pfd.fd[1])
	fds.give(2)
}

// close closes a pipe that cannot be reused (bytes left inside). The
// cleanup then finds it closed: closing the numbers again could close
// descriptors the process has reused since.
func (p *pipe) close() { closePipe(p.fds) }

// streamCopier moves one direction of a TCP connection through the
// runtime's poller (syscall.RawConn), so it blocks no thread and honours
// Close from another goroutine. Small messages (requests, replies) go
// through a pooled buffer, one read and one write each; a direction that
// fills the buffer twice running is carrying bulk and switches to splice(2),
// which moves bytes inside the kernel without copying them; it switches back
// when its chunks turn small again. Like HAProxy's splice-auto. A direction
// holds a buffer or a pipe only while bytes are in flight.
type streamCopier struct {
	src, dst syscall.RawConn

	// buffered mode
	buf      *[]byte
	n, off   int
	read     func(fd uintptr) bool
	write    func(fd uintptr) bool
	fullRuns int

	// splice mode
	bulk      bool
	p         *pipe
	inPipe    int
	fill      func(fd uintptr) bool
	drain     func(fd uintptr) bool
	smallRuns int
	eof       bool
	err       error
	onRead    func() // a chunk was read, before it is written
}

const (
	copyBufSize = 32 << 10
	// bulkAfter full buffer reads in a row switch a direction to splice;
	// smallAfter splices below copyBufSize switch it back.
	bulkAfter  = 2
	smallAfter = 4
)

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

var errNoPipe = errors.New("no pipe for splice")

func newStreamCopier(src, dst syscall.RawConn) *streamCopier {
	s := &streamCopier{src: src, dst: dst}
	s.read = func(fd uintptr) bool {
		if s.buf == nil {
			s.buf = copyBufPool.Get().(*[]byte)
		}
		for {
			n, err := unix.Read(int(fd), *s.buf)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				// Nothing to read: give the buffer back while we wait.
				copyBufPool.Put(s.buf)
				s.buf = nil
				return false
			case err != nil:
				s.err = err
			case n == 0:
				s.eof = true
			default:
				s.n, s.off = n, 0
			}
			return true
		}
	}
	s.write = func(fd uintptr) bool {
		for {
			n, err := unix.Write(int(fd), (*s.buf)[s.off:s.n])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				s.err = dstError{err}
			default:
				s.off += n
			}
			return true
		}
	}
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
				s.err = dstError{err}
			default:
				s.inPipe -= int(n)
			}
			return true
		}
	}
	return s
}

// release gives back what the copier holds when it stops.
func (s *streamCopier) release() {
	if s.buf != nil {
		copyBufPool.Put(s.buf)
		s.buf = nil
	}
	if s.p != nil {
		if s.inPipe == 0 {
			pipePool.Put(s.p)
		} else {
			s.p.close() // bytes left inside: the pipe cannot be reused
		}
		s.p = nil
	}
}

// copyStream copies src to dst until src's EOF (nil error) or an error,
// calling read when a chunk has been read (before it is written) and count
// after each chunk written.
func copyStream(dst, src *net.TCPConn, read func(), count func(int)) (int64, error) {
	sr, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dr, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	s := newStreamCopier(sr, dr)
	s.onRead = read
	defer s.release()
	var total int64
	for {
		var n int
		if s.bulk {
			n, err = s.spliceChunk()
		} else {
			n, err = s.copyChunk()
		}
		if n > 0 {
			total += int64(n)
			count(n)
		}
		if err != nil || s.eof {
			return total, err
		}
		if s.err == errNoPipe {
			// Out of pipes (file descriptors): stay with the buffer.
			s.err, s.bulk = nil, false
		}
	}
}

// copyChunk moves one read's worth through the buffer.
func (s *streamCopier) copyChunk() (int, error) {
	if err := s.src.Read(s.read); err != nil {
		return 0, err
	}
	if s.err != nil || s.eof {
		return 0, s.err
	}
	s.onRead()
	n := s.n
	for s.off < s.n {
		if err := s.dst.Write(s.write); err != nil {
			return 0, dstError{err}
		}
		if s.err != nil {
			return 0, s.err
		}
	}
	copyBufPool.Put(s.buf)
	s.buf = nil
	if n == copyBufSize {
		if s.fullRuns++; s.fullRuns >= bulkAfter {
			s.bulk, s.fullRuns, s.smallRuns = true, 0, 0
		}
	} else {
		s.fullRuns = 0
	}
	return n, nil
}

// spliceChunk moves one splice's worth through a pipe.
func (s *streamCopier) spliceChunk() (int, error) {
	if err := s.src.Read(s.fill); err != nil {
		return 0, err
	}
	if s.err != nil || s.eof {
		return 0, s.err
	}
	s.onRead()
	n := s.inPipe
	for s.inPipe > 0 {
		if err := s.dst.Write(s.drain); err != nil {
			return n - s.inPipe, dstError{err}
		}
		if s.err != nil {
			return n - s.inPipe, s.err
		}
	}
	pipePool.Put(s.p)
	s.p = nil
	if n < copyBufSize {
		if s.smallRuns++; s.smallRuns >= smallAfter {
			s.bulk, s.smallRuns = false, 0
		}
	} else {
		s.smallRuns = 0
	}
	return n, nil
}
