package discovery

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// fakeDirector records the sets handed to it.
type fakeDirector struct {
	mu   sync.Mutex
	sets map[string][]*config.RealServer
}

func (f *fakeDirector) SetDiscovered(key string, rs []*config.RealServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rs == nil {
		delete(f.sets, key)
	} else {
		f.sets[key] = rs
	}
	return nil
}

func (f *fakeDirector) Service(string) *director.VirtualService { return nil }

func (f *fakeDirector) addrs(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, rs := range f.sets[key] {
		s := rs.Address.String()
		if *rs.Weight == 0 {
			s = "-" + s
		}
		out = append(out, s+"@"+rs.Origin)
	}
	return strings.Join(out, " ")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func fileConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.Parse("govs.yaml", []byte(`virtual_servers:
  - address: 127.0.0.1:80
    real_servers: []
    discovery: {type: file, path: `+path+`, interval: 100ms, settle: 100ms, drain: 1h}
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRunnerFileSourceFollowsAndStops(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a.json")
	os.WriteFile(f, []byte(`[{"address": "10.0.0.1:80"}, {"address": "10.0.0.2:80", "weight": 3, "name": "web-b"}]`), 0o644)
	fd := &fakeDirector{sets: map[string][]*config.RealServer{}}
	r := NewRunner(slog.New(slog.DiscardHandler), fd)
	defer r.Stop()
	r.Apply(fileConfig(t, f))
	key := "tcp/127.0.0.1:80"
	origin := "file:" + f
	waitFor(t, "the first set", func() bool { return fd.addrs(key) == "10.0.0.1:80@"+origin+" 10.0.0.2:80@"+origin })
	fd.mu.Lock()
	first := fd.sets[key]
	fd.mu.Unlock()
	if w := *first[1].Weight; w != 3 {
		t.Fatalf("weight %d", w)
	}
	// The entry's name is carried to the director as source_name (not
	// name, the operator's unique label); an entry without one has none.
	if first[1].SourceName != "web-b" || first[1].Name != "" || first[0].SourceName != "" {
		t.Fatalf("source names %q %q, name %q", first[0].SourceName, first[1].SourceName, first[1].Name)
	}
	// A directory is the join of its files; a block changed by a reload
	// starts from the old set (so 10.0.0.2 drains rather than vanishing).
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("- {address: 10.0.0.3:80}\n"), 0o644)
	os.WriteFile(f, []byte(`[{"address": "10.0.0.1:80"}]`), 0o644)
	os.WriteFile(filepath.Join(dir, ".hidden.json"), []byte(`[{"address": "10.0.0.9:80"}]`), 0o644)
	r.Apply(fileConfig(t, dir))
	origin = "file:" + dir
	waitFor(t, "the directory's set", func() bool {
		return fd.addrs(key) == "10.0.0.1:80@"+origin+" -10.0.0.2:80@"+origin+" 10.0.0.3:80@"+origin
	})
	st := r.Status()
	if len(st) != 1 || !st[0].OK || st[0].Active != 2 || st[0].Type != "file" {
		t.Fatalf("status %+v", st)
	}
	// A bad file is a source error naming the file, entry and line.
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("- {address: 10.0.0.3:80}\n- {address: nowhere}\n"), 0o644)
	waitFor(t, "the error", func() bool { st := r.Status(); return !st[0].OK })
	if e := r.Status()[0].LastError; !strings.Contains(e, "b.yaml: entry 2 (line 2)") {
		t.Fatalf("error %q", e)
	}
	// Removing the block removes its servers.
	c := fileConfig(t, dir)
	c.VirtualServers[0].Discovery = nil
	r.Apply(c)
	if got := fd.addrs(key); got != "" || len(r.Status()) != 0 {
		t.Fatalf("after removal: %q %+v", got, r.Status())
	}
}

func TestParseServerList(t *testing.T) {
	for src, want := range map[string]string{
		"":                            "",
		"[]":                          "",
		`{"address": "10.0.0.1:80"}`:  "want a list",
		`[{"address": "10.0.0.1"}]`:   "want IP:PORT",
		`[{"address": "0.0.0.0:80"}]`: "not a host address",
		`[{"address": "10.0.0.1:80", "weight": 70000}]`: "out of range",
		"- address: '[::1]:80'\n  weight: 2\n":          "",
	} {
		_, err := ParseServerList([]byte(src))
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

func TestSourceContextEnds(t *testing.T) {
	// Every source returns when its context ends, even while failing.
	for _, dc := range []*config.Discovery{
		{Type: "file", Path: "/nonexistent", Interval: config.Duration(50 * time.Millisecond)},
		{Type: "dns", Name: "_x._tcp.example.test", Server: "127.0.0.1:1", Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond)},
		{Type: "etcd", Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/x", Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond)},
		{Type: "docker", Host: "unix:///nonexistent.sock", Label: "x", Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond)},
		{Type: "kubernetes", Kubeconfig: unreachableKubeconfig(t), Service: "web", Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(100 * time.Millisecond)},
		{Type: "kubernetes", Kubeconfig: "/nonexistent/kubeconfig", Service: "web", Interval: config.Duration(50 * time.Millisecond)},
	} {
		src, err := NewSource(dc, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 100)
		done := make(chan struct{})
		go func() {
			src.Run(ctx, func(u Update) {
				select {
				case errs <- u.Err:
				default:
				}
			})
			close(done)
		}()
		select {
		case err := <-errs:
			if err == nil {
				t.Errorf("%s: an unreachable source answered", dc.Type)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: no error reported", dc.Type)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Run did not return", dc.Type)
		}
	}
}

// unreachableKubeconfig is a kubeconfig naming an apiserver nobody runs.
func unreachableKubeconfig(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(p, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ns}}]
current-context: x
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLabel: a source's name reaches the API without control characters
// (a file or an etcd value is anyone's text), bounded, cut at a character.
func TestLabel(t *testing.T) {
	for in, want := range map[string]string{
		"web-7d9f-abc":           "web-7d9f-abc",
		"a\x1b[31mb\nc\x00d\xff": "a[31mbcd",
		"pod-é":                  "pod-é",
		strings.Repeat("é", 200): strings.Repeat("é", 126),
		strings.Repeat("x", 300): strings.Repeat("x", 253),
	} {
		if got := label(in); got != want {
			t.Errorf("label(%q) = %q, want %q", in, got, want)
		}
	}
}
