package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// addProductCmds adds what packaging needs of the command tree: the hidden
// `govs man DIR` that writes the man pages from the command definitions,
// so that they cannot drift from --help. `govs completion bash|zsh|fish|
// powershell` is cobra's own.
func addProductCmds(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:    "man DIR",
		Short:  "Write the govs man pages (section 1) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // the pages stay the same from build to build
			hdr := &doc.GenManHeader{Title: "GOVS", Section: "1", Source: "govs " + version, Manual: "govs manual"}
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			n, _ := filepath.Glob(filepath.Join(dir, "govs*.1"))
			fmt.Fprintf(cmd.OutOrStdout(), "%d man pages written to %s\n", len(n), dir)
			return nil
		},
	})
}

// defaultConfigFile is what `govs run` reads without -c: where the
// packages and `make install` put the configuration.
const defaultConfigFile = "/etc/govs/govs.yaml"

// configDefaulted says that `govs run` was given no -c, for the log.
var configDefaulted bool

// defaultConfig gives the file `govs run` reads: -c FILE, else the default
// one, which must then exist (an error says both what was missing and how
// to name another file).
func defaultConfig(file string) (string, error) {
	if file != "" {
		return file, nil
	}
	if _, err := os.Stat(defaultConfigFile); err != nil {
		return "", fmt.Errorf("no -c FILE given and the default configuration is unreadable: %w", err)
	}
	configDefaulted = true
	return defaultConfigFile, nil
}

// logConfigSource says which file a `govs run` without -c reads, so that
// nobody wonders where the running configuration came from.
func logConfigSource(log *slog.Logger, file string) {
	if configDefaulted {
		log.Info("no -c given: reading the default configuration file", "config", file)
	}
}
