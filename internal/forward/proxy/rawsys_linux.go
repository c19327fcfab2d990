package proxy

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loops' socket calls never block (every descriptor is
// non-blocking), so they go straight to the kernel: x/sys/unix's wrappers
// tell the scheduler about each call (entersyscall/exitsyscall), and its
// Accept4 asks the socket's protocol (one getsockopt per connection) to
// build a Sockaddr the proxy does not need.

func errnoErr(e syscall.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EINTR:
		return unix.EINTR
	}
	return e
}

// rawRecv and rawSend are a TCP connection's reads and writes: recvfrom and
// sendto, not read and write, which on a socket go through the file layer
// first (fdget_pos, vfs_read/vfs_write's checks and notification hooks)
// before the same socket call: about 0.1 µs less per call on loopback
// (HAProxy's calls too). MSG_NOSIGNAL: a write to a reset connection returns EPIPE
// without raising SIGPIPE for the runtime to ignore.
func rawRecv(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
		0, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

func rawSend(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
		unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// rawWrite: a UDP flow's datagram on its connected socket.
func rawWrite(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// rawSplice moves up to n bytes from in to out, both non-blocking.
func rawSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_NONBLOCK|unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// rawAccept accepts one connection, non-blocking and close-on-exec, and
// returns its peer's address (IPv4-mapped addresses unmapped).
func rawAccept(lfd int) (int, netip.AddrPort, error) {
	var rsa unix.RawSockaddrAny
	l := uint32(unsafe.Sizeof(rsa))
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, errnoErr(e)
	}
	return int(r), rawAddrPort(&rsa), nil
}

func rawAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), port)
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// The calls below are a connection's other calls on the loops. They are raw
// for a second reason: a connect or a close on loopback runs the peer's
// side of the handshake or the FIN inline and takes tens of microseconds,
// long enough for the runtime's monitor (sysmon) to take the P of a
// goroutine in syscall.Syscall, start a thread to run it, and leave the
// loop to find a P again when the call returns: with both loops busy,
// nearly every connection paid that hand-off (futex wakes, a spinning
// thread, nanosleeps). The descriptors are non-blocking and a close never
// lingers (SO_LINGER is only ever set to 0), so no call here blocks.

func rawClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func rawShutdown(fd, how int) {
	unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
}

func rawSetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoErr(e)
}

func rawGetsockoptInt(fd, level, opt int) (int, error) {
	var v int32
	l := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	return int(v), errnoErr(e)
}

// rawLinger0 makes fd's close send a reset: SO_LINGER {on, 0 s}.
func rawLinger0(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}

func rawSocket(family, typ int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ), 0)
	if e != 0 {
		return -1, errnoErr(e)
	}
	return int(r), nil
}

// rawConnect starts a connect to ap (unmapped) with the address built on
// the stack: unix.Connect allocates a Sockaddr per call.
func rawConnect(fd int, ap netip.AddrPort) error {
	var e syscall.Errno
	if ap.Addr().Is4() {
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	} else {
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ap.Addr().As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	}
	return errnoErr(e)
}
