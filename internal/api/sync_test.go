package api

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	connsync "github.com/govs-lb/govs/internal/sync"
)

type fakeSync struct{}

func (fakeSync) Status() connsync.DaemonStatus {
	var st connsync.DaemonStatus
	st.State, st.Mode, st.Group, st.Port, st.SyncID = "running", "multicast", "224.0.0.81", 8848, 3
	st.Node.Node = 0xabc
	st.Node.Stats.MsgsSent = 10
	st.Node.Stats.Drops[connsync.DropBadMAC] = 2
	st.Node.Peers = []connsync.PeerStatus{{ID: 7, LastHeard: time.Now(), Lag: 3 * time.Millisecond}}
	st.PeerAddrs = map[uint32]string{7: "10.0.0.2:8848"}
	st.Installed = 5
	return st
}

func TestSyncEndpointAndMetrics(t *testing.T) {
	h := newHarness(t, "virtual_servers: []\n")
	rec := httptest.NewRecorder()
	h.s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/sync", nil))
	if !strings.Contains(rec.Body.String(), `"status": "sync not configured"`) {
		t.Fatalf("without sync: %s", rec.Body)
	}
	h.s.SetSync(fakeSync{})
	rec = httptest.NewRecorder()
	h.s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/sync", nil))
	var st SyncState
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" || st.Node != "00000abc" || st.Counters.Drops["bad_mac"] != 2 || st.Counters.Installed != 5 ||
		len(st.PeerNodes) != 1 || st.PeerNodes[0].Address != "10.0.0.2:8848" {
		t.Fatalf("state %+v", st)
	}
	rec = httptest.NewRecorder()
	h.s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`govs_sync_messages_total{direction="sent"} 10`, `govs_sync_drops_total{reason="bad_mac"} 2`,
		`govs_sync_installed_total 5`, `govs_sync_peer_last_heard_seconds{address="10.0.0.2:8848",node="00000007"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
