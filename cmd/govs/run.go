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

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/forward"
	"github.com/govs-lb/govs/internal/vrrp/vrrpd"
)

func runCmd() *cobra.Command {
	var file string
	var lf *loadFlags
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the director in the foreground",
		Long: `Run the director in the foreground until SIGINT or SIGTERM: then stop accepting,
let established connections finish for up to grace_period, and exit 0.
SIGHUP reloads FILE; an invalid file is rejected, logged, and the running
configuration kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warns, err := lf.load(file)
			if err != nil {
				printWarnings(cmd.ErrOrStderr(), warns)
				printConfigError(cmd, err)
				return exitCode(1)
			}
			return run(cmd.ErrOrStderr(), file, lf, cfg, warns, socketPath(cmd, cfg))
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file, govs YAML or keepalived.conf (required)")
	cmd.MarkFlagRequired("config")
	lf = addLoadFlags(cmd)
	return cmd
}

// logSettings are the logger's adjustable parts, changed by a reload.
type logSettings struct {
	level slog.LevelVar
}

func newLogger(w io.Writer, l *config.Logging, ls *logSettings) *slog.Logger {
	ls.apply(l)
	opts := &slog.HandlerOptions{Level: &ls.level}
	if l != nil && l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
	raiseFileLimit(log)
	logWarnings(log, warns)

	dp := newDataplane(log)
	d := director.New(log, dp)
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
	vd := vrrpd.New(log, vrrpd.Options{Services: d})
	srv.SetVRRP(vd)
	sr, err := startSync(log, cfg, vd) // before VRRP: it may hold it in backup (sync.go)
	if err != nil {
		log.Error("cannot start", "err", err)
		d.Shutdown(0)
		return exitCode(1)
	}
	defer sr.stop()
	if sr != nil {
		srv.SetSync(sr.d)
	}
	if err := vd.Apply(cfg); err != nil {
		log.Error("cannot start", "err", err)
		vd.Stop()
		d.Shutdown(0)
		return exitCode(1)
	}
	log.Info("govs running", "version", version, "config", file, "virtual_services", len(cfg.VirtualServers))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			ok := reload(log, &ls, d, dp, file, lf) // its result goes to /metrics
			srv.ConfigReloaded(ok, time.Now())
			if err := vd.Apply(d.Config()); err != nil { // unchanged instances keep running
				log.Error("vrrp reload failed", "err", err)
			}
			sr.reload(d.Config())
			continue
		}
		grace := d.Config().GracePeriod.D()
		log.Info("shutting down", "signal", sig.String(), "grace", grace)
		signal.Stop(sigs)
		vd.Stop() // priority 0 first: a backup takes over while we drain
		if err := d.Shutdown(grace); err != nil {
			log.Warn("shutdown", "err", err)
		}
		log.Info("stopped")
		return nil
	}
	return nil
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
	logWarnings(log, warns)
	log.Info("configuration reloaded", "config", file, "virtual_services", len(cfg.VirtualServers))
	return true
}

// addGlobalFlags adds the flags every govs command takes.
func addGlobalFlags(root *cobra.Command) {
	root.PersistentFlags().String("socket", api.DefaultSocket,
		"control socket of the API and govsadm (env "+api.SocketEnv+"; else api.socket of the configuration)")
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
	return api.DefaultSocket
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
