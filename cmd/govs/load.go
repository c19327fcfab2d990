package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/importer"
)

// loadFlags are the flags of the commands that read a configuration file
// (run, check, convert): its format and keepalived's config id.
type loadFlags struct {
	format   string
	configID string
}

// addLoadFlags adds --format and --config-id to cmd.
func addLoadFlags(cmd *cobra.Command) *loadFlags {
	lf := &loadFlags{}
	cmd.Flags().StringVar(&lf.format, "format", config.FormatAuto,
		"configuration format: auto, yaml or keepalived (auto: YAML when the first line that is not blank or a comment is KEY:, else keepalived.conf)")
	cmd.Flags().StringVar(&lf.configID, "config-id", "",
		"keepalived.conf: the id @ID lines are compared with, as keepalived -i (default: the host name up to its first dot)")
	return lf
}

func (lf *loadFlags) options() importer.Options {
	return importer.Options{Format: lf.format, ConfigID: lf.configID}
}

// load reads and validates file, govs YAML or keepalived.conf, and checks
// on this system what its scripts need (check.go): govs check, run and
// reload all refuse what the other two would.
func (lf *loadFlags) load(file string) (*config.Config, []config.Warning, error) {
	cfg, warns, err := importer.Load(file, lf.options())
	if err != nil {
		return nil, warns, err
	}
	warns = append(warns, cfg.BGPWarnings()...)  // flows a director change breaks (docs/bgp.md)
	warns = append(warns, cfg.VRRPWarnings()...) // what keepalived changes and runs anyway (AH and state MASTER)
	return checkHost(cfg, warns)
}

// printWarnings prints one line per warning: FILE:LINE:COL: warning: ...
func printWarnings(w io.Writer, warns []config.Warning) {
	for _, x := range warns {
		fmt.Fprintln(w, x.String())
	}
}

// logWarnings logs the warnings of a configuration being applied.
func logWarnings(log *slog.Logger, warns []config.Warning) {
	for _, x := range warns {
		log.Warn("configuration: " + x.String())
	}
}
