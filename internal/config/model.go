package config

import (
	"time"

	"github.com/govs-lb/govs/internal/script"
)

// Config is a whole govs configuration: the director's desired state.
type Config struct {
	Meta `yaml:"-"`
	// File is where the configuration was read from.
	File string `yaml:"-"`

	// GracePeriod bounds how long established connections may keep running
	// after shutdown, or after a reload removed their virtual or real server.
	GracePeriod Duration `yaml:"grace_period,omitempty"`
	// ScriptUser ("user" or "user:group") is who every script runs as,
	// default nobody; ScriptSecurity (default true) refuses scripts that
	// someone else can change. See script.go. keepalived's script_user
	// USER [GROUP] and enable_script_security map to them.
	ScriptUser     string           `yaml:"script_user,omitempty"`
	ScriptSecurity *bool            `yaml:"script_security,omitempty"`
	VirtualServers []*VirtualServer `yaml:"virtual_servers"`
	// VRRPInstances and VRRPSyncGroups are the VRRP virtual routers that
	// carry the VIPs between directors (vrrp.go, docs/vrrp.md).
	VRRPInstances  []*VRRPInstance  `yaml:"vrrp_instances,omitempty"`
	VRRPSyncGroups []*VRRPSyncGroup `yaml:"vrrp_sync_groups,omitempty"`
	// StaticRoutes are installed at start whatever the VRRP state, and
	// removed at stop (keepalived's static_routes; routes.go).
	StaticRoutes []VirtualRoute `yaml:"static_routes,omitempty"`
	// StaticIPAddresses are added at start whatever the VRRP state, and
	// removed at stop (keepalived's static_ipaddress): ADDR[/LEN] dev IFACE
	// [label LABEL].
	StaticIPAddresses []VirtualIP `yaml:"static_ipaddresses,omitempty"`
	// StaticRules are policy routing rules installed at start and removed
	// at stop (keepalived's static_rules; rules.go).
	StaticRules []VirtualRule `yaml:"static_rules,omitempty"`
	// Alerts are the mails and webhooks sent on transitions (alerts.go,
	// docs/config.md#alerts).
	Alerts *Alerts `yaml:"alerts,omitempty"`
	API    *API    `yaml:"api,omitempty"`
	// BGP announces the VIPs to routers (bgp.go, docs/bgp.md).
	BGP *BGP `yaml:"bgp,omitempty"`
	// Sync is the connection synchronisation between directors (sync.go).
	Sync    *Sync    `yaml:"sync,omitempty"`
	Logging *Logging `yaml:"logging,omitempty"`
}

