package api

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govs-lb/govs/internal/accesslog"
)

var (
	descBackendTerminations = prometheus.NewDesc("govs_backend_terminations_total",
		"Finished connections (TCP) and flows (UDP) of the real server by termination code (docs/logs.md: two letters, "+
			"who ended it and in which phase; -- is a normal end). backend is empty for connections no real server took.",
		[]string{"service", "backend", "termination"}, nil)
	descAccessLogLines = prometheus.NewDesc("govs_access_log_lines_total",
		"Access-log lines written to the file or syslog sink (logging.access_log).", []string{"target"}, nil)
	descAccessLogDropped = prometheus.NewDesc("govs_access_log_dropped_total",
		"Access-log lines lost: the queue to the sink was full, or the sink failed (syslog server unreachable, "+
			"disk full).", []string{"target"}, nil)
	descConntrackOverruns = prometheus.NewDesc("govs_access_log_conntrack_overruns_total",
		"Times the kernel dropped conntrack destroy events because govs read them too slowly: access-log lines of "+
			"nat and fullnat flows are missing (how many is unknown).", nil, nil)
)

// terminationCollector exposes the dataplane's termination counts and the
// access log's; a collector of its own so the main one stays as it is.
// The counts are the process's (accesslog.Terminations): they survive
// reloads, and a real server removed keeps its series.
type terminationCollector struct{}

func (terminationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBackendTerminations
	ch <- descAccessLogLines
	ch <- descAccessLogDropped
	ch <- descConntrackOverruns
}

func (terminationCollector) Collect(ch chan<- prometheus.Metric) {
	accesslog.Terminations.Each(func(service string, backend netip.AddrPort, code accesslog.Termination, n uint64) {
		be := ""
		if backend.IsValid() {
			be = backend.String()
		}
		ch <- prometheus.MustNewConstMetric(descBackendTerminations, prometheus.CounterValue, float64(n),
			service, be, code.String())
	})
	if w := accesslog.Current(); w != nil {
		ch <- prometheus.MustNewConstMetric(descAccessLogLines, prometheus.CounterValue, float64(w.Written()), w.Target())
		ch <- prometheus.MustNewConstMetric(descAccessLogDropped, prometheus.CounterValue, float64(w.Dropped()), w.Target())
	}
	ch <- prometheus.MustNewConstMetric(descConntrackOverruns, prometheus.CounterValue, float64(accesslog.ConntrackOverruns.Load()))
}
