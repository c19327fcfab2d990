package test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/loopback"
)

// TestStandbyCalledUnderLoad runs the real binary with a proxy service of
// one real server in service and one standby, and a configured capacity
// (forecast-only, the default mode): under a light load the standby
// server takes nothing; once the load exceeds 90% of what the server in
// service carries (the API's rate estimator samples every 2 s), the
// director calls it and it answers clients.
func TestStandbyCalledUnderLoad(t *testing.T) {
	active, standby := loopback.LineServer(t, "active"), loopback.LineServer(t, "standby")
	vip := loopback.Addr(t, "tcp")
	file := filepath.Join(t.TempDir(), "govs.yaml")
	writeFile(t, file, fmt.Sprintf(`
virtual_servers:
  - name: web
    address: %s
    scheduler: rr               # one connection at a time: wlc would tie, and pick the first
    slow_start: 1s
    forecast: {capacity: 5}     # 5 connections/s a unit of weight: 4.5/s calls the standby server
    real_servers:
      - address: %s
      - address: %s
        standby: true
`, vip, active, standby))
	sock := filepath.Join(t.TempDir(), "govs.sock")
	d := runDaemon(t, "govs", exec.Command(govsBin, "--socket", sock, "run", "-c", file), 0)
	loopback.WaitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	cl := api.NewUnixClient(sock)
	forecasts := func() api.ServiceForecast {
		t.Helper()
		var fs []api.ServiceForecast
		if err := cl.Do(context.Background(), "GET", "/api/v1/forecasts", nil, &fs); err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 {
			return api.ServiceForecast{}
		}
		return fs[0]
	}

	// A light load, 2 connections a second for 5 s: the standby server
	// waits.
	for range 10 {
		if name, err := ask(vip); err != nil || name != "active" {
			t.Fatalf("light load: answered by %q, %v", name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if f := forecasts(); f.Standby.Waiting != 1 || f.Standby.Called != 0 || f.Capacity.Source != "configured" || f.Capacity.CPS != 10 {
		t.Fatalf("after the light load: %+v", f)
	}
	svcs, err := cl.Services(context.Background())
	if err != nil || len(svcs) != 1 || len(svcs[0].RealServers) != 2 {
		t.Fatalf("services: %+v, %v", svcs, err)
	}
	if st := svcs[0].RealServers[1].Status; !st.Standby || st.Weight != 0 || !st.Up {
		t.Fatalf("the standby real server's status: %+v", st)
	}

	// About 50 connections a second until the standby server answers one.
	busy := time.Now()
	deadline := busy.Add(60 * time.Second)
	sent := 0
	for {
		name, err := ask(vip)
		if err != nil {
			t.Fatalf("connection %d: %v", sent, err)
		}
		sent++
		if name == "standby" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby server answered none of %d connections", sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the standby server answered after %d connections, %v, of the busy phase", sent, time.Since(busy).Round(time.Millisecond))
	if f := forecasts(); f.Standby.Waiting != 0 || f.Standby.Called != 1 {
		t.Fatalf("after the busy phase: %+v", f.Standby)
	}
	if !strings.Contains(d.log(), "standby real server called: the load now") {
		t.Fatalf("no log line of the call")
	}
}
