package health

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// ConnectFault classifies a dataplane's failed connect for passive health
// (ServiceMachine.Suspect): ok says the error is the real server's fault
// (refused, reset, unreachable, timed out) and why is the reason to record.
// Failures that say nothing about the real server (the local host out of
// sockets, a cancelled connection) are not faults.
func ConnectFault(err error) (why string, ok bool) {
	if !serverFault(err) {
		return "", false
	}
	return faultText(err), true
}

func serverFault(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
		syscall.ETIMEDOUT, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func faultText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return "connect failed: " + errno.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "connect timed out"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "connect timed out"
	}
	return "connect failed: " + err.Error()
}
