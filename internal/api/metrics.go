package api

import (
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// Metric families. Labels: service is the virtual service's name (by
// default PROTOCOL/VIP:PORT), backend the real server's ADDRESS:PORT.
var (
	svcLabels = []string{"service"}
	rsLabels  = []string{"service", "backend"}

	descServiceConns = prometheus.NewDesc("govs_service_connections_total",
		"Connections (TCP) or flows (UDP) scheduled by the virtual service.", svcLabels, nil)
	descServiceBytes = prometheus.NewDesc("govs_service_bytes_total",
		"Bytes forwarded by the virtual service; direction in is client to real server, out the reverse.",
		[]string{"service", "direction"}, nil)
	descServicePackets = prometheus.NewDesc("govs_service_packets_total",
		"Datagrams forwarded by the virtual service (UDP only).", []string{"service", "direction"}, nil)
	descServiceErrors = prometheus.NewDesc("govs_service_errors_total",
		"Failures: connect (a real server failed, the connection was retried on another), refused (no real server "+
			"could take the connection), dropped (UDP datagrams dropped), client_limit (connections or flows refused by a "+
			"per-client limit), overload (UDP flows shed for want of file descriptors).", []string{"service", "kind"}, nil)
	descBackendConns = prometheus.NewDesc("govs_backend_connections_total",
		"Connections (TCP) or flows (UDP) scheduled to the real server.", rsLabels, nil)
	descBackendBytes = prometheus.NewDesc("govs_backend_bytes_total",
		"Bytes forwarded to and from the real server; direction in is client to real server.",
		[]string{"service", "backend", "direction"}, nil)
	descBackendActive = prometheus.NewDesc("govs_backend_connections_active",
		"Established connections of the real server (ipvsadm ActiveConn).", rsLabels, nil)
	descBackendInactive = prometheus.NewDesc("govs_backend_connections_inactive",
		"Other connections and UDP flows of the real server (ipvsadm InActConn).", rsLabels, nil)
	descBackendWeight = prometheus.NewDesc("govs_backend_weight",
		"Effective weight of the real server: 0 takes no new connections.", rsLabels, nil)
	descBackendUp = prometheus.NewDesc("govs_backend_up",
		"1 if the real server is in service by health (always 1 without a health check), 0 if not.", rsLabels, nil)
	descBackendDrained = prometheus.NewDesc("govs_backend_drained",
		"1 if an operator drained the real server (govsadm, the API); an agent's drain shows in its health state and weight 0.", rsLabels, nil)
	descCheckDuration = prometheus.NewDesc("govs_healthcheck_duration_seconds",
		"Duration of the real server's last health check.", []string{"service", "backend", "check"}, nil)
	descCheckOK = prometheus.NewDesc("govs_healthcheck_success",
		"1 if the real server's last health check passed, 0 if not.", []string{"service", "backend", "check"}, nil)
	descChecks = prometheus.NewDesc("govs_healthcheck_checks_total",
		"Health checks run on the real server.", []string{"service", "backend", "check"}, nil)
	descVRRPState = prometheus.NewDesc("govs_vrrp_state",
		"State of the VRRP instance: 0 init, 1 backup, 2 master, 3 fault.",
		[]string{"instance", "interface", "vrid"}, nil)
	descVRRPPriority = prometheus.NewDesc("govs_vrrp_priority",
		"Effective priority of the VRRP instance.", []string{"instance", "interface", "vrid"}, nil)

	// Operator's signals: quorum, sorry server, latency, flow table, the
	// configuration and the build (docs/monitoring.md).
	descServiceQuorum = prometheus.NewDesc("govs_service_quorum_up",
		"1 if the virtual service has its quorum (the weight of its live real servers reaches quorum), 0 if not.",
		svcLabels, nil)
	descServiceSorry = prometheus.NewDesc("govs_service_sorry_active",
		"1 if the virtual service's sorry server takes its new connections (quorum lost), 0 if not.", svcLabels, nil)
	descServiceFlows = prometheus.NewDesc("govs_service_udp_flows",
		"UDP flows in the proxy's flow table of the virtual service (UDP proxy services only).", svcLabels, nil)
	descServiceMaxFlows = prometheus.NewDesc("govs_service_udp_max_flows",
		"The flow table's size, max_flows (UDP proxy services only).", svcLabels, nil)
	descServiceFlowLimit = prometheus.NewDesc("govs_service_udp_flow_limit_drops_total",
		"Datagrams of new UDP flows dropped because the flow table was at max_flows; they are also counted in "+
			"govs_service_errors_total{kind=\"dropped\"}.", svcLabels, nil)
	descBackendConnect = prometheus.NewDesc("govs_backend_connect_duration_seconds",
		"Time to connect to the real server, from scheduling to the end of the connect; a failed connect counts "+
			"as the time it waited (proxy services only).", rsLabels, nil)
	descBackendDuration = prometheus.NewDesc("govs_backend_connection_duration_seconds",
		"Lifetime of the connections to the real server, from scheduling to close (TCP proxy services only).",
		rsLabels, nil)
	descReloadOK = prometheus.NewDesc("govs_config_last_reload_successful",
		"1 if the last configuration load (at start or on SIGHUP) succeeded, 0 if it was rejected.", nil, nil)
	descReloadAt = prometheus.NewDesc("govs_config_last_reload_success_timestamp_seconds",
		"Unix time of the last successful configuration load.", nil, nil)
	descReloads = prometheus.NewDesc("govs_config_reloads_total",
		"Configuration reloads (SIGHUP) by result: success or failure.", []string{"result"}, nil)
	descBuildInfo = prometheus.NewDesc("govs_build_info",
		"Always 1; labels: the govs version and the VCS commit it was built from.", []string{"version", "commit"}, nil)
)

// newRegistry returns the registry behind /metrics: govs's collector,
// which reads the director's state at each scrape, and the Go runtime's and
// the process's.
func newRegistry(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{s: s}, &agentCollector{s: s}, terminationCollector{})
	return reg
}

