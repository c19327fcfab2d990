package director

import (
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// blockingDataplane's Prepare waits until released, as a slow netlink
// transaction would.
type blockingDataplane struct {
	NullDataplane
	entered chan struct{}
	release chan struct{}
}

func (b *blockingDataplane) Prepare(*Snapshot) (Transaction, error) {
	b.entered <- struct{}{}
	<-b.release
	return NullTransaction{}, nil
}

// TestApplyHoldsNoTableLockAcrossSync: while the dataplane's Prepare runs,
// readers of the table (the API, VRRP's track_services, SetDrain) and the
// health of a running service answer at once.
func TestApplyHoldsNoTableLockAcrossSync(t *testing.T) {
	dp := &blockingDataplane{entered: make(chan struct{}, 4), release: make(chan struct{})}
	d := New(healthLog(), dp)
	t.Cleanup(func() { d.Shutdown(time.Second) })
	parse := func(yaml string) *config.Config {
		cfg, err := config.Parse("test.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	first := parse("virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - address: 127.0.0.1:8080\n")
	done := make(chan error, 1)
	go func() { done <- d.Apply(first) }()
	<-dp.entered
	dp.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	vs := d.Service("tcp/127.0.0.1:80")

	second := parse("virtual_servers:\n  - address: 127.0.0.1:80\n    real_servers:\n      - address: 127.0.0.1:8080\n      - address: 127.0.0.1:8081\n")
	go func() { done <- d.Apply(second) }()
	<-dp.entered // the reload is inside Prepare
	answered := make(chan struct{})
	go func() {
		d.Services()
		d.ServiceUp("tcp/127.0.0.1:80")
		vs.QuorumUp()
		vs.RealServers()[0].Health()
		_ = d.SetDrain(vs.Key, vs.RealServers()[0].Addr, true)
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		close(dp.release) // let Apply, and so the cleanup's Shutdown, end
		t.Fatal("readers waited for the dataplane's Prepare")
	}
	close(dp.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
