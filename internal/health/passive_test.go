package health

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestConnectFault(t *testing.T) {
	for _, tc := range []struct {
		err error
		ok  bool
		why string
	}{
		{nil, false, ""},
		{context.Canceled, false, ""},
		{syscall.EMFILE, false, ""},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true, "connect failed: connection refused"},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), true, "connect timed out"},
		{syscall.EHOSTUNREACH, true, "connect failed: no route to host"},
	} {
		why, ok := ConnectFault(tc.err)
		if ok != tc.ok || why != tc.why {
			t.Errorf("%v: %q %v, want %q %v", tc.err, why, ok, tc.why, tc.ok)
		}
	}
}