// collector reads the director at scrape time. Counters are the
// director's, which only grow and survive reloads for the services and
// real servers a reload keeps; govsadm -Z does not reset them.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServiceConns, descServiceBytes, descServicePackets, descServiceErrors,
		descBackendConns, descBackendBytes, descBackendActive, descBackendInactive, descBackendWeight, descBackendUp,
		descBackendDrained, descCheckDuration, descCheckOK, descChecks, descVRRPState, descVRRPPriority,
		descServiceQuorum, descServiceSorry, descServiceFlows, descServiceMaxFlows, descServiceFlowLimit,
		descBackendConnect, descBackendDuration, descReloadOK, descReloadAt, descReloads, descBuildInfo} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	c.collectProcess(counter, gauge)
	for _, vs := range c.s.d.Services() {
		set := vs.Settings()
		name := set.Name
		st := vs.Stats.Snapshot()
		counter(descServiceConns, st.Conns, name)
		counter(descServiceBytes, st.InBytes, name, "in")
		counter(descServiceBytes, st.OutBytes, name, "out")
		counter(descServicePackets, st.InPkts, name, "in")
		counter(descServicePackets, st.OutPkts, name, "out")
		counter(descServiceErrors, st.ConnectErrors, name, "connect")
		counter(descServiceErrors, st.Refused, name, "refused")
		counter(descServiceErrors, st.Dropped, name, "dropped")
		counter(descServiceErrors, st.ClientLimited, name, "client_limit")
		counter(descServiceErrors, st.Overload, name, "overload")
		gauge(descServiceQuorum, b2f(vs.QuorumUp()), name)
		_, sorry := vs.SorryServer()
		gauge(descServiceSorry, b2f(sorry), name)
		proxy := set.Forwarding == config.Proxy
		if proxy && vs.Protocol == config.UDP {
			gauge(descServiceFlows, float64(vs.Flows.Load()), name)
			if want := vs.Desired(); want != nil {
				gauge(descServiceMaxFlows, float64(want.MaxFlows), name)
			}
			counter(descServiceFlowLimit, st.FlowLimit, name)
		}
		for _, rs := range vs.RealServers() {
			c.collectBackend(ch, vs, rs, name, counter, gauge)
			if proxy {
				histogram(ch, descBackendConnect, rs.Latency.Connect.Snapshot(), name, rs.Addr.String())
				if vs.Protocol == config.TCP {
					histogram(ch, descBackendDuration, rs.Latency.Duration.Snapshot(), name, rs.Addr.String())
				}
			}
		}
	}
	for _, n := range c.s.vrrpNodes() {
		vrid := strconv.Itoa(int(n.VRID))
		gauge(descVRRPState, float64(n.State), n.Name, n.Interface, vrid)
		gauge(descVRRPPriority, float64(n.Priority), n.Name, n.Interface, vrid)
	}
}

