package api

import (
	"net/http"

	"github.com/govs-lb/govs/internal/apiclient"
)

// The API's documents and its Go client live in internal/apiclient, which
// links none of the server (govsadm imports only that). They are the
// server's types too; the names below keep them reachable as api.X.

// The API's documents.
type (
	Service           = apiclient.Service
	ServiceStatus     = apiclient.ServiceStatus
	RealServer        = apiclient.RealServer
	RealServerStatus  = apiclient.RealServerStatus
	Health            = apiclient.Health
	CheckResult       = apiclient.CheckResult
	Stats             = apiclient.Stats
	Rates             = apiclient.Rates
	BackendHealth     = apiclient.BackendHealth
	VRRP              = apiclient.VRRP
	VRRPInstance      = apiclient.VRRPInstance
	StatsReport       = apiclient.StatsReport
	ServiceStats      = apiclient.ServiceStats
	BackendStats      = apiclient.BackendStats
	Version           = apiclient.Version
	Error             = apiclient.Error
	Connection        = apiclient.Connection
	AgentFigures      = apiclient.AgentFigures
	SyncState         = apiclient.SyncState
	SyncResync        = apiclient.SyncResync
	SyncPeer          = apiclient.SyncPeer
	SyncCounters      = apiclient.SyncCounters
	SyncDaemonRequest = apiclient.SyncDaemonRequest
	DiscoveryReport   = apiclient.DiscoveryReport
)

// Client talks to a govs control API.
type Client = apiclient.Client

// Error codes.
const (
	CodeInvalid       = apiclient.CodeInvalid
	CodeNotFound      = apiclient.CodeNotFound
	CodeNoService     = apiclient.CodeNoService
	CodeServiceExists = apiclient.CodeServiceExists
	CodeNoDest        = apiclient.CodeNoDest
	CodeDestExists    = apiclient.CodeDestExists
	CodeRefused       = apiclient.CodeRefused
	CodeUnauthorized  = apiclient.CodeUnauthorized
	CodeForbidden     = apiclient.CodeForbidden
	CodeInternal      = apiclient.CodeInternal
)

// Sockets.
const (
	DefaultSocket = apiclient.DefaultSocket
	SocketEnv     = apiclient.SocketEnv
)

// NewUnixClient returns a client of the API on the unix socket at path.
func NewUnixClient(path string) *Client { return apiclient.NewUnixClient(path) }

// NewClient returns a client of the API at baseURL presenting token; hc may
// be nil.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	return apiclient.NewClient(baseURL, token, hc)
}

// ServicePath is the API path of a virtual service.
func ServicePath(proto, addr string) string { return apiclient.ServicePath(proto, addr) }

// RealServerPath is the API path of a real server.
func RealServerPath(proto, addr, server string) string {
	return apiclient.RealServerPath(proto, addr, server)
}

// DefaultSocketFor is the socket a user's govs serves by default
// (apiclient.DefaultSocketFor).
func DefaultSocketFor(uid int, getenv func(string) string) string {
	return apiclient.DefaultSocketFor(uid, getenv)
}

// DefaultSocketPath is DefaultSocketFor this process's user.
func DefaultSocketPath() string { return apiclient.DefaultSocketPath() }

// ClientSocket is where a client looks by default (apiclient.ClientSocket).
func ClientSocket(uid int, getenv func(string) string, exists func(string) bool) string {
	return apiclient.ClientSocket(uid, getenv, exists)
}

// ClientSocketPath is ClientSocket for this process.
func ClientSocketPath() string { return apiclient.ClientSocketPath() }
