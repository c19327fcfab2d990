package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoServer keeps govsadm a client: it links the API's documents
// and client (internal/apiclient), not the server, whose director,
// dataplanes, sync and BGP made govsadm 16.3 MB stripped instead of 6.8.
func TestLinksNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rest, ok := strings.CutPrefix(pkg, "github.com/govs-lb/govs/internal/")
		if !ok {
			continue
		}
		for _, server := range []string{"api", "director", "forward", "sync", "bgp", "vrrp", "health", "discovery"} {
			if rest == server || strings.HasPrefix(rest, server+"/") && rest != "discovery/status" {
				t.Errorf("govsadm links %s: a client needs internal/apiclient only", pkg)
			}
		}
	}
}
