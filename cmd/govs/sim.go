package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/sim"
)

func simCmd() *cobra.Command {
	var (
		scenarios, schedulers []string
		seed                  uint64
		requests, parallel    int
		format, plot          string
		list                  bool
		prewarm               []string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Compare schedulers on simulated real servers (latency percentiles, no network)",
		Long: `Run a discrete-event simulation of a director and its real servers under each
scheduler and print latency percentiles, throughput and the spread of the servers'
utilisation. The schedulers are govs's own code, driven as the proxy drives them.

Scenarios are built in (homogeneous, heterogeneous, noisy-neighbour, failure, burst)
or YAML files (see docs/sim.md). A run is deterministic for a given --seed.
"oracle" is a reference, not a scheduler: it knows each server's true speed and queue.`,
		Example: `  govs sim
  govs sim --scenario heterogeneous --schedulers wlc,prequal,adaptive-weights --requests 1000000
  govs sim --scenario my-service.yaml --format csv > results.csv
  govs sim --plot latency.svg
  govs sim --scenario standby --prewarm forecast-only,prewarm --schedulers wlc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if list {
				width := 0
				for _, name := range sim.Builtins() {
					width = max(width, len(name))
				}
				for _, name := range sim.Builtins() {
					sc, err := sim.Load(name)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "%-*s %s\n", width, name, sc.Description)
				}
				return nil
			}
			write := map[string]func(io.Writer, []*sim.Result) error{
				"table": sim.WriteTable, "csv": sim.WriteCSV, "json": sim.WriteJSON,
			}[format]
			if write == nil {
				return fmt.Errorf("unknown format %q (table, csv or json)", format)
			}
			if len(scenarios) == 0 {
				scenarios = sim.Builtins()
			}
			su := &sim.Suite{Schedulers: schedulers, Seed: seed, Requests: requests, Parallel: parallel}
			for _, name := range scenarios {
				sc, err := sim.Load(strings.TrimSpace(name))
				if err != nil {
					return err
				}
				if len(prewarm) == 0 || sc.Prewarm == nil {
					su.Scenarios = append(su.Scenarios, sc)
					continue
				}
				for _, mode := range prewarm {
					c, err := sc.WithPrewarmMode(strings.TrimSpace(mode))
					if err != nil {
						return err
					}
					su.Scenarios = append(su.Scenarios, c)
				}
			}
			rs, err := su.Run()
			if err != nil {
				return err
			}
			if plot != "" {
				f, err := os.Create(plot)
				if err != nil {
					return err
				}
				if err := sim.WriteSVG(f, rs); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			return write(out, rs)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&scenarios, "scenario", nil, "built-in scenario name or YAML file; repeatable or comma separated (default: every built-in)")
	f.StringSliceVar(&schedulers, "schedulers", sim.DefaultSchedulers, "schedulers to compare, comma separated")
	f.Uint64Var(&seed, "seed", 1, "random seed: the same seed gives the same results")
	f.IntVar(&requests, "requests", 0, "requests per run (default: the scenario's, 200000 for the built-ins)")
	f.IntVar(&parallel, "parallel", 0, "runs at once (default: the number of CPUs)")
	f.StringVar(&format, "format", "table", "output format: table, csv or json")
	f.StringVar(&plot, "plot", "", "also draw the latency distributions into this SVG file")
	f.BoolVar(&list, "list", false, "list the built-in scenarios and exit")
	f.StringSliceVar(&prewarm, "prewarm", nil, "run each scenario with standby servers in these pre-warming modes (forecast-only, prewarm), as NAME/MODE")
	return cmd
}
