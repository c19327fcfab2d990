package discovery

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/govs-lb/govs/internal/config"
)

// fileSource watches a JSON or YAML file (or a directory of them) listing
// real servers: [{address: IP:PORT, weight: N, name: TEXT}]. It polls:
// a stat per file each interval, a read when a file's size or time
// changed (and at least every ten intervals, for edits that keep both),
// and an answer when the content changed. Polling needs nothing from the
// kernel and sees files replaced by rename, written over NFS, or deleted
// and created again, which inotify watches lose.
type fileSource struct {
	path     string
	interval time.Duration
	log      *slog.Logger
}

func newFileSource(dc *config.Discovery, log *slog.Logger) *fileSource {
	return &fileSource{path: dc.Path, interval: dc.Interval.D(), log: log}
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func (f *fileSource) Run(ctx context.Context, report func(Update)) {
	var (
		stamps   map[string]fileStamp
		lastHash [sha256.Size]byte
		lastRead time.Time
		reported bool
		failing  bool
	)
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		files, err := f.list()
		if err == nil {
			cur := map[string]fileStamp{}
			for _, p := range files {
				if fi, serr := os.Stat(p); serr == nil {
					cur[p] = fileStamp{fi.Size(), fi.ModTime()}
				}
			}
			if failing || !reported || !sameStamps(cur, stamps) || time.Since(lastRead) > 10*f.interval {
				var servers []Server
				var h [sha256.Size]byte
				servers, h, err = f.read(files)
				lastRead = time.Now()
				if err == nil {
					stamps = cur
					if failing || !reported || h != lastHash {
						report(Update{Servers: servers})
					}
					lastHash, reported, failing = h, true, false
				}
			}
		}
		if err != nil {
			failing = true
			report(Update{Err: err})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sameStamps(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w.size != v.size || !w.mod.Equal(v.mod) {
			return false
		}
	}
	return true
}

// list returns the file, or the directory's .json, .yaml and .yml files
// in name order (hidden files and editors' temporary files left out).
func (f *fileSource) list() ([]string, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("discovery file: %w", err)
	}
	if !fi.IsDir() {
		return []string{f.path}, nil
	}
	ents, err := os.ReadDir(f.path)
	if err != nil {
		return nil, fmt.Errorf("discovery directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		ext := filepath.Ext(n)
		if e.IsDir() || strings.HasPrefix(n, ".") || (ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		out = append(out, filepath.Join(f.path, n))
	}
	sort.Strings(out)
	return out, nil
}

// fileEntry is one listed server.
type fileEntry struct {
	Address string `yaml:"address"`
	Weight  *int   `yaml:"weight"`
	Name    string `yaml:"name"`
}

func (f *fileSource) read(files []string) ([]Server, [sha256.Size]byte, error) {
	h := sha256.New()
	var out []Server
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("discovery file: %w", err)
		}
		h.Write([]byte(p))
		h.Write(src)
		servers, err := ParseServerList(src)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("discovery file %s: %w", p, err)
		}
		out = append(out, servers...)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return out, sum, nil
}

// ParseServerList parses a JSON or YAML list of {address, weight, name}.
// An empty document is an empty list. Errors name the entry and its line.
func ParseServerList(src []byte) ([]Server, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: want a list of {address, weight}", root.Line)
	}
	out := make([]Server, 0, len(root.Content))
	for i, n := range root.Content {
		var e fileEntry
		if err := n.Decode(&e); err != nil {
			return nil, fmt.Errorf("entry %d (line %d): %v", i+1, n.Line, err)
		}
		s, err := parseEntry(e.Address, e.Weight, e.Name)
		if err != nil {
			return nil, fmt.Errorf("entry %d (line %d): %v", i+1, n.Line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// parseEntry checks one server given as text.
func parseEntry(addr string, weight *int, name string) (Server, error) {
	ap, err := config.ParseAddrPort(addr)
	if err != nil {
		return Server{}, fmt.Errorf("address %q: want IP:PORT or [IPv6]:PORT", addr)
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return Server{}, fmt.Errorf("address %q is not a host address", addr)
	}
	s := Server{Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), Weight: -1, Name: name}
	if weight != nil {
		if *weight < 0 || *weight > 65535 {
			return Server{}, fmt.Errorf("weight %d out of range (0..65535)", *weight)
		}
		s.Weight = *weight
	}
	return s, nil
}
