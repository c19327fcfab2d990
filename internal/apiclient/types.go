package apiclient

import (
	"time"

	discovery "github.com/govs-lb/govs/internal/discovery/status"
)

// The JSON documents of the API. A virtual service or real server is its
// configuration, with the keys of the configuration file (docs/config.md),
// plus a read-only "status" object; the Go types below name the keys that
// govsadm reads and leave the others to the documentation.

// Service is a virtual service as the API shows it.
type Service struct {
	Name               string        `json:"name"`
	Address            string        `json:"address"`
	FWMark             uint32        `json:"fwmark,omitempty"` // a firewall-mark service's mark, instead of an address
	Family             string        `json:"family,omitempty"` // a fwmark service's family: ipv6, or ipv4 when empty
	Protocol           string        `json:"protocol"`
	Scheduler          string        `json:"scheduler"`
	Forwarding         string        `json:"forwarding"`
	SchedulerFlags     []string      `json:"scheduler_flags,omitempty"`
	OnePacket          bool          `json:"ops,omitempty"`
	PersistenceTimeout string        `json:"persistence_timeout,omitempty"`
	PersistenceNetmask string        `json:"persistence_netmask,omitempty"`
	IdleTimeout        string        `json:"idle_timeout,omitempty"`
	TCPFinTimeout      string        `json:"tcpfin_timeout,omitempty"`
	RealServers        []RealServer  `json:"real_servers"`
	Status             ServiceStatus `json:"status"`
}

// ServiceStatus is the runtime state of a virtual service.
type ServiceStatus struct {
	Key   string `json:"key"` // PROTOCOL/VIP:PORT (fwm/MARK, fwm6/MARK), the service's identity
	Stats Stats  `json:"stats"`
	Rates Rates  `json:"rates"`
}

// RealServer is a real server as the API shows it.
type RealServer struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`   // a label; the address is the identity
	Origin  string `json:"origin,omitempty"` // the discovery source of a discovered one
	// SourceName is what that source calls it (a pod, a container, an SRV
	// target, an etcd key, a file entry's name); Node the Kubernetes node
	// it runs on.
	SourceName     string           `json:"source_name,omitempty"`
	Node           string           `json:"node,omitempty"`
	Weight         int              `json:"weight"` // configured
	UpperThreshold int              `json:"upper_threshold,omitempty"`
	LowerThreshold int              `json:"lower_threshold,omitempty"`
	MaxConnections int              `json:"max_connections,omitempty"`
	Status         RealServerStatus `json:"status"`
}

// RealServerStatus is the runtime state of a real server.
type RealServerStatus struct {
	// Weight is the effective weight new connections are scheduled with:
	// the configured one, unless draining, health or slow start change it.
	Weight              int `json:"weight"`
	ActiveConnections   int `json:"active_connections"`
	InactiveConnections int `json:"inactive_connections"`
	// PersistentConnections is IPVS's PersistConn: the persistence
	// templates that send clients here.
	PersistentConnections int  `json:"persistent_connections"`
	Drained               bool `json:"drained"`
	// Standby says a standby real server the pre-warming has not called
	// yet: up, at weight 0 (docs/forecast.md).
	Standby bool   `json:"standby,omitempty"`
	Up      bool   `json:"up"`
	Health  Health `json:"health"`
	Stats   Stats  `json:"stats"`
	Rates   Rates  `json:"rates"`
	// Agent is what the real server's agent said last.
	Agent *AgentFigures `json:"agent,omitempty"`
}

// Health is what health checking knows of a real server.
type Health struct {
	// State is up, down, draining (an operator's or an agent's drain) or
	// maint (an agent's maintenance).
	State     string `json:"state"`
	Checked   bool   `json:"checked"`         // a health check runs
	Check     string `json:"check,omitempty"` // its type: tcp, http, ...
	InService bool   `json:"in_service"`      // in the scheduler's set
	Reason    string `json:"reason,omitempty"`
	// Since is when State began.
	Since  *time.Time   `json:"since,omitempty"`
	Checks uint64       `json:"checks"`
	Passes int          `json:"passes"` // consecutive
	Fails  int          `json:"fails"`  // consecutive
	Last   *CheckResult `json:"last,omitempty"`
}

// CheckResult is a health check's outcome.
type CheckResult struct {
	OK      bool      `json:"ok"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
	Latency float64   `json:"latency_seconds"`
}

// Stats are a service's or real server's counters since it was created or
// last zeroed (govsadm -Z). Packets are counted for UDP only. /metrics
// exposes the same counters, never zeroed.
type Stats struct {
	Connections   uint64 `json:"connections"`
	InPackets     uint64 `json:"in_packets"`
	OutPackets    uint64 `json:"out_packets"`
	InBytes       uint64 `json:"in_bytes"`
	OutBytes      uint64 `json:"out_bytes"`
	ConnectErrors uint64 `json:"connect_errors"`
	Refused       uint64 `json:"refused"`
	Dropped       uint64 `json:"dropped"`
	// ClientLimited: connections or flows refused by a per-client limit;
	// Overload: UDP flows shed for want of file descriptors.
	ClientLimited uint64 `json:"client_limited"`
	Overload      uint64 `json:"overload"`
}

