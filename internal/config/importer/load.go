package importer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// Options say how a configuration file is read.
type Options struct {
	// Format is config.FormatAuto (or empty), FormatYAML or FormatKeepalived.
	// Auto decides with config.DetectFormat.
	Format string
	// ConfigID is keepalived's -i/--config-id: the id that @ID lines of a
	// keepalived.conf are compared with. Empty: the host name up to its
	// first dot, as keepalived.
	ConfigID string
	// FS is where keepalived includes are read from (tests). Nil: the
	// operating system's files.
	FS fs.FS
}

// Load reads a govs YAML file or a keepalived.conf, as opts.Format says, and
// validates it. The warnings are those of a keepalived.conf: options with no
// govs equivalent. Errors are a config.ErrorList naming FILE:LINE:COL, in
// the keepalived file for a keepalived.conf.
func Load(path string, opts Options) (*config.Config, []config.Warning, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read configuration: %w", err)
	}
	format := opts.Format
	if format == "" || format == config.FormatAuto {
		format = config.DetectFormat(src)
	}
	switch format {
	case config.FormatYAML:
		c, err := config.Parse(path, src)
		return c, nil, err
	case config.FormatKeepalived:
		return Parse(path, src, opts)
	}
	return nil, nil, fmt.Errorf("unknown configuration format %q (auto, yaml or keepalived)", opts.Format)
}

// Parse reads src, the keepalived.conf named file (its includes are read
// relative to file's directory), maps it onto the model and validates it.
func Parse(file string, src []byte, opts Options) (*config.Config, []config.Warning, error) {
	c, warns, errs := Read(file, src, opts)
	if c == nil {
		return nil, warns, errs.Err()
	}
	errs = appendErrs(errs, c.Validate())
	if len(errs) > 0 {
		return nil, warns, errs.Err()
	}
	return c, warns, nil
}

// Convert is what govs convert prints: the govs YAML equivalent of the
// keepalived.conf src, or the errors that keep it from loading. The YAML
// holds what the keepalived file says, not govs's defaults, and loads back
// with config.Load to the same model as Parse's.
func Convert(file string, src []byte, opts Options) ([]byte, []config.Warning, error) {
	c, warns, errs := Read(file, src, opts)
	if c == nil {
		return nil, warns, errs.Err()
	}
	out, err := config.EncodeYAML(c)
	if err != nil {
		return nil, warns, err
	}
	errs = appendErrs(errs, c.Validate())
	if len(errs) > 0 {
		return nil, warns, errs.Err()
	}
	return out, warns, nil
}

// Read parses and imports src without validating the model; the model is
// nil when the file could not be parsed.
func Read(file string, src []byte, opts Options) (*config.Config, []config.Warning, config.ErrorList) {
	f, err := keepalived.Parse(file, src, keepalived.Options{ConfigID: opts.ConfigID, FS: opts.FS})
	var warns []config.Warning
	for _, w := range f.Warnings {
		warns = append(warns, config.Warning{Pos: config.Pos(w.Pos), Msg: w.Msg})
	}
	if err != nil {
		var errs config.ErrorList
		var kl keepalived.ErrorList
		if errors.As(err, &kl) {
			for _, e := range kl {
				errs = append(errs, config.Error{Pos: config.Pos(e.Pos), Msg: e.Msg})
			}
		} else {
			errs.Add(config.Pos{File: file}, "%v", err)
		}
		return nil, warns, errs
	}
	c, w, errs := Import(f)
	return c, append(warns, w...), errs
}

// appendErrs adds Validate's errors to errs, each once: the copies a
// virtual_server_group makes of its block's real servers all point at the
// same line, and so do their errors.
func appendErrs(errs config.ErrorList, err error) config.ErrorList {
	if err == nil {
		return errs
	}
	var l config.ErrorList
	if !errors.As(err, &l) {
		return append(errs, config.Error{Msg: err.Error()})
	}
	seen := map[config.Error]bool{}
	for _, e := range errs {
		seen[e] = true
	}
	for _, e := range l {
		if !seen[e] {
			seen[e] = true
			errs = append(errs, e)
		}
	}
	return errs
}
