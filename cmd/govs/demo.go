package main

import (
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/govs-lb/govs/internal/demo"
)

func demoCmd() *cobra.Command {
	o := demo.Options{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show govs balancing real traffic over local real servers (no setup, no root)",
		Long: `Start three HTTP real servers of different speeds on loopback, a govs director in
front of them, a light, rate-limited load and the dashboard, and print a live
per-backend summary.
Stops on Ctrl-C, or after --duration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
			o.Live = term.IsTerminal(int(os.Stdout.Fd()))
			return demo.Run(ctx, cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:8080", "address of the demo virtual service")
	cmd.Flags().StringVar(&o.Scheduler, "scheduler", "wlc", "scheduler to demonstrate")
	cmd.Flags().StringVar(&o.Dashboard, "dashboard", "127.0.0.1:9090", "address of the dashboard (read-only, loopback)")
	cmd.Flags().IntVar(&o.Rate, "rate", 200, "requests per second (each on a new connection)")
	cmd.Flags().DurationVar(&o.Duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	cmd.Flags().DurationVar(&o.Interval, "interval", time.Second, "summary period")
	return cmd
}
