package vrrpd

import (
	"context"
	"sync"
	"testing"
	"time"
)

type fakeServices struct {
	mu sync.Mutex
	up map[string]bool
}

func (f *fakeServices) ServiceUp(name string) (bool, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	up, ok := f.up[name]
	return up, ok
}

func (f *fakeServices) set(name string, up bool) {
	f.mu.Lock()
	f.up[name] = up
	f.mu.Unlock()
}

func TestWatchService(t *testing.T) {
	f := &fakeServices{up: map[string]bool{"web": true}}
	if !serviceUp(nil, "web") || !serviceUp(f, "unknown") || !serviceUp(f, "web") {
		t.Fatal("no source, an unknown service and an up service must all count as up")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan bool, 4)
	go watchService(ctx, f, "web", true, func(up bool) { got <- up })
	f.set("web", false)
	for _, want := range []bool{false, true} {
		select {
		case up := <-got:
			if up != want {
				t.Fatalf("reported up=%v, want %v", up, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no report of up=%v", want)
		}
		f.set("web", true)
	}
}
