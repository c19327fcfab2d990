package proxy

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// freebind lets a listener bind a VIP this host does not hold yet: a VRRP
// backup serves its virtual services before it becomes master, so traffic
// flows as soon as the address moves. IP_FREEBIND covers IPv6 sockets too.
// Failing to set it is not an error: binding a held address still works.
func freebind(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
}
