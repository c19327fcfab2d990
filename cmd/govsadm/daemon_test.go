package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	connsync "github.com/govs-lb/govs/internal/sync"
)

type fakeSync struct{}

func (fakeSync) Status() connsync.DaemonStatus {
	return connsync.DaemonStatus{State: "running", Interface: "eth1", SyncID: 5}
}

func TestListDaemon(t *testing.T) {
	sock, _ := daemonForTest(t, cliConfig)
	if out, _, code := govsadm(t, sock, "", "-L", "--daemon"); code != 0 || out != "" {
		t.Errorf("without sync: %d %q", code, out)
	}
	if _, msg, code := govsadm(t, sock, "", "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "3"); code != 255 ||
		!strings.Contains(msg, "add a sync section") {
		t.Errorf("--start-daemon: %d %q", code, msg)
	}

	log := slog.New(slog.DiscardHandler)
	d := director.New(log, nullDP{})
	cfg, _ := config.Parse("govs.yaml", []byte(cliConfig))
	d.Apply(cfg)
	s := api.New(api.Options{Director: d, Log: log, RateInterval: time.Hour})
	s.SetSync(fakeSync{})
	sock = filepath.Join(t.TempDir(), "govs.sock")
	if err := s.ServeUnix(sock); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close(context.Background()); d.Shutdown(0) }()
	out, _, code := govsadm(t, sock, "", "-L", "--daemon")
	if want := "master sync daemon (mcast=eth1, syncid=5)\nbackup sync daemon (mcast=eth1, syncid=5)\n"; code != 0 || out != want {
		t.Errorf("-L --daemon: %d %q, want %q", code, out, want)
	}
}
