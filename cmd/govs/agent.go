package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/agent"
)

// agentCmd is govs agent: the performance agent of a real server
// (docs/agent.md).
func agentCmd() *cobra.Command {
	var (
		listen, probe, procRoot, stateFile string
		allow                              []string
		port                               uint16
		interval, tau                      time.Duration
		debug                              bool
	)
	cmd := &cobra.Command{
		Use:   "agent --listen ADDR:PORT [--allow CIDR]... [--service-port N]",
		Short: "Answer HAProxy agent checks with a weight computed from this server's load",
		Long: `govs agent runs on a real server, unprivileged. Each connection to --listen
gets one line in HAProxy's agent-check protocol: a weight percentage computed
from CPU, load, memory, PSI and disk IO smoothed over --smoothing, the
operator's state (from --state-file: up, drain or maint; see "govs agent
state"), and govs's extra words (requests in flight on --service-port, probe
latency, the raw figures). Only clients in --allow are answered (loopback
when none is given). See docs/agent.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return fmt.Errorf("--listen ADDR:PORT is required")
			}
			var prefixes []netip.Prefix
			for _, a := range allow {
				p, err := parseAllow(a)
				if err != nil {
					return err
				}
				prefixes = append(prefixes, p)
			}
			lvl := slog.LevelInfo
			if debug {
				lvl = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := agent.Listen(ctx, agent.Config{Listen: listen, Allow: prefixes, ServicePort: port, ProbeURL: probe,
				ProcRoot: procRoot, StateFile: stateFile, Interval: interval, Tau: tau, Log: log})
			if err != nil {
				return err
			}
			who := "loopback only"
			if len(prefixes) > 0 {
				who = strings.Join(allow, ",")
			}
			log.Info("govs agent listening", "addr", s.Addr().String(), "allow", who, "reply", s.Reply())
			return s.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address and port to answer on (ADDR:PORT, e.g. 0.0.0.0:8485)")
	f.StringArrayVar(&allow, "allow", nil, "client network answered (CIDR or address; repeat); none: loopback only")
	f.Uint16Var(&port, "service-port", 0, "local TCP port of the service whose established connections are counted as in flight")
	f.StringVar(&probe, "probe-url", "", "URL fetched every interval; its round trip is reported as latency")
	f.StringVar(&procRoot, "proc-root", "/proc", "where /proc is (a fixture directory in tests)")
	f.StringVar(&stateFile, "state-file", agent.DefaultStateFile, "the operator's state file: up, drain or maint (missing: up)")
	f.DurationVar(&interval, "interval", agent.DefaultInterval, "sampling period")
	f.DurationVar(&tau, "smoothing", agent.DefaultTau, "time constant of the moving average of the figures")
	f.BoolVar(&debug, "debug", false, "log refused clients and failed probes")
	cmd.AddCommand(agentStateCmd())
	return cmd
}

// parseAllow reads a CIDR or a bare address.
func parseAllow(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("--allow %q: not a CIDR or an address", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func agentStateCmd() *cobra.Command {
	var stateFile string
	cmd := &cobra.Command{
		Use:   "state [up|drain|maint]",
		Short: "Show or set the operator's state the agent reports",
		Long: `With a word, writes it to the state file (atomically) for the running agent
to pick up within a second: drain (no new connections; established ones
finish), maint (out of service), up (back in service). Without, prints it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				st, err := agent.ReadStateFile(stateFile)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), st)
				return nil
			}
			st, ok := agent.ParseState(args[0])
			if !ok {
				return fmt.Errorf("state %q: want up, drain or maint", args[0])
			}
			if err := agent.WriteStateFile(stateFile, st); err != nil {
				return fmt.Errorf("state file: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateFile, "state-file", agent.DefaultStateFile, "the agent's state file")
	return cmd
}
