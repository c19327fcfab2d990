// Command govs is the govs director: it serves virtual services (govs run),
// validates configurations (govs check) and shows itself working (govs demo).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/buildinfo"
)

// version is the release this binary was built from ("dev" unless the
// Makefile stamped it; see internal/buildinfo).
var version = buildinfo.Version()

func main() {
	root := &cobra.Command{
		Use:           "govs",
		Short:         "govs is a layer 4 load balancer in the Linux Virtual Server tradition",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Get().String(),
	}
	root.SetVersionTemplate("govs {{.Version}}\n")
	addGlobalFlags(root)
	root.AddCommand(runCmd(), checkCmd(), convertCmd(), demoCmd(), digestCmd(), simCmd(), versionCmd(), agentCmd(), logsCmd(), realserverCmd())
	addProductCmds(root)
	if err := root.Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "govs:", err)
		os.Exit(1)
	}
}

// exitCode is an error that only sets the exit status: its message has
// already been printed.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func asExit(err error, ec *exitCode) bool {
	e, ok := err.(exitCode)
	if ok {
		*ec = e
	}
	return ok
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the release, commit and build date",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "govs", buildinfo.Get()) },
	}
}
