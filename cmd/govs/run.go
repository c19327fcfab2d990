package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/alert"
	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/bgp"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
	"github.com/govs-lb/govs/internal/health"
	"github.com/govs-lb/govs/internal/logging"
	"github.com/govs-lb/govs/internal/vrrp/vrrpd"
)

func runCmd() *cobra.Command {
	var file string
	var lf *loadFlags
	cmd := &cobra.Command{
		Use:   "run [-c FILE]",
		Short: "Run the director in the foreground",
		Long: `Run the director in the foreground until SIGINT or SIGTERM: then stop accepting,
let established connections finish for up to grace_period, and exit 0.
A second SIGINT or SIGTERM during the grace period closes what is left at
once and exits 0. SIGHUP reloads FILE; an invalid file is rejected, logged,
and the running configuration kept. Without -c, FILE is ` + defaultConfigFile + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := defaultConfig(file)
			if err != nil {
				return err
			}
			cfg, warns, err := lf.load(file)
			if err != nil {
				printWarnings(cmd.ErrOrStderr(), warns)
				printConfigError(cmd, err)
				return exitCode(1)
			}
			return run(cmd.ErrOrStderr(), file, lf, cfg, warns, socketPath(cmd, cfg))
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file, govs YAML or keepalived.conf (default "+defaultConfigFile+")")
	lf = addLoadFlags(cmd)
	return cmd
}

// logSettings are the logger's adjustable parts, changed by a reload.
type logSettings struct {
	level slog.LevelVar
	// limit keeps one repeated warning (a refused connection, a dropped
	// datagram) from flooding the log under attack.
	limit *logging.RateLimit
}

func newLogger(w io.Writer, l *config.Logging, ls *logSettings) *slog.Logger {
	ls.apply(l)
	opts := &slog.HandlerOptions{Level: &ls.level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if l != nil && l.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	ls.limit = logging.NewRateLimit(h, logging.Limits{})
	return slog.New(ls.limit)
}

// flushLoop reports suppressed log lines every second until stop closes.
func (ls *logSettings) flushLoop(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			ls.limit.FlushAll(context.Background())
			return
		case <-t.C:
			ls.limit.Flush(context.Background())
		}
	}
}

func (ls *logSettings) apply(l *config.Logging) {
	lvl := slog.LevelInfo
	if l != nil && l.Level != "" {
		lvl.UnmarshalText([]byte(l.Level)) // validated by config
	}
	ls.level.Set(lvl)
}

