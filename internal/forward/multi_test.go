package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

type fakeDP struct {
	name    string
	fail    bool
	serving []string
	log     *[]string
}

func (f *fakeDP) Sync(vs []*director.VirtualService) error {
	if f.fail {
		*f.log = append(*f.log, f.name+" fails")
		return errors.New(f.name + " failed")
	}
	f.serving = nil
	for _, v := range vs {
		f.serving = append(f.serving, v.Key)
	}
	*f.log = append(*f.log, f.name+" sync")
	return nil
}
func (f *fakeDP) Shutdown(context.Context) error { return nil }
func (f *fakeDP) Close() error                   { return nil }

const twoKinds = `virtual_servers:
  - address: 10.0.0.1:80
    forwarding: nat
    real_servers: [{address: 10.0.1.2}]
  - address: 127.0.0.1:8080
    real_servers: [{address: 127.0.0.1:9000}]
`

// Each service goes to the dataplane of its forwarding; when one dataplane
// fails, the others are synced back to what they served.
func TestMultiSplitsAndUndoes(t *testing.T) {
	var calls []string
	kernel := &fakeDP{name: "kernel", log: &calls}
	prox := &fakeDP{name: "proxy", log: &calls}
	m := NewMulti(map[config.Forwarding]director.Dataplane{config.NAT: kernel, config.FullNAT: kernel, config.Proxy: prox})
	d := director.New(slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	cfg, err := config.Parse("a.yaml", []byte(twoKinds))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if len(kernel.serving) != 1 || kernel.serving[0] != "tcp/10.0.0.1:80" || len(prox.serving) != 1 || prox.serving[0] != "tcp/127.0.0.1:8080" {
		t.Fatalf("kernel serves %v, proxy %v", kernel.serving, prox.serving)
	}
	cfg2, err := config.Parse("b.yaml", []byte(twoKinds+`  - address: 10.0.0.2:80
    forwarding: fullnat
    real_servers: [{address: 10.0.1.3}]
  - address: 127.0.0.1:8081
    real_servers: [{address: 127.0.0.1:9000}]
`))
	if err != nil {
		t.Fatal(err)
	}
	prox.fail = true
	calls = nil
	if err := d.Apply(cfg2); err == nil {
		t.Fatal("apply succeeded with a failing dataplane")
	}
	if len(kernel.serving) != 1 {
		t.Fatalf("kernel serves %v after the undo, want its first service only", kernel.serving)
	}
	want := []string{"kernel sync", "proxy fails", "kernel sync"}
	if len(calls) != len(want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", calls, want)
		}
	}
}