func (c *collector) collectBackend(ch chan<- prometheus.Metric, vs *director.VirtualService, rs *director.RealServer, name string,
	counter func(*prometheus.Desc, uint64, ...string), gauge func(*prometheus.Desc, float64, ...string)) {
	be := rs.Addr.String()
	st := rs.Stats.Snapshot()
	rt := c.s.realServerRuntime(vs, rs)
	counter(descBackendConns, st.Conns, name, be)
	counter(descBackendBytes, st.InBytes, name, be, "in")
	counter(descBackendBytes, st.OutBytes, name, be, "out")
	gauge(descBackendActive, float64(rt.ActiveConnections), name, be)
	gauge(descBackendInactive, float64(rt.InactiveConnections), name, be)
	gauge(descBackendWeight, float64(rt.Weight), name, be)
	gauge(descBackendUp, b2f(rt.Up), name, be)
	gauge(descBackendDrained, b2f(rt.Drained), name, be)
	if h := rt.Health; h.Checked && h.Last != nil {
		gauge(descCheckDuration, h.Last.Latency, name, be, h.Check)
		gauge(descCheckOK, b2f(h.Last.OK), name, be, h.Check)
		counter(descChecks, h.Checks, name, be, h.Check)
	}
}

// collectProcess exposes what is the daemon's rather than a service's:
// the last configuration load and the build.
func (c *collector) collectProcess(counter func(*prometheus.Desc, uint64, ...string),
	gauge func(*prometheus.Desc, float64, ...string)) {
	r := c.s.reloads.Load()
	gauge(descReloadOK, b2f(r.ok))
	gauge(descReloadAt, float64(r.lastOK.UnixNano())/1e9)
	counter(descReloads, r.succeeded, "success")
	counter(descReloads, r.failed, "failure")
	gauge(descBuildInfo, 1, c.s.version, buildCommit())
}

func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h director.HistogramSnapshot, labels ...string) {
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, h.Buckets, labels...)
}

// reloadState is the record of configuration loads behind the
// govs_config_* metrics, replaced whole on each reload.
type reloadState struct {
	ok                bool
	lastOK            time.Time
	succeeded, failed uint64
}

// ConfigReloaded records the result of a configuration reload (SIGHUP) for
// /metrics. The load at start counts as the first success (New).
func (s *Server) ConfigReloaded(ok bool, at time.Time) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	r := *s.reloads.Load()
	r.ok = ok
	if ok {
		r.lastOK = at
		r.succeeded++
	} else {
		r.failed++
	}
	s.reloads.Store(&r)
}

// buildCommit is the VCS revision the binary was built from, as the Go
// toolchain stamped it; "unknown" without one (a build outside git).
var buildCommit = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			rev = st.Value
		case "vcs.modified":
			dirty = st.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
})

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
