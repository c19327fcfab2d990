package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a govs control API.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewUnixClient returns a client of the API on the unix socket at path.
func NewUnixClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second,
	}
	return &Client{base: "http://govs", hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// NewClient returns a client of the API at baseURL ("https://host:port")
// presenting token; hc may be nil.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// ServicePath is the API path of a virtual service.
func ServicePath(proto, addr string) string {
	return "/api/v1/services/" + url.PathEscape(strings.ToLower(proto)) + "/" + url.PathEscape(addr)
}

// RealServerPath is the API path of a real server.
func RealServerPath(proto, addr, server string) string {
	return ServicePath(proto, addr) + "/servers/" + url.PathEscape(server)
}

// Do sends a request with a JSON body (nil for none) and decodes a JSON
// answer into out (nil to discard it). An error answer is returned as an
// *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		e.Status = resp.StatusCode
		return e
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Services lists the virtual services.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var out []Service
	err := c.Do(ctx, http.MethodGet, "/api/v1/services", nil, &out)
	return out, err
}

// Service returns one virtual service.
func (c *Client) Service(ctx context.Context, proto, addr string) (*Service, error) {
	out := &Service{}
	return out, c.Do(ctx, http.MethodGet, ServicePath(proto, addr), nil, out)
}

// CreateService adds a virtual service; spec has the keys of the
// configuration file.
func (c *Client) CreateService(ctx context.Context, spec map[string]any) (*Service, error) {
	out := &Service{}
	return out, c.Do(ctx, http.MethodPost, "/api/v1/services", spec, out)
}

// PatchService changes a virtual service by JSON merge patch: keys set to
// nil return to their defaults.
func (c *Client) PatchService(ctx context.Context, proto, addr string, patch map[string]any) (*Service, error) {
	out := &Service{}
	return out, c.Do(ctx, http.MethodPatch, ServicePath(proto, addr), patch, out)
}

// DeleteService removes a virtual service.
func (c *Client) DeleteService(ctx context.Context, proto, addr string) error {
	return c.Do(ctx, http.MethodDelete, ServicePath(proto, addr), nil, nil)
}

// Clear removes every virtual service.
func (c *Client) Clear(ctx context.Context) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/services", nil, nil)
}

func withForwarding(path, forwarding string) string {
	if forwarding == "" {
		return path
	}
	return path + "?forwarding=" + url.QueryEscape(forwarding)
}

// CreateRealServer adds a real server to a virtual service. forwarding, if
// not empty, is the method the real server needs (govsadm -m): the service
// must use it, or have no real server yet and take it.
func (c *Client) CreateRealServer(ctx context.Context, proto, addr string, spec map[string]any, forwarding string) (*RealServer, error) {
	out := &RealServer{}
	return out, c.Do(ctx, http.MethodPost, withForwarding(ServicePath(proto, addr)+"/servers", forwarding), spec, out)
}

// PatchRealServer changes a real server by JSON merge patch.
func (c *Client) PatchRealServer(ctx context.Context, proto, addr, server string, patch map[string]any, forwarding string) (*RealServer, error) {
	out := &RealServer{}
	return out, c.Do(ctx, http.MethodPatch, withForwarding(RealServerPath(proto, addr, server), forwarding), patch, out)
}

// DeleteRealServer removes a real server.
func (c *Client) DeleteRealServer(ctx context.Context, proto, addr, server string) error {
	return c.Do(ctx, http.MethodDelete, RealServerPath(proto, addr, server), nil, nil)
}

// Drain stops (on) or resumes (!on) new connections to a real server;
// established ones keep running.
func (c *Client) Drain(ctx context.Context, proto, addr, server string, on bool) (*RealServer, error) {
	method := http.MethodPut
	if !on {
		method = http.MethodDelete
	}
	out := &RealServer{}
	return out, c.Do(ctx, method, RealServerPath(proto, addr, server)+"/drain", nil, out)
}

// Zero zeroes the API's counters of a virtual service, or of all when proto
// is empty. The Prometheus counters are not reset.
func (c *Client) Zero(ctx context.Context, proto, addr string) error {
	if proto == "" {
		return c.Do(ctx, http.MethodPost, "/api/v1/zero", nil, nil)
	}
	return c.Do(ctx, http.MethodPost, ServicePath(proto, addr)+"/zero", nil, nil)
}

// Health returns the health state of every real server.
func (c *Client) Health(ctx context.Context) ([]BackendHealth, error) {
	var out []BackendHealth
	return out, c.Do(ctx, http.MethodGet, "/api/v1/health", nil, &out)
}

// VRRP returns the VRRP instances' state.
func (c *Client) VRRP(ctx context.Context) (*VRRP, error) {
	out := &VRRP{}
	return out, c.Do(ctx, http.MethodGet, "/api/v1/vrrp", nil, out)
}

// Stats returns the counters and rates.
func (c *Client) Stats(ctx context.Context) (*StatsReport, error) {
	out := &StatsReport{}
	return out, c.Do(ctx, http.MethodGet, "/api/v1/stats", nil, out)
}

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (*Version, error) {
	out := &Version{}
	return out, c.Do(ctx, http.MethodGet, "/api/v1/version", nil, out)
}

// Connections returns the connection table: every dataplane's connections
// and the persistence templates.
func (c *Client) Connections(ctx context.Context) ([]Connection, error) {
	var out []Connection
	return out, c.Do(ctx, http.MethodGet, "/api/v1/connections", nil, &out)
}

// Discovery returns the discovery sources' status.
func (c *Client) Discovery(ctx context.Context) (*DiscoveryReport, error) {
	out := &DiscoveryReport{}
	return out, c.Do(ctx, http.MethodGet, "/api/v1/discovery", nil, out)
}
