package api

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exposedMetrics are the metric families govs's collectors describe, with
// their labels.
func exposedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc, 128)
	(&collector{}).Describe(ch)
	// The connection sync's and BGP's, registered when they are configured.
	(&syncCollector{}).Describe(ch)
	bgpCollector{}.Describe(ch)
	forecastCollector{}.Describe(ch) // forecast.go: forecasts, capacity, standby
	discoveryCollector{}.Describe(ch)
	close(ch)
	nameRE := regexp.MustCompile(`fqName: "([^"]+)"`)
	labelsRE := regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	out := map[string][]string{}
	for d := range ch {
		s := d.String()
		name, labels := nameRE.FindStringSubmatch(s), labelsRE.FindStringSubmatch(s)
		if name == nil || labels == nil {
			t.Fatalf("cannot read the metric's name and labels from %s", s)
		}
		out[name[1]] = strings.FieldsFunc(labels[1], func(r rune) bool { return r == ',' })
	}
	if len(out) < 10 {
		t.Fatalf("only %d metrics described", len(out))
	}
	// The process collector's, which the dashboard and rules use for the
	// descriptors (TestMetricsOperatorSignals checks they are served).
	out["process_open_fds"], out["process_max_fds"] = nil, nil
	return out
}

// lookupMetric finds a series name among the exposed metrics: a histogram's
// series are its name with _bucket (labelled le), _sum and _count.
func lookupMetric(metrics map[string][]string, name string) ([]string, bool) {
	if l, ok := metrics[name]; ok {
		return l, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if l, ok := metrics[base]; ok {
				return append(slices.Clone(l), "le"), true
			}
		}
	}
	return nil, false
}

// TestGrafanaDashboard keeps docs/grafana-dashboard.json true: it is a
// dashboard to import (its data source an input), and every metric and
// label its queries use is one /metrics exposes.
func TestGrafanaDashboard(t *testing.T) {
	src, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Datasource   struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var dash struct {
		Inputs []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			PluginID string `json:"pluginId"`
		} `json:"__inputs"`
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query struct {
					Query string `json:"query"`
				} `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(src, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want the one Prometheus data source DS_PROMETHEUS", dash.Inputs)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Error("the dashboard has no title or uid")
	}

	metrics := exposedMetrics(t)
	metricRE := regexp.MustCompile(`\b[a-z_][a-z0-9_]*\b`)
	selectorRE := regexp.MustCompile(`\{([^}]*)\}`)
	matcherRE := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupRE := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendRE := regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

	used := map[string]bool{}
	// check reports the metrics of a query that /metrics does not expose,
	// and the labels it names that none of its metrics has. Prometheus adds
	// job and instance to every series; a metric's own label of that name
	// becomes exported_NAME.
	check := func(where, expr, legend string) {
		allowed := map[string]bool{"job": true, "instance": true}
		n := 0
		for _, word := range metricRE.FindAllString(expr, -1) {
			if !strings.HasPrefix(word, "govs_") && !strings.HasPrefix(word, "process_") {
				continue
			}
			labels, ok := lookupMetric(metrics, word)
			if !ok {
				t.Errorf("%s: %s is not a metric govs exposes", where, word)
				continue
			}
			n++
			used[word] = true
			for _, l := range labels {
				allowed[l] = true
				if l == "job" || l == "instance" {
					allowed["exported_"+l] = true
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: the query %q uses no govs metric", where, expr)
			return
		}
		var names []string
		for _, sel := range selectorRE.FindAllStringSubmatch(expr, -1) {
			for _, m := range matcherRE.FindAllStringSubmatch(sel[1], -1) {
				names = append(names, m[1])
			}
		}
		for _, g := range groupRE.FindAllStringSubmatch(expr, -1) {
			for l := range strings.SplitSeq(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					names = append(names, l)
				}
			}
		}
		for _, m := range legendRE.FindAllStringSubmatch(legend, -1) {
			names = append(names, m[1])
		}
		for _, l := range names {
			if !allowed[l] {
				t.Errorf("%s: label %q is not a label of the metrics in %q", where, l, expr)
			}
		}
	}

	ids := map[int]bool{}
	var walk func([]panel)
	queries := 0
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: data source is not ${DS_PROMETHEUS}", p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "${DS_PROMETHEUS}" {
					t.Errorf("panel %q: a query's data source is not ${DS_PROMETHEUS}", p.Title)
				}
				check("panel "+p.Title, tg.Expr, tg.LegendFormat)
				queries++
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		check("variable "+v.Name, v.Query.Query, "")
	}
	if queries < 8 {
		t.Errorf("only %d queries", queries)
	}
	// The contract's metrics all have a panel.
	for _, m := range []string{"govs_service_connections_total", "govs_service_bytes_total", "govs_backend_connections_active",
		"govs_backend_connections_inactive", "govs_backend_weight", "govs_backend_up", "govs_healthcheck_duration_seconds",
		"govs_vrrp_state",
		// and the operator's signals of docs/monitoring.md.
		"govs_backend_connect_duration_seconds_bucket", "govs_backend_connection_duration_seconds_bucket",
		"govs_service_quorum_up", "govs_service_sorry_active", "govs_service_udp_flows", "govs_service_udp_max_flows",
		"govs_service_udp_flow_limit_drops_total", "process_open_fds", "process_max_fds",
		"govs_config_last_reload_successful", "govs_config_last_reload_success_timestamp_seconds", "govs_build_info",
		// and connection sync's and BGP's.
		"govs_sync_lag_seconds", "govs_sync_messages_total", "govs_sync_drops_total", "govs_bgp_session_up", "govs_bgp_announced"} {
		if !used[m] {
			t.Errorf("no panel queries %s", m)
		}
	}
	t.Logf("%d queries use %d metrics", queries, len(used))
}
