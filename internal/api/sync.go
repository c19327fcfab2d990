package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	connsync "github.com/govs-lb/govs/internal/sync"
)

// SyncSource gives the connection sync's state: *connsync.Daemon.
type SyncSource interface {
	Status() connsync.DaemonStatus
}

// SyncController starts and stops the connection sync's roles at run
// time (govsadm --start-daemon, --stop-daemon). Errors of type *Error
// go to the client as they are.
type SyncController interface {
	// StartRole starts role ("master": send this director's flows,
	// "backup": install the peers'), the sync first if it is stopped,
	// with iface and syncID (-1: the configured ones) overriding the
	// configuration's.
	StartRole(role, iface string, syncID int) error
	// StopRole stops role; the sync stops with its last role.
	StopRole(role string) error
}

// SetSync makes the server report the connection sync of v (GET
// /api/v1/sync and the govs_sync_* metrics). Call it once, before serving.
func (s *Server) SetSync(v SyncSource) {
	s.mu.Lock()
	first := s.sync == nil
	s.sync = v
	s.mu.Unlock()
	if first && v != nil {
		s.reg.MustRegister(&syncCollector{s})
	}
}

func (s *Server) syncSource() SyncSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sync
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func syncState(st connsync.DaemonStatus) SyncState {
	n := st.Node
	out := SyncState{Status: st.State, Mode: st.Mode, Interface: st.Interface, Group: st.Group, Peers: st.Peers,
		Port: st.Port, SyncID: int(st.SyncID), Node: fmt.Sprintf("%08x", n.Node), PeerNodes: []SyncPeer{},
		Flows: st.Flows, PeerFlows: st.PeerFlows, LagLastMs: msf(st.LagLast), LagMedianMs: msf(st.LagMedian), LagP99Ms: msf(st.LagP99)}
	out.Roles = []string{}
	if st.Master {
		out.Roles = append(out.Roles, "master")
	}
	if st.Backup {
		out.Roles = append(out.Roles, "backup")
	}
	out.Resync.Result = n.ResyncResult
	if !n.ResyncStarted.IsZero() {
		t := n.ResyncStarted
		out.Resync.Started = &t
	}
	if !n.ResyncEnded.IsZero() {
		t := n.ResyncEnded
		out.Resync.Ended = &t
	}
	for _, p := range n.Peers {
		out.PeerNodes = append(out.PeerNodes, SyncPeer{Node: fmt.Sprintf("%08x", p.ID), Address: st.PeerAddrs[p.ID],
			LastHeard: p.LastHeard, LagMs: msf(p.Lag), NextSeq: p.Next, Missing: p.Missing, Messages: p.Received,
			Entries: p.Entries, Lost: p.Lost})
	}
	c := n.Stats
	out.Counters = SyncCounters{MessagesSent: c.MsgsSent, MessagesReceived: c.MsgsReceived, BytesSent: c.BytesSent,
		BytesReceived: c.BytesReceived, EntriesSent: c.EntriesSent, EntriesReceived: c.EntriesReceived,
		Installed: st.Installed, TemplatesInstalled: st.Templates, DRFlowsInstalled: st.DRFlows, InstallErrors: st.InstallErrors, Retransmits: c.Retransmits, NacksSent: c.NacksSent,
		NacksReceived: c.NacksReceived, Lost: c.Lost, ResyncsRequested: c.ResyncsRequested, ResyncsServed: c.ResyncsServed,
		EventsLost: st.EventsLost, Drops: map[string]uint64{}}
	for r := connsync.Reason(0); r < connsync.NumReasons; r++ {
		out.Counters.Drops[r.String()] = c.Drops[r]
	}
	return out
}

func (s *Server) getSync(w http.ResponseWriter, r *http.Request) error {
	src := s.syncSource()
	if src == nil {
		writeJSON(w, http.StatusOK, SyncState{Status: "sync not configured", Roles: []string{}, PeerNodes: []SyncPeer{}})
		return nil
	}
	writeJSON(w, http.StatusOK, syncState(src.Status()))
	return nil
}

var (
	descSyncMessages = prometheus.NewDesc("govs_sync_messages_total",
		"Connection sync messages, by direction (sent, received; received counts the accepted ones).", []string{"direction"}, nil)
	descSyncBytes = prometheus.NewDesc("govs_sync_bytes_total",
		"Connection sync bytes on the wire (UDP payload), by direction.", []string{"direction"}, nil)
	descSyncEntries = prometheus.NewDesc("govs_sync_entries_total",
		"Flows sent to and received from the peers, by direction.", []string{"direction"}, nil)
	descSyncInstalled = prometheus.NewDesc("govs_sync_installed_total",
		"Peers' flows installed into conntrack.", nil, nil)
	descSyncInstallErrors = prometheus.NewDesc("govs_sync_install_errors_total",
		"Peers' flows conntrack refused.", nil, nil)
	descSyncDrops = prometheus.NewDesc("govs_sync_drops_total",
		"Sync messages dropped, by reason (malformed, too_big, unknown_sync_id, bad_mac, stale, replay).", []string{"reason"}, nil)
	descSyncRetransmits = prometheus.NewDesc("govs_sync_retransmits_total",
		"Messages sent again on a peer's NACK.", nil, nil)
	descSyncLost = prometheus.NewDesc("govs_sync_lost_total",
		"Peers' messages given up on (repaired by a resync).", nil, nil)
	descSyncResyncs = prometheus.NewDesc("govs_sync_resyncs_total",
		"Bulk resyncs, by role (requested, served).", []string{"role"}, nil)
	descSyncResyncing = prometheus.NewDesc("govs_sync_resyncing",
		"1 while the start-up resync runs (VRRP is held in backup meanwhile).", nil, nil)
	descSyncLag = prometheus.NewDesc("govs_sync_lag_seconds",
		"Install lag, from the peer's send to the install here, over the last 1024 installs.", []string{"quantile"}, nil)
	descSyncPeerLastHeard = prometheus.NewDesc("govs_sync_peer_last_heard_seconds",
		"Seconds since a sync peer was last heard from, by its node id and address.", []string{"node", "address"}, nil)
	descSyncFlows = prometheus.NewDesc("govs_sync_flows",
		"Flows known to the sync, by origin (local: sent by us; peer: installed from a peer).", []string{"origin"}, nil)
)

