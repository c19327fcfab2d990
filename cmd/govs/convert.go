package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/config"
)

// loadFlags are the flags of the commands that read a configuration file:
// its format and keepalived's config id.
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

func (lf *loadFlags) options() config.LoadOptions {
	return config.LoadOptions{Format: lf.format, ConfigID: lf.configID}
}

// load reads and validates file, govs YAML or keepalived.conf, and checks
// on this system what its scripts need (check.go): govs check, run and
// reload all refuse what the other two would.
func (lf *loadFlags) load(file string) (*config.Config, []config.Warning, error) {
	cfg, warns, err := config.LoadAny(file, lf.options())
	if err != nil {
		return nil, warns, err
	}
	warns = append(warns, cfg.BGPWarnings()...) // flows a director change breaks (docs/bgp.md)
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

func convertCmd() *cobra.Command {
	var file string
	var lf *loadFlags
	cmd := &cobra.Command{
		Use:   "convert -c keepalived.conf",
		Short: "Print a keepalived.conf as govs YAML",
		Long: `Print the govs YAML equivalent of a keepalived.conf on stdout (includes, @ID
lines and $PARAMETERS as keepalived reads them), and on stderr one line per
option that has no govs equivalent: FILE:LINE:COL: warning: ... (ignored).
What cannot be converted (lb_kind DR or TUN, invalid values) is reported as
FILE:LINE:COL: message lines, and nothing is printed on stdout: exit 1.
The YAML loads back (govs check -c) to the same configuration as govs run -c
keepalived.conf uses. See docs/keepalived.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lf.format != config.FormatAuto && lf.format != config.FormatKeepalived {
				return fmt.Errorf("convert reads keepalived.conf files (--format keepalived), not %q", lf.format)
			}
			src, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read configuration: %w", err)
			}
			if lf.format == config.FormatAuto && config.DetectFormat(src) == config.FormatYAML {
				return errors.New(file + " looks like govs YAML already (use --format keepalived to read it as a keepalived.conf)")
			}
			out, warns, err := config.ConvertKeepalived(file, src, lf.options())
			printWarnings(cmd.ErrOrStderr(), warns)
			if err != nil {
				printConfigError(cmd, err)
				return exitCode(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# govs configuration converted from %s by govs convert\n", file)
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "the keepalived.conf to convert (required)")
	cmd.MarkFlagRequired("config")
	lf = addLoadFlags(cmd)
	return cmd
}
