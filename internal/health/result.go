package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Result is what one check saw.
type Result struct {
	OK  bool
	Msg string // what the check saw, for logs and the dashboard: "status 503"
	// Type, At and Latency are set by the Runner.
	Type    string
	At      time.Time
	Latency time.Duration

	// WeightMode says whether the check set the real server's weight: a
	// dynamic script's exit code or a file check's value.
	WeightMode WeightMode
	Weight     int
	// Agent is what an HAProxy agent answered, when HasAgent.
	HasAgent bool
	Agent    AgentReply
}

// WeightMode is how a Result changes the configured weight.
type WeightMode uint8

// Weight modes.
const (
	WeightKeep WeightMode = iota // the check has no say on the weight
	WeightSet                    // Weight replaces the configured weight
	WeightAdd                    // Weight is added to the configured weight
)

func pass(format string, args ...any) Result {
	return Result{OK: true, Msg: fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) Result { return Result{Msg: fmt.Sprintf(format, args...)} }

// failErr describes a failed network operation briefly: "connect: connection
// refused" rather than the full "dial tcp 10.0.0.1:80: connect: ...".
func failErr(ctx context.Context, what string, err error) Result {
	return Result{Msg: what + ": " + errText(ctx, err)}
}

func errText(ctx context.Context, err error) string {
	if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		return s[i+2:]
	}
	return s
}
