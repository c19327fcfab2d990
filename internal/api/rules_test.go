package api

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	rulesFile     = "../../docs/prometheus/govs-rules.yaml"
	rulesTestFile = "../../docs/prometheus/govs-rules.test.yaml"
)

// TestPrometheusRules keeps docs/prometheus/govs-rules.yaml true: promtool
// accepts it and its unit tests (govs-rules.test.yaml, synthetic series)
// pass; every alert has a severity, a summary, a description and a runbook,
// a unit test, and a section in docs/monitoring.md; and every metric a rule
// reads is one /metrics exposes.
func TestPrometheusRules(t *testing.T) {
	src, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Record      string            `yaml:"record"`
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(src, &file); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	metrics := exposedMetrics(t)
	recorded := map[string]bool{}
	nameRE := regexp.MustCompile(`\b(?:govs|process)_[a-z0-9_]+\b|\bgovs:[a-z0-9_:]+\b`)
	alerts := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			where := r.Record + r.Alert
			for _, m := range nameRE.FindAllString(r.Expr, -1) {
				if strings.HasPrefix(m, "govs:") {
					if !recorded[m] {
						t.Errorf("%s reads %s, which no earlier rule records", where, m)
					}
				} else if _, ok := lookupMetric(metrics, m); !ok {
					t.Errorf("%s reads %s, which govs does not expose", where, m)
				}
			}
			if r.Record != "" {
				recorded[r.Record] = true
				continue
			}
			alerts++
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no unit test in %s", r.Alert, rulesTestFile)
			}
			if !strings.Contains(string(doc), "`"+r.Alert+"`") {
				t.Errorf("alert %s is not documented in docs/monitoring.md", r.Alert)
			}
		}
	}
	if alerts < 15 {
		t.Errorf("only %d alerts", alerts)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("promtool not installed (apt-get install prometheus): rules not checked by promtool")
		}
		t.Fatal("CI: promtool is missing (apt-get install prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