func run(stderr io.Writer, file string, lf *loadFlags, cfg *config.Config, warns []config.Warning, socket string) error {
	var ls logSettings
	log := newLogger(stderr, cfg.Logging, &ls)
	stopFlush := make(chan struct{})
	flushed := make(chan struct{})
	go func() { ls.flushLoop(stopFlush); close(flushed) }()
	defer func() { close(stopFlush); <-flushed }()
	raiseFileLimit(log)
	logWarnings(log, warns)
	logConfigSource(log, file)
	notify := newNotifier(log)
	if err := applyAccessLog(log, cfg.Logging); err != nil {
		log.Error("cannot start", "err", err)
		return exitCode(1)
	}
	defer closeAccessLog()

	dp := newDataplane(log)
	sp := newStoppable(dp)
	d := director.New(log, sp)
	alerts := alert.New(log)
	alerts.Apply(cfg)
	defer alerts.Close(5 * time.Second) // the stop's alerts go out
	d.SetEventHook(healthAlerts(alerts))
	if err := d.Apply(cfg); err != nil {
		log.Error("cannot start", "err", err)
		return exitCode(1)
	}
	srv, err := startAPI(log, d, cfg, socket)
	if err != nil {
		log.Error("cannot start", "err", err)
		d.Shutdown(0)
		return exitCode(1)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close(ctx)
	}()
	// VRRP starts once the dataplane is ready: a backup keeps it ready
	// without the VIPs, which move with the master.
	vd := vrrpd.New(log, vrrpd.Options{Services: d, OnState: alerts.VRRP, OnGroupState: alerts.VRRPGroup})
	srv.SetVRRP(vd)
	sr, err := startSync(log, cfg, d, dp, vd) // before VRRP: it may hold it in backup (sync.go)
	if err != nil {
		log.Error("cannot start", "err", err)
		d.Shutdown(0)
		return exitCode(1)
	}
	defer sr.stop()
	if sr != nil {
		srv.SetSync(sr)
	}
	if err := vd.Apply(cfg); err != nil {
		log.Error("cannot start", "err", err)
		vd.Stop()
		d.Shutdown(0)
		return exitCode(1)
	}
	bd, err := startBGP(log, d, srv, cfg) // bgp.go
	if err != nil {
		log.Error("cannot start", "err", err)
		vd.Stop()
		d.Shutdown(0)
		return exitCode(1)
	}
	disc := startDiscovery(log, d, srv, cfg) // discovery.go
	defer disc.Stop()
	// Signals are caught before "govs running" is logged: whoever waits
	// for that line (an init script, a test) may signal at once, and a
	// SIGHUP or SIGTERM not yet caught would kill govs without a drain.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	log.Info("govs running", "version", version, "config", file, "virtual_services", len(cfg.VirtualServers))
	notify.ready(len(cfg.VirtualServers))
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGUSR1 { // logrotate: reopen the access log
			reopenAccessLog()
			continue
		}
		if sig == syscall.SIGHUP {
			notify.reloading()
			// The file is reopened even if the reload is rejected.
			reopenAccessLog()
			ok := reload(log, &ls, d, dp, file, lf) // its result goes to /metrics
			alerts.Apply(d.Config())
			srv.ConfigReloaded(ok, time.Now())
			disc.Apply(d.Config())
			if err := vd.Apply(d.Config()); err != nil { // unchanged instances keep running
				log.Error("vrrp reload failed", "err", err)
			}
			sr.reload(d.Config())
			reloadBGP(log, bd, d.Config())
			notify.ready(len(d.Config().VirtualServers))
			continue
		}
		notify.stopping()
		stop(log, sig, d, vd, bd, sp, srv, sigs)
		return nil
	}
	return nil
}

// healthAlerts turns the director's health events into alerts: a real
// server going from up to down or back, a service gaining or losing its
// quorum, the forecast crossing a service's capacity.
func healthAlerts(a *alert.Sender) func(director.HealthEvent) {
	isUp := func(s string) bool { return s == health.StateUp || s == health.StateDraining }
	return func(ev director.HealthEvent) {
		if ev.Kind == director.CapacityAlertKind {
			a.Capacity(ev.Key, ev.To == "capacity exceeded", ev.Reason, ev.Time)
			return
		}
		if !ev.Backend.IsValid() {
			var w int
			fmt.Sscanf(ev.Reason, "live weight %d", &w)
			if ev.From != ev.To {
				a.Quorum(ev.Key, ev.To == "quorum up", w, ev.Time)
			}
			return
		}
		if ev.From == "" || isUp(ev.From) == isUp(ev.To) {
			return
		}
		a.RealServer(ev.Key, ev.Backend, isUp(ev.To), ev.Reason, ev.Time)
	}
}

// stop drains: listeners close, established connections go on until they
// end or the grace period passes. A second SIGINT/SIGTERM meanwhile closes
// them at once and removes the control socket; govs then exits 0 too.
func stop(log *slog.Logger, sig os.Signal, d *director.Director, vd *vrrpd.Daemon, bd *bgp.Daemon, sp *stoppable, srv *api.Server, sigs <-chan os.Signal) {
	grace := d.Config().GracePeriod.D()
	log.Info("shutting down", "signal", sig.String(), "grace", grace)
	bd.Withdraw() // routes withdrawn first: the router moves new flows while we drain
	vd.Stop()     // priority 0 first: a backup takes over while we drain
	defer bd.Stop()
	done := make(chan error, 1)
	go func() { done <- d.Shutdown(grace) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Warn("shutdown", "err", err)
			}
			log.Info("stopped")
			return
		case sig := <-sigs:
			if sig == syscall.SIGHUP || sig == syscall.SIGUSR1 {
				reopenAccessLog()
				log.Info("reload ignored: shutting down")
				continue
			}
			n := sp.closeNow()
			log.Warn(fmt.Sprintf("second signal: closing %d connections now", n), "signal", sig.String(), "connections", n)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			srv.Close(ctx) // removes the control socket at once
			cancel()
		}
	}
}

