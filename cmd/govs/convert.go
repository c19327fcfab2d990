package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/importer"
)

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
			out, warns, err := importer.Convert(file, src, lf.options())
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
