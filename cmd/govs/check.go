package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/forward/nft"
)

func checkCmd() *cobra.Command {
	var file string
	var kernel bool
	var lf *loadFlags
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a configuration without running it",
		Long: `Validate a configuration without running it. Prints "configuration OK" and exits 0,
or prints one line per error, FILE:LINE:COL: message, and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kernel {
				if err := checkKernel(cmd); err != nil || file == "" {
					return err
				}
			} else if file == "" {
				return errors.New(`required flag(s) "config" not set`)
			}
			_, warns, err := lf.load(file)
			printWarnings(cmd.ErrOrStderr(), warns)
			if err != nil {
				printConfigError(cmd, err)
				return exitCode(1)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file (required unless --kernel)")
	cmd.Flags().BoolVar(&kernel, "kernel", false, "probe what the kernel offers nat and fullnat forwarding")
	lf = addLoadFlags(cmd)
	return cmd
}

// checkKernel prints what the kernel offers the kernel dataplane; it fails
// when nat and fullnat forwarding cannot run here.
func checkKernel(cmd *cobra.Command) error {
	rep := nft.ProbeKernel(0)
	fmt.Fprintln(cmd.OutOrStdout(), "kernel:", rep.String())
	if err := rep.Err(); err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return exitCode(1)
	}
	fmt.Fprintln(cmd.OutOrStdout(), "kernel OK: nat and fullnat forwarding available")
	if err := rep.DRErr(); err != nil {
		fmt.Fprintln(cmd.OutOrStdout(), "dr forwarding not available:", err)
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), "kernel OK: dr forwarding available")
	}
	fmt.Fprintln(cmd.OutOrStdout(), nft.TUNErr())
	return nil
}

// printConfigError prints one line per configuration error.
func printConfigError(cmd *cobra.Command, err error) {
	var list config.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
		}
		return
	}
	fmt.Fprintln(cmd.ErrOrStderr(), err)
}

// checkHost adds to a valid configuration's checks those that read this
// system: the scripts it runs and who runs them (config.CheckScripts).
func checkHost(cfg *config.Config, warns []config.Warning) (*config.Config, []config.Warning, error) {
	more, err := cfg.CheckScripts()
	warns = append(warns, more...)
	if err != nil {
		return nil, warns, err
	}
	return cfg, warns, nil
}