// Rates are per-second rates, averaged as IPVS's estimator does.
type Rates struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"in_pps"`
	OutPPS uint64 `json:"out_pps"`
	InBPS  uint64 `json:"in_bps"`
	OutBPS uint64 `json:"out_bps"`
}

// BackendHealth is one entry of GET /api/v1/health.
type BackendHealth struct {
	Service string `json:"service"` // the service's name
	Key     string `json:"key"`     // the service's PROTOCOL/VIP:PORT
	Backend string `json:"backend"` // ADDRESS:PORT
	Up      bool   `json:"up"`
	Drained bool   `json:"drained"`
	Weight  int    `json:"weight"` // effective
	Health
}

// VRRP is GET /api/v1/vrrp.
type VRRP struct {
	Instances []VRRPInstance `json:"instances"`
	Status    string         `json:"status,omitempty"`
}

// VRRPInstance is the state of one VRRP instance.
type VRRPInstance struct {
	Name           string     `json:"name"`
	State          string     `json:"state"` // INIT, BACKUP, MASTER or FAULT
	Group          string     `json:"sync_group,omitempty"`
	Interface      string     `json:"interface"`
	VRID           int        `json:"virtual_router_id"`
	Version        int        `json:"version"`
	Priority       int        `json:"priority"` // effective
	BasePriority   int        `json:"base_priority"`
	Master         string     `json:"master,omitempty"`
	MasterPriority int        `json:"master_priority"`
	VIPs           []string   `json:"virtual_ipaddress,omitempty"`
	Faults         []string   `json:"faults,omitempty"`
	Since          *time.Time `json:"since,omitempty"`
}

// StatsReport is GET /api/v1/stats.
type StatsReport struct {
	Services []ServiceStats `json:"services"`
}

// ServiceStats are the counters of one service and its real servers.
type ServiceStats struct {
	Service     string         `json:"service"`
	Key         string         `json:"key"`
	Stats       Stats          `json:"stats"`
	Rates       Rates          `json:"rates"`
	RealServers []BackendStats `json:"real_servers"`
}

// BackendStats are the counters of one real server.
type BackendStats struct {
	Backend string `json:"backend"`
	Stats   Stats  `json:"stats"`
	Rates   Rates  `json:"rates"`
}

// Version is GET /api/v1/version.
type Version struct {
	Version string `json:"version"`
	API     string `json:"api"`
}

// Error is the body of every error response. Field, when set, is the path
// of the offending field in the request body ("real_servers[1].weight") or
// the name of the offending parameter. Code classifies the error.
type Error struct {
	Message string `json:"error"`
	Field   string `json:"field,omitempty"`
	Code    string `json:"code,omitempty"`
	// Status is the HTTP status (not sent; filled in by the client).
	Status int `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeInvalid       = "invalid"            // the request or a field in it is wrong
	CodeNotFound      = "not_found"          // no such path
	CodeNoService     = "no_service"         // the virtual service does not exist
	CodeServiceExists = "service_exists"     // the virtual service exists already
	CodeNoDest        = "no_destination"     // the real server does not exist
	CodeDestExists    = "destination_exists" // the real server exists already
	CodeRefused       = "refused"            // valid, but the dataplane could not apply it
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden" // the token, or the configuration, does not allow it
	CodeInternal      = "internal"
)

// Connection is an entry of the connection table (ipvsadm -L -c): a
// connection or UDP flow, or a persistence template.
type Connection struct {
	Service        string `json:"service"` // the virtual service's key
	Protocol       string `json:"protocol"`
	State          string `json:"state"` // IPVS's state name; UDP, or NONE for a template
	ExpiresSeconds int64  `json:"expires_seconds"`
	Client         string `json:"client"` // a template's client group, port 0
	Virtual        string `json:"virtual"`
	RealServer     string `json:"real_server"`
	Template       bool   `json:"template,omitempty"`
	InBytes        uint64 `json:"in_bytes"`
	OutBytes       uint64 `json:"out_bytes"`
	InPackets      uint64 `json:"in_packets,omitempty"` // kernel forwarding only
	OutPackets     uint64 `json:"out_packets,omitempty"`
}

