// Package buildinfo says which build of govs is running: the release, the
// commit and the build date, stamped by the Makefile with
//
//	-ldflags "-X github.com/govs-lb/govs/internal/buildinfo.version=v1.2.3
//	          -X github.com/govs-lb/govs/internal/buildinfo.commit=0123abcd
//	          -X github.com/govs-lb/govs/internal/buildinfo.date=2026-12-03T13:10:00Z"
//
// Both binaries (govs and govsadm) print it the same way. A plain `go build`
// or `go run` is "dev", with the commit from the Go toolchain's VCS stamp
// when it recorded one (it does unless -buildvcs=false).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker; empty in unstamped builds.
var version, commit, date string

// Info describes one build.
type Info struct {
	Version string `json:"version"` // release (git describe), or "dev"
	Commit  string `json:"commit"`  // revision, "unknown" if nobody recorded it
	Date    string `json:"date"`    // build date (RFC 3339), or the commit's date, or "unknown"
	Go      string `json:"go"`      // Go toolchain version
}

// Get returns the running binary's build information.
func Get() Info {
	var vcs map[string]string
	if bi, ok := debug.ReadBuildInfo(); ok {
		vcs = map[string]string{}
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
	}
	return resolve(version, commit, date, vcs)
}

// resolve fills what the linker did not stamp from the toolchain's VCS
// settings (vcs.revision, vcs.time, vcs.modified).
func resolve(version, commit, date string, vcs map[string]string) Info {
	i := Info{Version: version, Commit: commit, Date: date, Go: runtime.Version()}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		if rev := vcs["vcs.revision"]; rev != "" {
			i.Commit = rev[:min(len(rev), 12)]
			if vcs["vcs.modified"] == "true" {
				i.Commit += "-dirty"
			}
		} else {
			i.Commit = "unknown"
		}
	}
	if i.Date == "" {
		i.Date = vcs["vcs.time"]
		if i.Date == "" {
			i.Date = "unknown"
		}
	}
	return i
}

// Version is the release alone, for logs and the API.
func Version() string { return Get().Version }

// String is the one line `NAME --version` prints after the program's name.
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s, %s %s/%s)", i.Version, i.Commit, i.Date, i.Go, runtime.GOOS, runtime.GOARCH)
}