// VirtualServer is one virtual service: a VIP:port and protocol spread over
// real servers.
type VirtualServer struct {
	Meta `yaml:"-"`

	Name    string   `yaml:"name,omitempty"`
	Address Endpoint `yaml:"address,omitempty"`
	// FWMark, instead of Address, makes a firewall-mark service (ipvsadm
	// -f, keepalived's virtual_server fwmark): it takes the packets the
	// operator's own rules marked with this packet mark, whatever their
	// destination address, port or protocol (fwmark.go, docs/fwmark.md).
	// Kernel forwarding only. Family is its address family, ipv4 (the
	// default) or ipv6, as ipvsadm's -6.
	FWMark     uint32     `yaml:"fwmark,omitempty"`
	Family     string     `yaml:"family,omitempty"`
	Protocol   Protocol   `yaml:"protocol,omitempty"`
	Scheduler  string     `yaml:"scheduler,omitempty"`
	Forwarding Forwarding `yaml:"forwarding,omitempty"`
	// SchedulerFlags are ipvsadm's -b flags: sh-fallback, sh-port,
	// mh-fallback, mh-port.
	SchedulerFlags []string `yaml:"scheduler_flags,omitempty"`
	// OnePacket (ops) schedules every UDP datagram on its own.
	OnePacket bool `yaml:"ops,omitempty"`

	PersistenceTimeout      Duration `yaml:"persistence_timeout,omitempty"`
	PersistenceNetmask      string   `yaml:"persistence_netmask,omitempty"`
	ExpireQuiescentTemplate bool     `yaml:"expire_quiescent_template,omitempty"`

	Quorum           *int   `yaml:"quorum,omitempty"`
	QuorumHysteresis int    `yaml:"quorum_hysteresis,omitempty"`
	QuorumUp         string `yaml:"quorum_up,omitempty"`
	QuorumDown       string `yaml:"quorum_down,omitempty"`
	// Alert sends alerts on the service's quorum changes (default true;
	// keepalived's smtp_alert of a virtual server).
	Alert            *bool        `yaml:"alert,omitempty"`
	SorryServer      Endpoint     `yaml:"sorry_server,omitempty"`
	InhibitOnFailure bool         `yaml:"inhibit_on_failure,omitempty"`
	Alpha            bool         `yaml:"alpha,omitempty"`
	Omega            bool         `yaml:"omega,omitempty"`
	HealthCheck      *HealthCheck `yaml:"health_check,omitempty"`
	SlowStart        Duration     `yaml:"slow_start,omitempty"`
	// Forecast uses the service's load forecast: pre-warming of its
	// standby real servers and the capacity alert (forecast.go).
	Forecast *Forecast `yaml:"forecast,omitempty"`

	// Proxy forwarding settings.
	ConnectTimeout Duration      `yaml:"connect_timeout,omitempty"`
	IdleTimeout    Duration      `yaml:"idle_timeout,omitempty"`
	Retries        *int          `yaml:"retries,omitempty"`
	SendProxy      ProxyProtocol `yaml:"send_proxy,omitempty"`
	MaxFlows       int           `yaml:"max_flows,omitempty"`
	// TCPFinTimeout ends a TCP connection that one side has half-closed
	// and that moves no bytes for this long (IPVS's tcpfin timeout).
	TCPFinTimeout Duration `yaml:"tcpfin_timeout,omitempty"`
	// Per client address (HAProxy's per-source limits): TCP connections,
	// UDP flows. 0: no limit.
	MaxConnectionsPerClient int `yaml:"max_connections_per_client,omitempty"`
	MaxFlowsPerClient       int `yaml:"max_flows_per_client,omitempty"`

	// Kernel forwarding (nat, fullnat) settings.
	// LocalAddresses are fullnat's source addresses toward the real
	// servers: IPs or ranges "10.0.0.10-10.0.0.20". None means the
	// director's address on the interface toward the real server.
	LocalAddresses []string `yaml:"local_addresses,omitempty"`
	// ExpireNodestConn ends the flows of a removed real server at once
	// (IPVS's expire_nodest_conn) instead of letting them finish.
	ExpireNodestConn bool `yaml:"expire_nodest_conn,omitempty"`

	// Announce: false keeps this service's VIP out of BGP; BGP holds the
	// attributes it is announced with (bgp.go, docs/bgp.md).
	Announce *bool       `yaml:"announce,omitempty"`
	BGP      *ServiceBGP `yaml:"bgp,omitempty"`

	RealServers []*RealServer `yaml:"real_servers"`
	// Discovery adds real servers found by a source (discovery.go).
	Discovery *Discovery `yaml:"discovery,omitempty"`
}

