package vrrpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/script"
)

// errScriptTimeout is a script killed because it ran too long.
var errScriptTimeout = script.ErrTimeout

// runScript runs line (split into words, as keepalived does, with extra
// appended) as runAs says: as the script user, its files checked first, in
// a process group of its own that is killed when it returns or after
// timeout (or when ctx ends). It returns the script's output (the first
// 4 KiB) and an error when it did not exit 0.
func runScript(ctx context.Context, runAs script.Policy, line string, extra []string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	code, out, err := script.Run(ctx, runAs, script.Cmd{Line: line, Args: extra, MaxOutput: 4096})
	switch {
	case err != nil:
		return out, err
	case code != 0:
		return out, fmt.Errorf("exit status %d", code)
	}
	return out, nil
}

// notifier runs a unit's notify scripts one after the other, in the order
// of the state changes, each bounded by a timeout.
type notifier struct {
	log     *slog.Logger
	runAs   func() script.Policy
	timeout time.Duration
	q       chan notifyJob
	done    chan struct{}
}

type notifyJob struct {
	line  string
	extra []string
	what  string // for the log: "notify_master of VI_1"
}

func newNotifier(log *slog.Logger, runAs func() script.Policy, timeout time.Duration) *notifier {
	n := &notifier{log: log, runAs: runAs, timeout: timeout, q: make(chan notifyJob, 64), done: make(chan struct{})}
	go n.run()
	return n
}

func (n *notifier) run() {
	defer close(n.done)
	for j := range n.q {
		start := time.Now()
		out, err := runScript(context.Background(), n.runAs(), j.line, j.extra, n.timeout)
		if err != nil {
			n.log.Warn("vrrp notify script failed", "script", j.what, "command", strings.TrimSpace(j.line+" "+strings.Join(j.extra, " ")), "err", err, "output", out)
			continue
		}
		n.log.Debug("vrrp notify script ran", "script", j.what, "took", time.Since(start))
	}
}

// add queues script (a configured command line) with extra arguments.
func (n *notifier) add(what, line string, extra ...string) {
	if line == "" {
		return
	}
	select {
	case n.q <- notifyJob{line: line, extra: extra, what: what}:
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
// rise successes. A script that cannot run (missing, not executable by the
// script user, or writable by someone else: refused) counts as failing, so
// the instance does not keep claiming what the script no longer vouches
// for; it is logged by name once, and again when the reason changes.
func runTrackScript(ctx context.Context, log *slog.Logger, ts *config.TrackScript, runAs func() script.Policy, report func(up bool)) {
	up, streak := true, 0
	refusal := ""
	for {
		start := time.Now()
		_, err := runScript(ctx, runAs(), ts.Script, nil, ts.Timeout.D())
		if ctx.Err() != nil {
			return
		}
		var ref *script.Refused
		switch {
		case errors.As(err, &ref) && ref.Error() != refusal:
			refusal = ref.Error()
			log.Error("vrrp track script cannot run, counted as failing", "script", ts.Name, "command", ts.Script, "err", err)
		case !errors.As(err, &ref) && refusal != "":
			refusal = ""
			log.Info("vrrp track script runs again", "script", ts.Name)
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
