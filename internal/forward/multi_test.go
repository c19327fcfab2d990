package forward

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// fakeDP serves snapshots in memory and logs its calls; failPrepare and
// failCommit make those steps fail.
type fakeDP struct {
	director.NullDataplane
	mu                      *sync.Mutex // shared by the fakes of a test, with log
	name                    string
	failPrepare, failCommit bool
	serving                 []string
	log                     *[]string
}

type fakeTx struct {
	f    *fakeDP
	keys []string
}

func keysOf(s *director.Snapshot) []string {
	var out []string
	for _, e := range s.Services {
		out = append(out, e.Desired.Key)
	}
	return out
}

func (f *fakeDP) Prepare(s *director.Snapshot) (director.Transaction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failPrepare {
		*f.log = append(*f.log, f.name+" prepare fails")
		return nil, errors.New(f.name + " failed")
	}
	*f.log = append(*f.log, f.name+" prepare")
	return &fakeTx{f, keysOf(s)}, nil
}

func (tx *fakeTx) Commit() error {
	f := tx.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCommit {
		*f.log = append(*f.log, f.name+" commit fails")
		return errors.New(f.name + " failed")
	}
	f.serving = tx.keys
	*f.log = append(*f.log, f.name+" commit")
	return nil
}

func (tx *fakeTx) Abort() {
	tx.f.mu.Lock()
	defer tx.f.mu.Unlock()
	*tx.f.log = append(*tx.f.log, tx.f.name+" abort")
}

func (f *fakeDP) Apply(s *director.Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serving = keysOf(s)
	*f.log = append(*f.log, f.name+" apply")
	return nil
}

const twoKinds = `virtual_servers:
  - address: 10.0.0.1:80
    forwarding: nat
    real_servers: [{address: 10.0.1.2}]
  - address: 127.0.0.1:8080
    real_servers: [{address: 127.0.0.1:9000}]
`

const fourKinds = twoKinds + `  - address: 10.0.0.2:80
    forwarding: fullnat
    real_servers: [{address: 10.0.1.3}]
  - address: 127.0.0.1:8081
    real_servers: [{address: 127.0.0.1:9000}]
`

// Each service goes to the dataplane of its forwarding; when one dataplane
// fails to prepare, the others are aborted, and when one fails to commit,
// those committed are brought back to what they served: the director's
// Apply fails and every dataplane serves what it did before.
func TestMultiSplitsAndUndoes(t *testing.T) {
	for _, tc := range []struct {
		fail string
		want []string
	}{
		{"prepare", []string{"kernel prepare", "proxy prepare fails", "kernel abort"}},
		{"commit", []string{"kernel prepare", "proxy prepare", "kernel commit", "proxy commit fails", "kernel apply"}},
	} {
		t.Run(tc.fail, func(t *testing.T) {
			var calls []string
			var mu sync.Mutex
			kernel := &fakeDP{name: "kernel", log: &calls, mu: &mu}
			prox := &fakeDP{name: "proxy", log: &calls, mu: &mu}
			m := NewMulti(map[desired.Forwarding]director.Dataplane{desired.NAT: kernel, desired.FullNAT: kernel, desired.Proxy: prox})
			d := director.New(slog.New(slog.NewTextHandler(io.Discard, nil)), m)
			t.Cleanup(func() { d.Shutdown(0) })
			cfg, err := config.Parse("a.yaml", []byte(twoKinds))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			ks, ps := kernel.serving, prox.serving
			mu.Unlock()
			if len(ks) != 1 || ks[0] != "tcp/10.0.0.1:80" || len(ps) != 1 || ps[0] != "tcp/127.0.0.1:8080" {
				t.Fatalf("kernel serves %v, proxy %v", ks, ps)
			}
			mu.Lock()
			cfg2, err := config.Parse("b.yaml", []byte(fourKinds))
			if err != nil {
				t.Fatal(err)
			}
			if tc.fail == "prepare" {
				prox.failPrepare = true
			} else {
				prox.failCommit = true
			}
			calls = nil
			mu.Unlock()
			if err := d.Apply(cfg2); err == nil {
				t.Fatal("apply succeeded with a failing dataplane")
			}
			mu.Lock()
			ks, ps = kernel.serving, prox.serving
			got := append([]string(nil), calls...)
			mu.Unlock()
			// The reconciler's applies of the state in force may come
			// before: the reload's steps are what is checked.
			for len(got) > 0 && got[0] != "kernel prepare" {
				got = got[1:]
			}
			if len(ks) != 1 || len(ps) != 1 {
				t.Fatalf("kernel serves %v, proxy %v after the undo, want their first service only", ks, ps)
			}
			if len(got) < len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
