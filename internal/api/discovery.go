package api

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	discovery "github.com/govs-lb/govs/internal/discovery/status"
)

// Discovery sources' status: GET /api/v1/discovery and the
// govs_discovery_* metrics (docs/discovery.md).

// DiscoverySource gives the discovery blocks' status: *discovery.Runner.
type DiscoverySource interface {
	Status() []discovery.Status
}

type discoveryHolder struct {
	mu   sync.Mutex
	src  DiscoverySource
	once sync.Once
}

// SetDiscovery makes the server report the sources of src (nil: none).
func (s *Server) SetDiscovery(src DiscoverySource) {
	s.disc.mu.Lock()
	s.disc.src = src
	s.disc.mu.Unlock()
	s.disc.once.Do(func() { s.reg.MustRegister(discoveryCollector{s}) })
}

func (s *Server) discoveryStatus() []discovery.Status {
	s.disc.mu.Lock()
	src := s.disc.src
	s.disc.mu.Unlock()
	if src == nil {
		return []discovery.Status{}
	}
	return src.Status()
}

func (s *Server) getDiscovery(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, DiscoveryReport{Sources: s.discoveryStatus()})
	return nil
}

var (
	discLabels         = []string{"service", "origin"}
	descDiscoveryUp    = prometheus.NewDesc("govs_discovery_up", "1 if the discovery source's last answer succeeded, 0 if it failed.", discLabels, nil)
	descDiscoveryFound = prometheus.NewDesc("govs_discovery_servers",
		"Real servers of the discovery source: found (in its last good answer), active (in the pool), draining (left the source, at weight 0).",
		[]string{"service", "origin", "state"}, nil)
	descDiscoveryHeld = prometheus.NewDesc("govs_discovery_held",
		"1 while a sudden drop of the discovery source is held until confirmed.", discLabels, nil)
	descDiscoveryErrors = prometheus.NewDesc("govs_discovery_errors_total",
		"Failed answers of the discovery source.", discLabels, nil)
	descDiscoveryHeldTotal = prometheus.NewDesc("govs_discovery_held_total",
		"Sudden drops of the discovery source held until confirmed.", discLabels, nil)
	descDiscoveryApplies = prometheus.NewDesc("govs_discovery_applies_total",
		"Changes of the discovered set handed to the director.", discLabels, nil)
	descDiscoveryLastSuccess = prometheus.NewDesc("govs_discovery_last_success_timestamp_seconds",
		"When the discovery source last answered (Unix time).", discLabels, nil)
)

type discoveryCollector struct{ s *Server }

func (c discoveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDiscoveryUp, descDiscoveryFound, descDiscoveryHeld, descDiscoveryErrors,
		descDiscoveryHeldTotal, descDiscoveryApplies, descDiscoveryLastSuccess} {
		ch <- d
	}
}

func (c discoveryCollector) Collect(ch chan<- prometheus.Metric) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, st := range c.s.discoveryStatus() {
		l := []string{st.Service, st.Origin}
		ch <- prometheus.MustNewConstMetric(descDiscoveryUp, prometheus.GaugeValue, b2f(st.OK), l...)
		ch <- prometheus.MustNewConstMetric(descDiscoveryFound, prometheus.GaugeValue, float64(st.Found), st.Service, st.Origin, "found")
		ch <- prometheus.MustNewConstMetric(descDiscoveryFound, prometheus.GaugeValue, float64(st.Active), st.Service, st.Origin, "active")
		ch <- prometheus.MustNewConstMetric(descDiscoveryFound, prometheus.GaugeValue, float64(st.Draining), st.Service, st.Origin, "draining")
		ch <- prometheus.MustNewConstMetric(descDiscoveryHeld, prometheus.GaugeValue, b2f(st.Held != nil), l...)
		ch <- prometheus.MustNewConstMetric(descDiscoveryErrors, prometheus.CounterValue, float64(st.Errors), l...)
		ch <- prometheus.MustNewConstMetric(descDiscoveryHeldTotal, prometheus.CounterValue, float64(st.HeldTotal), l...)
		ch <- prometheus.MustNewConstMetric(descDiscoveryApplies, prometheus.CounterValue, float64(st.Applies), l...)
		if st.LastSuccess != nil {
			ch <- prometheus.MustNewConstMetric(descDiscoveryLastSuccess, prometheus.GaugeValue, float64(st.LastSuccess.UnixNano())/1e9, l...)
		}
	}
}

// dropDiscovered removes the discovered real servers (those with an
// origin) from a service's request body: a client that echoes a service
// it read sends them back, and the director keeps the source's own set
// whatever a request says.
func dropDiscovered(obj map[string]any) {
	list, ok := obj["real_servers"].([]any)
	if !ok {
		return
	}
	kept := list[:0:0]
	for _, item := range list {
		if m, ok := item.(map[string]any); ok {
			if o, has := m["origin"]; has && o != "" && o != nil {
				continue
			}
		}
		kept = append(kept, item)
	}
	obj["real_servers"] = kept
}
