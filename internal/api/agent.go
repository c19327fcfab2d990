package api

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/health"
)

func optInt(v int) *int {
	if v < 0 {
		return nil
	}
	return &v
}

// agentFigures reads the last agent reply of a real server; nil if none.
func agentFigures(hs director.HealthStatus) *AgentFigures {
	if hs.AgentAt.IsZero() {
		return nil
	}
	a := hs.Agent
	f := &AgentFigures{At: hs.AgentAt, WeightPercent: optInt(a.Percent), CPUPercent: optInt(a.CPU),
		MemoryPercent: optInt(a.Mem), PressurePct: optInt(a.PSI), IOPercent: optInt(a.IO), InFlight: optInt(a.InFlight)}
	if a.LoadPerCPU >= 0 {
		v := a.LoadPerCPU
		f.LoadPerCPU = &v
	}
	if a.Latency >= 0 {
		v := a.Latency.Seconds()
		f.LatencySeconds = &v
	}
	switch a.Admin {
	case health.AdminReady:
		f.Admin = "ready"
	case health.AdminDrain:
		f.Admin = "drain"
	case health.AdminMaint:
		f.Admin = "maint"
	}
	return f
}

// The agent's figures in /metrics, one gauge each, for real servers whose
// agent sent them (govs agent; a plain HAProxy agent sends only the
// weight).
var (
	descAgentWeight = prometheus.NewDesc("govs_backend_agent_weight_percent",
		"Weight percentage the real server's agent answered last.", rsLabels, nil)
	descAgentCPU = prometheus.NewDesc("govs_backend_cpu_busy_ratio",
		"CPU busy share of the real server (0-1, smoothed), from its govs agent.", rsLabels, nil)
	descAgentMem = prometheus.NewDesc("govs_backend_memory_used_ratio",
		"Memory used share of the real server (1 - MemAvailable/MemTotal), from its govs agent.", rsLabels, nil)
	descAgentLoad = prometheus.NewDesc("govs_backend_load_per_cpu",
		"1-minute load average per CPU of the real server, from its govs agent.", rsLabels, nil)
	descAgentPSI = prometheus.NewDesc("govs_backend_pressure_ratio",
		"Highest PSI stall share (cpu, memory, io; 0-1, smoothed) of the real server, from its govs agent.", rsLabels, nil)
	descAgentIO = prometheus.NewDesc("govs_backend_io_busy_ratio",
		"Busiest disk's busy share (0-1, smoothed) of the real server, from its govs agent.", rsLabels, nil)
	descAgentInFlight = prometheus.NewDesc("govs_backend_inflight_requests",
		"Established connections to the service on the real server, as its agent counts them.", rsLabels, nil)
	descAgentLatency = prometheus.NewDesc("govs_backend_latency_seconds",
		"Latency of the real server's agent's probe.", rsLabels, nil)
	descAgentAge = prometheus.NewDesc("govs_backend_agent_age_seconds",
		"Seconds since the real server's agent last answered.", rsLabels, nil)
)

// agentCollector exposes the agents' figures; it is a collector of its
// own so the main one stays as it is.
type agentCollector struct{ s *Server }

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAgentWeight, descAgentCPU, descAgentMem, descAgentLoad, descAgentPSI,
		descAgentIO, descAgentInFlight, descAgentLatency, descAgentAge} {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, vs := range c.s.d.Services() {
		name := vs.Settings().Name
		for _, rs := range vs.RealServers() {
			hs := rs.Health()
			if hs.AgentAt.IsZero() {
				continue
			}
			be, a := rs.Addr.String(), hs.Agent
			gauge := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name, be)
			}
			gauge(descAgentAge, now.Sub(hs.AgentAt).Seconds())
			if a.Percent >= 0 {
				gauge(descAgentWeight, float64(a.Percent))
			}
			for _, x := range []struct {
				d *prometheus.Desc
				v int
			}{{descAgentCPU, a.CPU}, {descAgentMem, a.Mem}, {descAgentPSI, a.PSI}, {descAgentIO, a.IO}} {
				if x.v >= 0 {
					gauge(x.d, float64(x.v)/100)
				}
			}
			if a.LoadPerCPU >= 0 {
				gauge(descAgentLoad, a.LoadPerCPU)
			}
			if a.InFlight >= 0 {
				gauge(descAgentInFlight, float64(a.InFlight))
			}
			if a.Latency >= 0 {
				gauge(descAgentLatency, a.Latency.Seconds())
			}
		}
	}
}