// RealServer is one server behind a virtual service.
type RealServer struct {
	Meta `yaml:"-"`

	Address Endpoint `yaml:"address"`
	// Name is an optional label for people (API, dashboard); the address
	// stays the real server's identity. Unique within its service.
	Name string `yaml:"name,omitempty"`
	// Weight is 0..65535; 0 takes no new connections. Unset means 1.
	Weight         *int          `yaml:"weight,omitempty"`
	MaxConnections int           `yaml:"max_connections,omitempty"`
	UpperThreshold int           `yaml:"upper_threshold,omitempty"`
	LowerThreshold int           `yaml:"lower_threshold,omitempty"`
	SendProxy      ProxyProtocol `yaml:"send_proxy,omitempty"`
	// HealthCheck overrides the virtual server's health_check key by key;
	// type: none turns checking off for this real server.
	HealthCheck *HealthCheck `yaml:"health_check,omitempty"`
	// Lifecycle (docs/health.md): commands run when the real server goes
	// up or down, and per-server overrides of the virtual server's
	// inhibit_on_failure and alpha.
	NotifyUp   string `yaml:"notify_up,omitempty"`
	NotifyDown string `yaml:"notify_down,omitempty"`
	// Alert sends alerts when the real server goes up or down (default
	// true; keepalived's smtp_alert of a real server).
	Alert            *bool `yaml:"alert,omitempty"`
	InhibitOnFailure *bool `yaml:"inhibit_on_failure,omitempty"`
	Alpha            *bool `yaml:"alpha,omitempty"`
	// Standby keeps the real server at weight 0 until the service's
	// pre-warming calls it (docs/forecast.md).
	Standby bool `yaml:"standby,omitempty"`

	// Origin names the discovery source of a discovered real server
	// ("dns:_http._tcp.example.test"); empty for a written one. Only the
	// director sets it: a file or API request may not.
	Origin string `yaml:"origin,omitempty"`
	// SourceName is what the source calls a discovered real server (a
	// Kubernetes pod, a container, an SRV target, an etcd key, a file
	// entry's name), and Node the Kubernetes node it runs on. Set by the
	// director like Origin, for people: not unique, never an identity.
	SourceName string `yaml:"source_name,omitempty"`
	Node       string `yaml:"node,omitempty"`

	// Check is the health check in force for this real server, resolved by
	// Validate from the virtual server's and the real server's health_check;
	// nil when it is not checked.
	Check *HealthCheck `yaml:"-"`
}

// HealthCheck describes how real servers are checked.
type HealthCheck struct {
	Meta `yaml:"-"`

	Type         string   `yaml:"type"`
	Interval     Duration `yaml:"interval,omitempty"`
	Timeout      Duration `yaml:"timeout,omitempty"`
	Rise         int      `yaml:"rise,omitempty"`
	Fall         int      `yaml:"fall,omitempty"`
	Port         int      `yaml:"port,omitempty"`
	Path         string   `yaml:"path,omitempty"`
	ExpectStatus []int    `yaml:"expect_status,omitempty"`
	ExpectDigest string   `yaml:"expect_digest,omitempty"`
	Host         string   `yaml:"host,omitempty"`
	// URLs (http, https) are several URLs checked in turn: the real server
	// is up only while every one answers as its entry expects (keepalived's
	// url blocks). path, expect_status and expect_digest are the one URL of
	// a check without urls; a check has one or the other.
	URLs    []*HealthURL `yaml:"urls,omitempty"`
	Command string       `yaml:"command,omitempty"`

	// Keepalived's retry and delay_before_retry: a failed check is tried
	// again this many times before it counts as one failure.
	Retry            *int     `yaml:"retry,omitempty"`
	DelayBeforeRetry Duration `yaml:"delay_before_retry,omitempty"`
	// Dynamic (keepalived's misc_dynamic) lets a script's exit code, or a
	// file check's value, set the real server's weight.
	Dynamic bool `yaml:"dynamic,omitempty"`
	// https: the TLS server name sent, whether the certificate is verified,
	// and the CA file it is verified against (default: the system's).
	SNI       string `yaml:"sni,omitempty"`
	TLSVerify bool   `yaml:"tls_verify,omitempty"`
	TLSCA     string `yaml:"tls_ca,omitempty"`
	// dns: the question asked (default ". SOA", as keepalived's DNS_CHECK).
	QueryName string `yaml:"query_name,omitempty"`
	QueryType string `yaml:"query_type,omitempty"`
	// udp: the datagram sent (hex) and the reply wanted.
	Payload      string `yaml:"payload,omitempty"`
	RequireReply bool   `yaml:"require_reply,omitempty"`
	ExpectReply  string `yaml:"expect_reply,omitempty"`
	// smtp: the name sent with EHLO, and keepalived's host blocks: the
	// servers checked instead of the real server itself, every one of
	// which must answer for the real server to be up.
	HeloName string        `yaml:"helo_name,omitempty"`
	Hosts    []*HealthHost `yaml:"hosts,omitempty"`
	// file: the file read and keepalived's FILE_CHECK weight multiplier.
	File       string `yaml:"file,omitempty"`
	FileWeight *int   `yaml:"file_weight,omitempty"`
	// AgentPort adds an HAProxy agent check on this port to any check type.
	AgentPort int `yaml:"agent_port,omitempty"`

	// RunAs is who a script check runs as, set by Validate from the
	// configuration's script_user and script_security.
	RunAs script.Policy `yaml:"-"`
}

