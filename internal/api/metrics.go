package api

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

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
			"could take the connection), dropped (UDP datagrams dropped).", []string{"service", "kind"}, nil)
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
		"1 if the real server is draining (an operator's or an agent's drain).", rsLabels, nil)
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
)

// newRegistry returns the registry behind /metrics: govs's collector,
// which reads the director's state at each scrape, and the Go runtime's and
// the process's.
func newRegistry(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{s: s}, &agentCollector{s: s})
	return reg
}

// collector reads the director at scrape time. Counters are the
// director's, which only grow and survive reloads for the services and
// real servers a reload keeps; govsadm -Z does not reset them.
type collector struct{ s *Server }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServiceConns, descServiceBytes, descServicePackets, descServiceErrors,
		descBackendConns, descBackendBytes, descBackendActive, descBackendInactive, descBackendWeight, descBackendUp,
		descBackendDrained, descCheckDuration, descCheckOK, descChecks, descVRRPState, descVRRPPriority} {
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
	for _, vs := range c.s.d.Services() {
		name := vs.Settings().Name
		st := vs.Stats.Snapshot()
		counter(descServiceConns, st.Conns, name)
		counter(descServiceBytes, st.InBytes, name, "in")
		counter(descServiceBytes, st.OutBytes, name, "out")
		counter(descServicePackets, st.InPkts, name, "in")
		counter(descServicePackets, st.OutPkts, name, "out")
		counter(descServiceErrors, st.ConnectErrors, name, "connect")
		counter(descServiceErrors, st.Refused, name, "refused")
		counter(descServiceErrors, st.Dropped, name, "dropped")
		for _, rs := range vs.RealServers() {
			c.collectBackend(ch, vs, rs, name, counter, gauge)
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

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
