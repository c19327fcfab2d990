//go:build !linux

package proxy

import "syscall"

// freebind is Linux's IP_FREEBIND; elsewhere a VIP must be held to be bound.
func freebind(_, _ string, _ syscall.RawConn) error { return nil }
