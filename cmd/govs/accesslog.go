package main

import (
	"log/slog"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/config"
)

// applyAccessLog opens the access-log file or syslog sink of l
// (logging.access_log), or reopens the current one when the target is
// unchanged: a SIGHUP after logrotate moved the file writes to a new one.
// On error the running sink is kept.
func applyAccessLog(log *slog.Logger, l *config.Logging) error {
	target := ""
	if l != nil {
		target = l.AccessLog.Target()
	}
	cur := accesslog.Current()
	if cur != nil && cur.Target() == target {
		cur.Reopen()
		return nil
	}
	var w *accesslog.Writer
	if target != "" {
		var err error
		if w, err = accesslog.OpenWriter(target, log); err != nil {
			return err
		}
		log.Info("access log", "target", target)
	}
	if old := accesslog.SetWriter(w); old != nil {
		old.Close()
	}
	return nil
}

// reopenAccessLog is SIGUSR1: reopen the file (logrotate), reconnect to
// the syslog server.
func reopenAccessLog() {
	if w := accesslog.Current(); w != nil {
		w.Reopen()
	}
}

// closeAccessLog writes what is queued and closes the sink, at exit.
func closeAccessLog() {
	if old := accesslog.SetWriter(nil); old != nil {
		old.Close()
	}
}