// reload applies file again; any error keeps the running configuration.
// It reports whether the file was applied.
func reload(log *slog.Logger, ls *logSettings, d *director.Director, dp *forward.Multi, file string, lf *loadFlags) bool {
	old := d.Config()
	cfg, warns, err := lf.load(file)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				log.Error("reload rejected, running configuration kept", "err", e.Error())
			}
		} else {
			log.Error("reload rejected, running configuration kept", "err", err)
		}
		return false
	}
	if err := d.Reload(cfg); err != nil {
		log.Error("reload failed, running configuration kept", "err", err)
		return false
	}
	if !reflect.DeepEqual(apiSettings(cfg.API), apiSettings(old.API)) {
		log.Warn("the api settings changed; they take effect when govs restarts")
	}
	ls.apply(cfg.Logging)
	if err := applyAccessLog(log, cfg.Logging); err != nil {
		log.Error("access log unchanged", "err", err)
	}
	logWarnings(log, warns)
	log.Info("configuration reloaded", "config", file, "virtual_services", len(cfg.VirtualServers))
	return true
}

// addGlobalFlags adds the flags every govs command takes.
func addGlobalFlags(root *cobra.Command) {
	root.PersistentFlags().String("socket", "",
		"control socket of the API and govsadm (env "+api.SocketEnv+"; else api.socket of the configuration; else "+
			api.DefaultSocket+" as root, $XDG_RUNTIME_DIR/govs.sock or $TMPDIR/govs-UID/govs.sock as another user)")
}

// socketPath is the control socket: --socket, else $GOVS_SOCKET, else the
// configuration's api.socket, else the default.
func socketPath(cmd *cobra.Command, cfg *config.Config) string {
	if f := cmd.Flag("socket"); f != nil && f.Changed {
		return f.Value.String()
	}
	if s := os.Getenv(api.SocketEnv); s != "" {
		return s
	}
	if cfg.API != nil && cfg.API.Socket != "" {
		return cfg.API.Socket
	}
	return api.DefaultSocketPath()
}

// startAPI serves the control API on the socket and, if configured, on TCP.
// A socket that cannot be served is logged, not fatal (the director runs
// on, unreachable by govsadm); a configured TCP listener that cannot start
// is fatal.
func startAPI(log *slog.Logger, d *director.Director, cfg *config.Config, socket string) (*api.Server, error) {
	srv := api.New(api.Options{Director: d, Log: log, Version: version})
	if err := srv.ServeUnix(socket); err != nil {
		log.Error("control API unavailable: govsadm cannot reach this director", "err", err)
	}
	if a := cfg.API; a != nil && a.HTTP != "" {
		_, err := srv.ServeTCP(api.TCPOptions{Addr: a.HTTP, TokenFile: a.TokenFile, ReadTokenFile: a.ReadTokenFile, TLSCert: a.TLSCert, TLSKey: a.TLSKey})
		if err != nil {
			srv.Close(context.Background())
			return nil, err
		}
	}
	return srv, nil
}

// apiSettings are the parts of the api section a reload cannot change.
func apiSettings(a *config.API) config.API {
	if a == nil {
		return config.API{}
	}
	// AllowScripts is not among them: the API reads it at each request.
	return config.API{Socket: a.Socket, HTTP: a.HTTP, TokenFile: a.TokenFile, ReadTokenFile: a.ReadTokenFile,
		TLSCert: a.TLSCert, TLSKey: a.TLSKey}
}

// raiseFileLimit lifts the open-file limit: every proxied connection holds
// two descriptors, and the default soft limit (Go raises it to the hard one)
// is too low for a director. Root may raise the hard limit too.
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	const want = 1 << 20
	if lim.Max < want && os.Geteuid() == 0 {
		if nrOpen, err := readUint("/proc/sys/fs/nr_open"); err == nil {
			n := min(uint64(want), nrOpen)
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err == nil {
				lim.Cur, lim.Max = n, n
			}
		}
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	log.Debug("open file limit", "limit", lim.Cur)
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var n uint64
	_, err = fmt.Sscan(string(b), &n)
	return n, err
}