type syncCollector struct{ s *Server }

func (c *syncCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSyncMessages, descSyncBytes, descSyncEntries, descSyncInstalled,
		descSyncInstallErrors, descSyncDrops, descSyncRetransmits, descSyncLost, descSyncResyncs, descSyncResyncing,
		descSyncLag, descSyncPeerLastHeard, descSyncFlows} {
		ch <- d
	}
}

func (c *syncCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.s.syncSource()
	if src == nil {
		return
	}
	st := syncState(src.Status())
	k := st.Counters
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descSyncMessages, k.MessagesSent, "sent")
	counter(descSyncMessages, k.MessagesReceived, "received")
	counter(descSyncBytes, k.BytesSent, "sent")
	counter(descSyncBytes, k.BytesReceived, "received")
	counter(descSyncEntries, k.EntriesSent, "sent")
	counter(descSyncEntries, k.EntriesReceived, "received")
	counter(descSyncInstalled, k.Installed)
	counter(descSyncInstallErrors, k.InstallErrors)
	reasons := make([]string, 0, len(k.Drops))
	for r := range k.Drops {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		counter(descSyncDrops, k.Drops[r], r)
	}
	counter(descSyncRetransmits, k.Retransmits)
	counter(descSyncLost, k.Lost)
	counter(descSyncResyncs, k.ResyncsRequested, "requested")
	counter(descSyncResyncs, k.ResyncsServed, "served")
	resyncing := 0.0
	if st.Status == "resyncing" {
		resyncing = 1
	}
	gauge(descSyncResyncing, resyncing)
	gauge(descSyncLag, st.LagMedianMs/1000, "0.5")
	gauge(descSyncLag, st.LagP99Ms/1000, "0.99")
	for _, p := range st.PeerNodes {
		gauge(descSyncPeerLastHeard, time.Since(p.LastHeard).Seconds(), p.Node, p.Address)
	}
	gauge(descSyncFlows, float64(st.Flows), "local")
	gauge(descSyncFlows, float64(st.PeerFlows), "peer")
}

func (s *Server) syncController() (SyncController, error) {
	ctl, ok := s.syncSource().(SyncController)
	if !ok {
		return nil, &Error{Code: CodeRefused, Message: "no sync section in the configuration: the connection sync " +
			"authenticates every message with the shared key its key_file names; add sync: {interface, sync_id, key_file} " +
			"(docs/sync.md) and restart govs"}
	}
	return ctl, nil
}

func readSyncRequest(w http.ResponseWriter, r *http.Request, start bool) (SyncDaemonRequest, error) {
	var req SyncDaemonRequest
	obj, err := readObject(w, r)
	if err != nil {
		return req, err
	}
	for k, v := range obj {
		switch k {
		case "role":
			req.Role, _ = v.(string)
			if req.Role != "master" && req.Role != "backup" {
				return req, invalid("role", "%v: want master or backup", v)
			}
		case "interface":
			if !start {
				return req, invalid(k, "only when starting")
			}
			if req.Interface, _ = v.(string); req.Interface == "" {
				return req, invalid(k, "%v: want an interface name", v)
			}
		case "sync_id":
			n, ok := v.(json.Number)
			id, err := n.Int64()
			if !start || !ok || err != nil || id < 0 || id > 255 {
				return req, invalid(k, "%v: want 0-255, and only when starting", v)
			}
			x := int(id)
			req.SyncID = &x
		default:
			return req, invalid(k, "unknown field")
		}
	}
	if req.Role == "" {
		return req, invalid("role", "required: master or backup")
	}
	return req, nil
}

func (s *Server) startSync(w http.ResponseWriter, r *http.Request) error {
	req, err := readSyncRequest(w, r, true)
	if err != nil {
		return err
	}
	ctl, err := s.syncController()
	if err != nil {
		return err
	}
	id := -1
	if req.SyncID != nil {
		id = *req.SyncID
	}
	if err := ctl.StartRole(req.Role, req.Interface, id); err != nil {
		return err
	}
	return s.getSync(w, r)
}

func (s *Server) stopSync(w http.ResponseWriter, r *http.Request) error {
	req, err := readSyncRequest(w, r, false)
	if err != nil {
		return err
	}
	ctl, err := s.syncController()
	if err != nil {
		return err
	}
	if err := ctl.StopRole(req.Role); err != nil {
		return err
	}
	return s.getSync(w, r)
}