// HealthURL is one URL of an http or https check: keepalived's url block.
type HealthURL struct {
	Meta `yaml:"-"`

	Path         string `yaml:"path"`
	ExpectStatus []int  `yaml:"expect_status,omitempty"` // empty: 200..299
	ExpectDigest string `yaml:"expect_digest,omitempty"`
	Host         string `yaml:"host,omitempty"` // empty: the check's host
}

// HealthHost is one server an smtp check asks: keepalived's SMTP_CHECK
// host block.
type HealthHost struct {
	Meta `yaml:"-"`

	Address HostIP `yaml:"address,omitempty"` // default: the real server's
	Port    int    `yaml:"port,omitempty"`    // default: the check's port
	Bind    HostIP `yaml:"bind,omitempty"`    // the source address; default: the system's choice
}

// API configures the control API (see docs/api.md).
type API struct {
	Meta `yaml:"-"`

	// Socket is the control socket's path; the --socket flag and the
	// GOVS_SOCKET variable take precedence. Default /run/govs/govs.sock.
	Socket string `yaml:"socket,omitempty"`
	// HTTP is an optional TCP listen address (HOST:PORT) for the API and
	// the metrics; it needs TokenFile, whose first line is the bearer token.
	HTTP      string `yaml:"http,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`
	// ReadTokenFile holds a second bearer token that may only read: GET
	// requests and /metrics (a Prometheus scrape credential).
	ReadTokenFile string `yaml:"read_token_file,omitempty"`
	// AllowScripts lets API clients set commands govs runs (script health
	// checks, notify_up/down, quorum_up/down). Off by default: an API
	// token must not be a way to run commands as root.
	AllowScripts bool `yaml:"allow_scripts,omitempty"`
	// TLSCert and TLSKey make the HTTP listener serve HTTPS.
	TLSCert string `yaml:"tls_cert,omitempty"`
	TLSKey  string `yaml:"tls_key,omitempty"`
}

// Logging configures the director's logs.
type Logging struct {
	Meta `yaml:"-"`

	Level  string `yaml:"level,omitempty"`  // debug, info, warn, error
	Format string `yaml:"format,omitempty"` // text or json
	// AccessLog writes one line per finished connection or UDP flow:
	// true to the log stream, or to a file or syslog server (AccessLog).
	AccessLog AccessLog `yaml:"access_log,omitempty"`
}

// Defaults.
const (
	DefaultGracePeriod    = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// IPVS's own timeouts: TCP established 900 s, UDP 300 s.
	DefaultTCPIdleTimeout = 900 * time.Second
	DefaultUDPIdleTimeout = 300 * time.Second
	DefaultTCPFinTimeout  = 120 * time.Second
	DefaultRetries        = 3
	DefaultMaxFlows       = 65536
	DefaultScheduler      = "wlc"

	// Health checks (docs/health.md): HAProxy's rise and fall, and an
	// interval a little under its default so failures are seen in seconds.
	DefaultHealthInterval         = 2 * time.Second
	DefaultHealthRise             = 2
	DefaultHealthFall             = 3
	DefaultHealthDelayBeforeRetry = time.Second
	DefaultQuorum                 = 1
)
