package health

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/govs-lb/govs/internal/config"
)

// TestHTTPCheckURLs checks keepalived's semantics of several url blocks: a
// real server is up only while every URL answers as its entry expects.
// Three real HTTP servers on loopback serve /a and /b; the check, read from
// a configuration with urls, wants 200 on /a and /b's body digest. When /b
// fails on one server (status, then body), that server's check fails, naming
// the URL, and the others' pass.
func TestHTTPCheckURLs(t *testing.T) {
	const bodyB = "b is fine\n"
	type backend struct {
		addr  netip.AddrPort
		bad   atomic.Int32 // 0 fine, 1 /b answers 500, 2 /b answers another body
		hosts atomic.Value
	}
	var backends [3]*backend
	for i := range backends {
		b := &backend{}
		b.hosts.Store("")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b.addr = netip.MustParseAddrPort(ln.Addr().String())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hosts.Store(b.hosts.Load().(string) + r.URL.Path + "@" + r.Host + " ")
			switch {
			case r.URL.Path == "/a":
				fmt.Fprint(w, "a\n")
			case r.URL.Path == "/b" && b.bad.Load() == 1:
				http.Error(w, "broken", http.StatusInternalServerError)
			case r.URL.Path == "/b" && b.bad.Load() == 2:
				fmt.Fprint(w, "b is different\n")
			case r.URL.Path == "/b":
				fmt.Fprint(w, bodyB)
			default:
				http.NotFound(w, r)
			}
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		backends[i] = b
	}

	yaml := fmt.Sprintf(`virtual_servers:
  - address: 127.0.0.1:80
    forwarding: proxy
    health_check:
      type: http
      host: www.example.test
      urls:
        - path: /a
          expect_status: [200]
        - path: /b
          expect_digest: %s
          host: b.example.test
    real_servers:
      - address: %s
      - address: %s
      - address: %s
`, md5hex(bodyB), backends[0].addr, backends[1].addr, backends[2].addr)
	file := filepath.Join(t.TempDir(), "govs.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]Spec, 3)
	for i, rs := range c.VirtualServers[0].RealServers {
		specs[i] = SpecFor(rs.Check, netip.AddrPortFrom(rs.Address.Addr, rs.Address.Port))
		if len(specs[i].URLs) != 2 {
			t.Fatalf("spec %d has urls %+v", i, specs[i].URLs)
		}
	}
	for i := range backends {
		wantPass(t, check(t, specs[i]), "2 urls answer as expected")
	}
	if got := backends[0].hosts.Load().(string); got != "/a@www.example.test /b@b.example.test " {
		t.Errorf("server 0 was asked %q, want /a with the check's host, then /b with its own", got)
	}

	backends[1].bad.Store(1)
	wantPass(t, check(t, specs[0]), "2 urls answer as expected")
	wantFail(t, check(t, specs[1]), "/b: status 500, want 2xx")
	wantPass(t, check(t, specs[2]), "2 urls answer as expected")

	backends[1].bad.Store(2)
	r := check(t, specs[1])
	wantFail(t, r, "/b: status 200, body digest "+md5hex("b is different\n"))
	backends[1].bad.Store(0)
	wantPass(t, check(t, specs[1]), "2 urls answer as expected")

	// The single path of a check without urls still works as before.
	one := specs[0]
	one.URLs, one.Path = nil, "/b"
	one.ExpectDigest = strings.ToUpper(md5hex(bodyB))
	wantPass(t, check(t, one), "status 200")
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
