package config

import "time"

// Config is a whole govs configuration: the director's desired state.
type Config struct {
	Meta `yaml:"-"`
	// File is where the configuration was read from.
	File string `yaml:"-"`

	// GracePeriod bounds how long established connections may keep running
	// after shutdown, or after a reload removed their virtual or real server.
	GracePeriod    Duration         `yaml:"grace_period,omitempty"`
	VirtualServers []*VirtualServer `yaml:"virtual_servers"`
	// VRRPInstances is recognised but not yet served (VRRP is its own issue).
	VRRPInstances Unsupported `yaml:"vrrp_instances,omitempty"`
	API           *API        `yaml:"api,omitempty"`
	Logging       *Logging    `yaml:"logging,omitempty"`
}

// VirtualServer is one virtual service: a VIP:port and protocol spread over
// real servers.
type VirtualServer struct {
	Meta `yaml:"-"`

	Name       string     `yaml:"name,omitempty"`
	Address    Endpoint   `yaml:"address"`
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

	Quorum           *int         `yaml:"quorum,omitempty"`
	QuorumHysteresis int          `yaml:"quorum_hysteresis,omitempty"`
	QuorumUp         string       `yaml:"quorum_up,omitempty"`
	QuorumDown       string       `yaml:"quorum_down,omitempty"`
	SorryServer      Endpoint     `yaml:"sorry_server,omitempty"`
	InhibitOnFailure bool         `yaml:"inhibit_on_failure,omitempty"`
	Alpha            bool         `yaml:"alpha,omitempty"`
	Omega            bool         `yaml:"omega,omitempty"`
	HealthCheck      *HealthCheck `yaml:"health_check,omitempty"`
	SlowStart        Duration     `yaml:"slow_start,omitempty"`

	// Proxy forwarding settings.
	ConnectTimeout Duration      `yaml:"connect_timeout,omitempty"`
	IdleTimeout    Duration      `yaml:"idle_timeout,omitempty"`
	Retries        *int          `yaml:"retries,omitempty"`
	SendProxy      ProxyProtocol `yaml:"send_proxy,omitempty"`
	MaxFlows       int           `yaml:"max_flows,omitempty"`

	RealServers []*RealServer `yaml:"real_servers"`
}

// RealServer is one server behind a virtual service.
type RealServer struct {
	Meta `yaml:"-"`

	Address Endpoint `yaml:"address"`
	// Weight is 0..65535; 0 takes no new connections. Unset means 1.
	Weight         *int          `yaml:"weight,omitempty"`
	MaxConnections int           `yaml:"max_connections,omitempty"`
	UpperThreshold int           `yaml:"upper_threshold,omitempty"`
	LowerThreshold int           `yaml:"lower_threshold,omitempty"`
	SendProxy      ProxyProtocol `yaml:"send_proxy,omitempty"`
	HealthCheck    *HealthCheck  `yaml:"health_check,omitempty"`
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
	Command      string   `yaml:"command,omitempty"`
}

// API configures the control API.
type API struct {
	Meta `yaml:"-"`

	Socket    string `yaml:"socket,omitempty"`
	HTTP      string `yaml:"http,omitempty"`
	TokenFile string `yaml:"token_file,omitempty"`
}

// Logging configures the director's logs.
type Logging struct {
	Meta `yaml:"-"`

	Level  string `yaml:"level,omitempty"`  // debug, info, warn, error
	Format string `yaml:"format,omitempty"` // text or json
	// AccessLog logs one line per finished connection.
	AccessLog bool `yaml:"access_log,omitempty"`
}

// Defaults.
const (
	DefaultGracePeriod    = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// IPVS's own timeouts: TCP established 900 s, UDP 300 s.
	DefaultTCPIdleTimeout = 900 * time.Second
	DefaultUDPIdleTimeout = 300 * time.Second
	DefaultRetries        = 3
	DefaultMaxFlows       = 65536
	DefaultScheduler      = "wlc"
)