// AgentFigures are what a real server's agent said last (the agent check's
// words, docs/agent.md): the status object's "agent" key, present once an
// agent answered. A figure the agent did not send is absent (null).
type AgentFigures struct {
	At             time.Time `json:"at"`
	WeightPercent  *int      `json:"weight_percent,omitempty"`
	CPUPercent     *int      `json:"cpu_percent,omitempty"`
	MemoryPercent  *int      `json:"memory_percent,omitempty"`
	LoadPerCPU     *float64  `json:"load_per_cpu,omitempty"`
	PressurePct    *int      `json:"pressure_percent,omitempty"`
	IOPercent      *int      `json:"io_percent,omitempty"`
	InFlight       *int      `json:"in_flight,omitempty"`
	LatencySeconds *float64  `json:"latency_seconds,omitempty"`
	Admin          string    `json:"admin,omitempty"` // ready, drain or maint, as last said
}

// SyncState is GET /api/v1/sync.
type SyncState struct {
	// Status is "sync not configured", "resyncing" (asking the peers for
	// their tables at start), "running", or "stopped" (govsadm
	// --stop-daemon).
	Status string `json:"status"`
	// Roles are IPVS's daemons that run: "master" sends this director's
	// flows, "backup" installs the peers' (both by default).
	Roles     []string `json:"roles"`
	Mode      string   `json:"mode,omitempty"` // multicast or unicast
	Interface string   `json:"interface,omitempty"`
	Group     string   `json:"group,omitempty"`
	Peers     []string `json:"peers,omitempty"`
	Port      int      `json:"port,omitempty"`
	SyncID    int      `json:"sync_id"`
	Node      string   `json:"node,omitempty"` // this director's sync node id (hex)
	// Resync is the start-up bulk resync: result "complete" or "timeout"
	// ("" while it runs or when it is off).
	Resync    SyncResync   `json:"resync"`
	PeerNodes []SyncPeer   `json:"peer_nodes"`
	Counters  SyncCounters `json:"counters"`
	// Flows sent and not ended; PeerFlows installed from the peers.
	Flows     int `json:"flows"`
	PeerFlows int `json:"peer_flows"`
	// Install lag, from a peer's send to our install: the last, and the
	// median and 99th percentile of the last 1024.
	LagLastMs   float64 `json:"lag_last_ms"`
	LagMedianMs float64 `json:"lag_median_ms"`
	LagP99Ms    float64 `json:"lag_p99_ms"`
}

// SyncResync is the start-up resync.
type SyncResync struct {
	Result  string     `json:"result"`
	Started *time.Time `json:"started,omitempty"`
	Ended   *time.Time `json:"ended,omitempty"`
}

// SyncPeer is one director heard on the sync link.
type SyncPeer struct {
	Node      string    `json:"node"`
	Address   string    `json:"address,omitempty"`
	LastHeard time.Time `json:"last_heard"`
	LagMs     float64   `json:"lag_ms"` // age of its last data message when it arrived (clock skew included)
	NextSeq   uint32    `json:"next_seq"`
	Missing   int       `json:"missing"` // sequence numbers NACKed and not yet received
	Messages  uint64    `json:"messages"`
	Entries   uint64    `json:"entries"`
	Lost      uint64    `json:"lost"`
}

// SyncCounters are the sync's counters since start.
type SyncCounters struct {
	MessagesSent     uint64 `json:"messages_sent"`
	MessagesReceived uint64 `json:"messages_received"`
	BytesSent        uint64 `json:"bytes_sent"`
	BytesReceived    uint64 `json:"bytes_received"`
	EntriesSent      uint64 `json:"entries_sent"`
	EntriesReceived  uint64 `json:"entries_received"`
	Installed        uint64 `json:"installed"`
	// TemplatesInstalled are the peers' persistence templates installed
	// (counted in Installed too).
	TemplatesInstalled uint64 `json:"templates_installed"`
	// DRFlowsInstalled are the peers' DR flows installed (in Installed too).
	DRFlowsInstalled uint64            `json:"dr_flows_installed"`
	InstallErrors    uint64            `json:"install_errors"`
	Retransmits      uint64            `json:"retransmits"`
	NacksSent        uint64            `json:"nacks_sent"`
	NacksReceived    uint64            `json:"nacks_received"`
	Lost             uint64            `json:"lost"`
	ResyncsRequested uint64            `json:"resyncs_requested"`
	ResyncsServed    uint64            `json:"resyncs_served"`
	EventsLost       uint64            `json:"conntrack_events_lost"`
	Drops            map[string]uint64 `json:"drops"`
}

// SyncDaemonRequest is the body of POST /api/v1/sync/start and
// /api/v1/sync/stop.
type SyncDaemonRequest struct {
	Role      string `json:"role"`                // master or backup
	Interface string `json:"interface,omitempty"` // start: overrides sync.interface
	SyncID    *int   `json:"sync_id,omitempty"`   // start: overrides sync.sync_id
}

// DiscoveryReport is GET /api/v1/discovery.
type DiscoveryReport struct {
	Sources []discovery.Status `json:"sources"`
}
