package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/accesslog"
)

// logsCmd is govs logs, the access-log analyser (docs/logs.md).
func logsCmd() *cobra.Command {
	var (
		reports, format, svg, since, until, term string
		opt                                      accesslog.Options
		minDur                                   time.Duration
		top                                      int
	)
	cmd := &cobra.Command{
		Use:   "logs [FILE...]",
		Short: "Analyse govs access logs (JSON lines; files, .gz, stdin)",
		Long: `govs logs reads govs access logs (docs/logs.md: one JSON object per line),
from the files given (gzip ones too, recognised by content) or stdin when
none, several files merged in time order, and prints reports:

  servers       per real server: connections, errors, error %, top error codes,
                connect time and duration percentiles, bytes
  terminations  connections per termination code
  clients       top clients by connections, bytes or errors (--sort, --top;
                bounded by --max-clients)
  services      as servers, per virtual service
  time          connections and errors per --bucket
  percentiles   connect time and duration percentiles
  gaps          silences of at least --gap in accepted connections (outages)

Memory stays bounded whatever the size of the logs. Bad lines are counted
and the first ones shown with their file and line; they are not fatal.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			opt.Reports = strings.Split(reports, ",")
			if svg != "" {
				opt.Reports = appendMissing(opt.Reports, "time", "percentiles")
			}
			if opt.Filter.Since, err = parseWhen("--since", since); err != nil {
				return err
			}
			if opt.Filter.Until, err = parseWhen("--until", until); err != nil {
				return err
			}
			if len(term) > 2 {
				return fmt.Errorf("--termination %q: one or two letters (e.g. S, SC, --)", term)
			}
			opt.Filter.Termination = term
			opt.Filter.MinDurationMs = float64(minDur) / float64(time.Millisecond)
			if format != "table" && format != "csv" && format != "json" {
				return fmt.Errorf("--format %q: want table, csv or json", format)
			}
			a, err := accesslog.NewAnalyser(opt)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				args = []string{"-"}
			}
			var srcs []*accesslog.Source
			defer func() {
				for _, s := range srcs {
					s.Close()
				}
			}()
			for _, name := range args {
				s, err := accesslog.Open(name, cmd.InOrStdin())
				if err != nil {
					return err
				}
				srcs = append(srcs, s)
			}
			if err := accesslog.Run(a, srcs...); err != nil {
				return err
			}
			return writeLogReports(cmd, a, strings.Split(reports, ","), format, svg, top)
		},
	}
	f := cmd.Flags()
	f.StringVar(&reports, "report", "servers", "report(s), comma-separated: "+strings.Join(accesslog.Reports, ", "))
	f.StringVar(&format, "format", "table", "output: table, csv or json")
	f.StringVar(&svg, "svg", "", "also draw the time histogram and latency percentiles into this SVG file")
	f.StringVar(&since, "since", "", "only lines at or after this time (RFC 3339, or a duration before now: 1h)")
	f.StringVar(&until, "until", "", "only lines before this time (RFC 3339, or a duration before now)")
	f.StringVar(&opt.Filter.Service, "service", "", "only this virtual service (its name)")
	f.StringVar(&opt.Filter.RealServer, "real-server", "", "only this real server (ADDRESS:PORT)")
	f.StringVar(&term, "termination", "", "only this termination code (two letters), or first letter")
	f.DurationVar(&minDur, "min-duration", 0, "only connections that lasted at least this long")
	f.IntVar(&top, "top", 0, "at most N rows (clients and gaps: 10 by default)")
	f.DurationVar(&opt.Bucket, "bucket", time.Minute, "time report's bucket (doubled if the span needs more than 10000)")
	f.DurationVar(&opt.Gap, "gap", time.Second, "gaps report: shortest silence reported")
	f.IntVar(&opt.MaxClients, "max-clients", 100000, "clients counted exactly; past that, counts are bounded estimates")
	f.StringVar(&opt.ClientSort, "sort", "conns", "clients report's order: conns, bytes or errors")
	return cmd
}

func appendMissing(list []string, names ...string) []string {
	for _, n := range names {
		found := false
		for _, x := range list {
			found = found || x == n
		}
		if !found {
			list = append(list, n)
		}
	}
	return list
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(flag, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixNano(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d).UnixNano(), nil
	}
	return 0, fmt.Errorf("%s %q: want an RFC 3339 time (2026-12-03T10:00:00Z) or a duration (1h30m)", flag, s)
}

func writeLogReports(cmd *cobra.Command, a *accesslog.Analyser, reports []string, format, svg string, top int) error {
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	for _, b := range a.BadSamples {
		fmt.Fprintln(errw, "govs logs: bad line:", b)
	}
	if a.Bad > uint64(len(a.BadSamples)) {
		fmt.Fprintf(errw, "govs logs: %d bad lines in all\n", a.Bad)
	}
	var tables []*accesslog.Table
	for _, r := range reports {
		t, err := a.Table(r, top)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	switch format {
	case "json":
		if err := a.WriteJSON(out, tables); err != nil {
			return err
		}
	default:
		for i, t := range tables {
			if len(tables) > 1 {
				if i > 0 {
					fmt.Fprintln(out)
				}
				fmt.Fprintf(out, "== %s\n", t.Title)
			}
			var err error
			if format == "csv" {
				err = accesslog.WriteCSV(out, t)
			} else {
				err = accesslog.WriteTable(out, t)
			}
			if err != nil {
				return err
			}
		}
		if format == "table" {
			fmt.Fprintf(out, "# %d lines, %d matched, %d bad\n", a.Lines, a.Matched, a.Bad)
		}
	}
	if svg != "" {
		f, err := os.Create(svg)
		if err != nil {
			return err
		}
		if err := a.WriteSVG(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}
