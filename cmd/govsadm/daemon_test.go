package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	connsync "github.com/govs-lb/govs/internal/sync"
)

// fakeSync is the sync as cmd/govs runs it (syncRunner), reduced to its
// roles: it starts with both, on eth1 with sync_id 5.
type fakeSync struct {
	mu             sync.Mutex
	master, backup bool
	iface          string
	syncID         int
}

func (f *fakeSync) Status() connsync.DaemonStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.master && !f.backup {
		return connsync.DaemonStatus{State: "stopped", Interface: "eth1", SyncID: 5}
	}
	return connsync.DaemonStatus{State: "running", Interface: f.iface, SyncID: uint8(f.syncID), Master: f.master, Backup: f.backup}
}

func (f *fakeSync) StartRole(role, iface string, syncID int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.master || f.backup {
		if (iface != "" && iface != f.iface) || (syncID >= 0 && syncID != f.syncID) {
			return &api.Error{Code: api.CodeRefused, Message: "the sync runs on " + f.iface + ": stop it first"}
		}
	} else {
		f.iface, f.syncID = "eth1", 5
		if iface != "" {
			f.iface = iface
		}
		if syncID >= 0 {
			f.syncID = syncID
		}
	}
	if (role == "master" && f.master) || (role == "backup" && f.backup) {
		return &api.Error{Code: api.CodeRefused, Message: "the " + role + " sync daemon is already running"}
	}
	f.master, f.backup = f.master || role == "master", f.backup || role == "backup"
	return nil
}

func (f *fakeSync) StopRole(role string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if (role == "master" && !f.master) || (role == "backup" && !f.backup) {
		return &api.Error{Code: api.CodeRefused, Message: "the " + role + " sync daemon is not running"}
	}
	f.master, f.backup = f.master && role != "master", f.backup && role != "backup"
	return nil
}

func TestDaemonCommands(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	if out, _, code := govsadm(t, sock, "", "-L", "--daemon"); code != 0 || out != "" {
		t.Errorf("without sync: %d %q", code, out)
	}
	// No sync section: nothing names the key.
	if _, msg, code := govsadm(t, sock, "", "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "3"); code != 255 ||
		!strings.Contains(msg, "no sync section in the configuration") || !strings.Contains(msg, "key_file") {
		t.Errorf("--start-daemon without a sync section: %d %q", code, msg)
	}

	log := slog.New(slog.DiscardHandler)
	d := director.New(log, nullDP{})
	cfg, _ := config.Parse("govs.yaml", []byte(cliConfig))
	d.Apply(cfg)
	s := api.New(api.Options{Director: d, Log: log, RateInterval: time.Hour})
	fs := &fakeSync{master: true, backup: true, iface: "eth1", syncID: 5}
	s.SetSync(fs)
	sock = filepath.Join(t.TempDir(), "govs.sock")
	if err := s.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close(context.Background()); d.Shutdown(0) }()

	for _, step := range []struct {
		args []string
		code int
		msg  string // in stderr
		list string // -L --daemon afterwards
	}{
		{nil, 0, "", "master sync daemon (mcast=eth1, syncid=5)\nbackup sync daemon (mcast=eth1, syncid=5)\n"},
		{[]string{"--stop-daemon", "master"}, 0, "", "backup sync daemon (mcast=eth1, syncid=5)\n"},
		{[]string{"--stop-daemon", "master"}, 255, "the master sync daemon is not running", "backup sync daemon (mcast=eth1, syncid=5)\n"},
		{[]string{"--start-daemon", "backup"}, 255, "already running", "backup sync daemon (mcast=eth1, syncid=5)\n"},
		{[]string{"--stop-daemon", "backup"}, 0, "", ""},
		{[]string{"--start-daemon", "master", "--mcast-interface", "eth2", "--syncid", "9"}, 0, "", "master sync daemon (mcast=eth2, syncid=9)\n"},
		{[]string{"--start-daemon", "backup", "--syncid", "3"}, 255, "stop it first", "master sync daemon (mcast=eth2, syncid=9)\n"},
		{[]string{"--start-daemon", "backup"}, 0, "", "master sync daemon (mcast=eth2, syncid=9)\nbackup sync daemon (mcast=eth2, syncid=9)\n"},
		// Settings the configuration owns are refused, not ignored.
		{[]string{"--start-daemon", "master", "--mcast-ttl", "2"}, 255, "TTL 1", ""},
		{[]string{"--start-daemon", "master", "--sync-maxlen", "1000"}, 255, "MTU", ""},
		{[]string{"--start-daemon", "master", "--mcast-group", "224.0.0.82"}, 255, "group", ""},
		{[]string{"--start-daemon", "master", "--mcast-port", "9000"}, 255, "port", ""},
		{[]string{"--start-daemon", "primary"}, 2, "illegal start-daemon parameter specified", ""},
		{[]string{"--start-daemon", "master", "--syncid", "256"}, 2, "illegal syncid specified", ""},
		{[]string{"--stop-daemon", "master", "--mcast-interface", "eth0"}, 2, "", ""},
	} {
		if step.args != nil {
			_, msg, code := govsadm(t, sock, "", step.args...)
			if code != step.code || !strings.Contains(msg, step.msg) {
				t.Errorf("%v: exit %d %q, want %d with %q", step.args, code, msg, step.code, step.msg)
			}
		}
		if step.list == "" && step.code != 0 {
			continue // a refused command: the list is checked by the next step
		}
		out, _, code := govsadm(t, sock, "", "-L", "--daemon")
		if code != 0 || out != step.list {
			t.Errorf("after %v: -L --daemon: %d %q, want %q", step.args, code, out, step.list)
		}
	}
}
