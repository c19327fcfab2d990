package vrrpd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// errScriptTimeout is a script killed because it ran too long.
var errScriptTimeout = errors.New("timed out, process group killed")

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.TrimSpace(l.b.String())
}

// runScript runs argv in a process group of its own and waits for it, at
// most timeout (or until ctx ends): then the whole group is killed. It
// returns the command's output (the first 4 KiB) and its error.
func runScript(ctx context.Context, argv []string, timeout time.Duration) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A daemon started by the script may keep its output open: do not wait
	// for it once the script itself has exited.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return out.String(), err
	case <-t.C:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), errScriptTimeout
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), ctx.Err()
	}
}

// notifier runs a unit's notify scripts one after the other, in the order
// of the state changes, each bounded by a timeout.
type notifier struct {
	log     *slog.Logger
	timeout time.Duration
	q       chan notifyJob
	done    chan struct{}
}

type notifyJob struct {
	argv []string
	what string // for the log: "notify_master of VI_1"
}

func newNotifier(log *slog.Logger, timeout time.Duration) *notifier {
	n := &notifier{log: log, timeout: timeout, q: make(chan notifyJob, 64), done: make(chan struct{})}
	go n.run()
	return n
}

func (n *notifier) run() {
	defer close(n.done)
	for j := range n.q {
		start := time.Now()
		out, err := runScript(context.Background(), j.argv, n.timeout)
		if err != nil {
			n.log.Warn("vrrp notify script failed", "script", j.what, "command", strings.Join(j.argv, " "), "err", err, "output", out)
			continue
		}
		n.log.Debug("vrrp notify script ran", "script", j.what, "took", time.Since(start))
	}
}

// add queues script (a configured command line) with extra arguments.
func (n *notifier) add(what, script string, extra ...string) {
	if script == "" {
		return
	}
	argv, err := config.SplitCommand(script)
	if err != nil {
		n.log.Warn("vrrp notify script not run", "script", what, "err", err)
		return
	}
	select {
	case n.q <- notifyJob{argv: append(argv, extra...), what: what}:
	default:
		n.log.Warn("vrrp notify script not run: too many queued", "script", what)
	}
}

// close runs what is queued (waiting at most wait) and stops.
func (n *notifier) close(wait time.Duration) {
	close(n.q)
	select {
	case <-n.done:
	case <-time.After(wait):
		n.log.Warn("vrrp notify scripts still running at shutdown")
	}
}

// runTrackScript runs a track script every interval until ctx ends and
// calls report when its state changes: it starts up (keepalived's default,
// no init_fail), goes down after fall failures in a row and up again after
// rise successes.
func runTrackScript(ctx context.Context, ts *config.TrackScript, argv []string, report func(up bool)) {
	up, streak := true, 0
	for {
		start := time.Now()
		_, err := runScript(ctx, argv, ts.Timeout.D())
		if ctx.Err() != nil {
			return
		}
		if ok := err == nil; ok == up {
			streak = 0
		} else {
			streak++
			need := ts.Fall
			if !up {
				need = ts.Rise
			}
			if streak >= need {
				up, streak = ok, 0
				report(up)
			}
		}
		wait := time.Until(start.Add(ts.Interval.D()))
		if wait <= 0 {
			wait = time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
