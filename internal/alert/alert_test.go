package alert

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/test/loopback"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConfig is a configuration with one service of two real servers
// (the second with alerts off), a quorum of 2 and one VRRP instance.
func testConfig(t *testing.T, alerts string) *config.Config {
	t.Helper()
	src := alerts + `
virtual_servers:
  - address: 192.0.2.1:80
    forwarding: nat
    quorum: 2
    quorum_hysteresis: 1
    health_check:
      type: tcp
    real_servers:
      - address: 10.0.0.1:8080
      - address: 10.0.0.2
        alert: false
vrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 51
    virtual_ipaddresses: [192.0.2.1/24]
  - name: VI_2
    interface: eth0
    virtual_router_id: 52
    virtual_ipaddresses: [192.0.2.2/24]
    alert: false
vrrp_sync_groups:
  - {name: G1, instances: [VI_1]}
  - {name: G2, instances: [VI_2], alert: false}
`
	file := filepath.Join(t.TempDir(), "govs.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// collector is a webhook receiver.
type collector struct {
	mu     sync.Mutex
	events []Event
	fails  int // answer 500 to this many requests first
	got    chan struct{}
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fails > 0 {
		c.fails--
		http.Error(w, "not now", http.StatusInternalServerError)
		return
	}
	var ev Event
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&ev) != nil {
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	c.events = append(c.events, ev)
	c.got <- struct{}{}
}

func (c *collector) wait(t *testing.T, n int) []Event {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-c.got:
		case <-time.After(30 * time.Second):
			t.Fatalf("webhook got %d events, want %d", i, n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// TestWebhookEvents checks what the webhook receives for each kind of
// transition, keepalived's subjects and bodies, the alert: false switches,
// and the retries of a webhook that fails at first.
func TestWebhookEvents(t *testing.T) {
	col := &collector{fails: 2, got: make(chan struct{}, 16)}
	srv := httptest.NewServer(col)
	defer srv.Close()
	s := New(quiet())
	s.Backoff = 10 * time.Millisecond
	s.Apply(testConfig(t, "alerts:\n  router_id: LVS_1\n  webhooks: ["+srv.URL+"/hook]\n"))
	at := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	key := "tcp/192.0.2.1:80"
	s.RealServer(key, netip.MustParseAddrPort("10.0.0.2:80"), false, "off", at) // alert: false
	s.VRRP("VI_2", "MASTER", at)                                                // alert: false
	s.RealServer(key, netip.MustParseAddrPort("10.0.0.1:8080"), false, "connection refused", at)
	s.Quorum(key, false, 0, at)
	s.VRRP("VI_1", "MASTER", at)
	s.VRRP("VI_1", "STOP", at)
	s.VRRPGroup("G2", "MASTER", at) // alert: false
	s.VRRPGroup("G1", "FAULT", at)
	s.VRRPGroup("G1", "STOP", at)
	evs := col.wait(t, 6)
	want := []Event{
		{Kind: KindRealServer, Service: "[192.0.2.1]:tcp:80", RealServer: "[10.0.0.1]:tcp:8080", State: "DOWN", Reason: "connection refused",
			Subject: "[LVS_1] Realserver [10.0.0.1]:tcp:8080 of virtual server [192.0.2.1]:tcp:80 - DOWN", Body: "=> TCP CHECK failed on service <="},
		{Kind: KindVirtualServer, Service: "[192.0.2.1]:tcp:80", State: "DOWN", Reason: "live weight 0",
			Subject: "[LVS_1] Virtualserver [192.0.2.1]:tcp:80 - DOWN", Body: "=> Lost quorum 2+1=1 <= 0 <="},
		{Kind: KindVRRPInstance, Instance: "VI_1", State: "MASTER",
			Subject: "[LVS_1] VRRP Instance VI_1 - Entering MASTER state", Body: "=> VRRP Instance is now owning VRRP VIPs <="},
		{Kind: KindVRRPInstance, Instance: "VI_1", State: "STOP",
			Subject: "[LVS_1] VRRP Instance VI_1 - Stopping", Body: "=> VRRP Instance stopping <="},
		{Kind: KindVRRPGroup, Group: "G1", State: "FAULT",
			Subject: "[LVS_1] VRRP Group G1 - Entering FAULT state", Body: "=> All VRRP group instances are now in FAULT state <="},
		{Kind: KindVRRPGroup, Group: "G1", State: "STOP",
			Subject: "[LVS_1] VRRP Group G1 - Stopping", Body: "=> All VRRP group instances are now stopping <="},
	}
	for i, w := range want {
		w.Time, w.RouterID = at, "LVS_1"
		if evs[i] != w {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, evs[i], w)
		}
	}
	s.Close(5 * time.Second)
	if len(col.events) != 6 {
		t.Errorf("%d events, want 6 (alert: false must send nothing)", len(col.events))
	}
}

// TestQueueNeverBlocks checks that alerts are dropped, not waited for, when
// a webhook hangs: the health path must never block on alerts.
func TestQueueNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s := New(quiet())
	s.Apply(testConfig(t, "alerts:\n  webhooks: ["+srv.URL+"]\n"))
	start := time.Now()
	for i := 0; i < 3*QueueSize; i++ {
		s.RealServer("tcp/192.0.2.1:80", netip.MustParseAddrPort("10.0.0.1:8080"), i%2 == 0, "", time.Now())
	}
	if d := s.Dropped(); d < QueueSize {
		t.Errorf("%d alerts dropped, want at least %d (the queue is bounded)", d, QueueSize)
	}
	t.Logf("%d alerts offered in %v", 3*QueueSize, time.Since(start))
}

// waitMail waits until the mbox holds n messages and returns it.
func waitMail(t *testing.T, mbox string, n int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(mbox)
		if strings.Count(string(b), "\nX-Mailer: govs\n") >= n {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the MTA delivered %d messages, want %d:\n%s", strings.Count(string(b), "\nX-Mailer: govs\n"), n, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMailThroughMTA sends keepalived's alert mails through a real MTA
// (Debian's exim4 on loopback) and reads what it delivered.
func TestMailThroughMTA(t *testing.T) {
	addr := loopback.Addr(t, "tcp")
	mbox := loopback.MTA(t, addr, nil, nil)
	s := New(quiet())
	s.Apply(testConfig(t, `alerts:
  router_id: LVS_DEVEL
  email:
    to: [ops@example.test, acassen]
    from: lb@example.test
    smtp_server: `+addr+`
    timeout: 10s
`))
	at := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	s.RealServer("tcp/192.0.2.1:80", netip.MustParseAddrPort("10.0.0.1:8080"), false, "refused", at)
	s.VRRP("VI_1", "BACKUP", at)
	s.VRRPGroup("G1", "MASTER", at)
	s.Close(30 * time.Second)
	// Two recipients, three messages: six deliveries.
	got := waitMail(t, mbox, 6)
	for _, want := range []string{
		"Subject: [LVS_DEVEL] Realserver [10.0.0.1]:tcp:8080 of virtual server [192.0.2.1]:tcp:80 - DOWN\n",
		"\n=> TCP CHECK failed on service <=\n",
		"Subject: [LVS_DEVEL] VRRP Instance VI_1 - Entering BACKUP state\n",
		"\n=> VRRP Instance is no longer owning VRRP VIPs <=\n",
		"Subject: [LVS_DEVEL] VRRP Group G1 - Entering MASTER state\n",
		"\n=> All VRRP group instances are now in MASTER state <=\n",
		"From: lb@example.test\n",
		"To: ops@example.test,\n acassen@mta.test\n", // the MTA qualifies keepalived-style bare names
		"Date: Thu, 03 Dec 2026 14:00:00 +0000\n",
		"envelope-from <lb@example.test>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the delivered mail lacks %q:\n%s", want, got)
		}
	}
}

// TestCapacityAlert: the capacity alert reaches a webhook on loopback,
// raised and cleared, and capacity_alert: false silences it.
func TestCapacityAlert(t *testing.T) {
	col := &collector{got: make(chan struct{}, 16)}
	srv := httptest.NewServer(col)
	defer srv.Close()
	s := New(quiet())
	s.Backoff = 10 * time.Millisecond
	at := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	key := "tcp/192.0.2.1:80"
	s.Apply(testConfig(t, "alerts:\n  router_id: LVS_1\n  webhooks: ["+srv.URL+"]\n"))
	s.Capacity(key, true, "forecast 900.0 connections/s within 15m0s exceeds the learned capacity 800.0", at)
	s.Capacity(key, false, "forecast 700.0 connections/s within 15m0s is below 90% of the learned capacity 800.0", at)
	evs := col.wait(t, 2)
	want := Event{Time: at, RouterID: "LVS_1", Kind: KindCapacity, Service: "[192.0.2.1]:tcp:80", State: "EXCEEDED",
		Reason:  "forecast 900.0 connections/s within 15m0s exceeds the learned capacity 800.0",
		Subject: "[LVS_1] Virtualserver [192.0.2.1]:tcp:80 - capacity EXCEEDED",
		Body:    "=> forecast 900.0 connections/s within 15m0s exceeds the learned capacity 800.0 <="}
	if evs[0] != want || evs[1].State != "OK" || evs[1].Subject != "[LVS_1] Virtualserver [192.0.2.1]:tcp:80 - capacity OK" {
		t.Fatalf("events:\n%+v\n%+v\nwant first %+v", evs[0], evs[1], want)
	}
	c := testConfig(t, "alerts:\n  webhooks: ["+srv.URL+"]\n")
	off := false
	c.VirtualServers[0].Forecast = &config.Forecast{CapacityAlert: &off}
	s.Apply(c)
	s.Capacity(key, true, "off", at)
	s.Close(5 * time.Second)
	if len(col.events) != 2 {
		t.Errorf("%d events, want 2 (capacity_alert: false must send nothing)", len(col.events))
	}
}
