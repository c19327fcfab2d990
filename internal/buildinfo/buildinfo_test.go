package buildinfo

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	// Stamped by the Makefile: the stamp wins over the toolchain's.
	i := resolve("v1.2.3", "0123456789ab", "2026-12-03T13:10:00Z", map[string]string{"vcs.revision": "ffff"})
	if i.Version != "v1.2.3" || i.Commit != "0123456789ab" || i.Date != "2026-12-03T13:10:00Z" {
		t.Errorf("stamped: %+v", i)
	}
	// go build in a checkout: dev, with the toolchain's revision.
	i = resolve("", "", "", map[string]string{"vcs.revision": "0123456789abcdef0123", "vcs.time": "2026-12-01T00:00:00Z", "vcs.modified": "true"})
	if i.Version != "dev" || i.Commit != "0123456789ab-dirty" || i.Date != "2026-12-01T00:00:00Z" {
		t.Errorf("vcs fallback: %+v", i)
	}
	// go build -buildvcs=false, or outside a checkout.
	i = resolve("", "", "", nil)
	if i.Version != "dev" || i.Commit != "unknown" || i.Date != "unknown" {
		t.Errorf("unstamped: %+v", i)
	}
	if s := i.String(); !strings.HasPrefix(s, "dev (commit unknown, built unknown, go") {
		t.Errorf("String() = %q", s)
	}
}
