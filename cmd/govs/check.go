package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/config"
)

func checkCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a configuration without running it",
		Long: `Validate a configuration without running it. Prints "configuration OK" and exits 0,
or prints one line per error, FILE:LINE:COL: message, and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.Load(file); err != nil {
				printConfigError(cmd, err)
				return exitCode(1)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file (required)")
	cmd.MarkFlagRequired("config")
	return cmd
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
