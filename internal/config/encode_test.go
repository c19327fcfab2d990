package config

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestCompactDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Minute: "1m", 90 * time.Second: "1m30s", time.Hour: "1h", 61 * time.Minute: "1h1m",
		2*time.Hour + 5*time.Second: "2h0m5s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := compactDuration(d); got != want {
			t.Errorf("compactDuration(%v) = %s, want %s", d, got, want)
		}
		if back, err := time.ParseDuration(compactDuration(d)); err != nil || back != d {
			t.Errorf("%s does not parse back", compactDuration(d))
		}
	}
}

// TestToNodeAsMarshal checks that toNode writes what yaml.v3's marshaller
// writes (Node.Encode), on the values whose quoting is delicate. (toNode
// also keeps the keys a Meta records and compacts durations: 90s is 1m30s
// both ways; TestEncodeYAMLKeepsZeroValues and the goldens check those.)
func TestToNodeAsMarshal(t *testing.T) {
	words := []string{"", "plain", "yes", "No", "on", "y", "1:20", "-1:30.5", "123", "0x1f", "1e3", "1.5", "true", "null", "~",
		"a: b", "- x", "#x", "x #y", "@x", "`x", "'q'", `"d"`, " lead", "trail ", "multi\nline", "tab\there", "é", "[a]", "{a}", "*a", "&a", "!t", "%p", "|", ">",
		"10.0.0.1:80", "/bin/x 'a b'", "\xff\xfe"}
	w := 7
	c := &Config{GracePeriod: Duration(90 * time.Second), ScriptUser: "u:g"}
	for _, s := range words {
		c.VirtualServers = append(c.VirtualServers, &VirtualServer{Name: s, Scheduler: s, Quorum: &w, SchedulerFlags: []string{s, s},
			RealServers: []*RealServer{{Weight: &w, NotifyUp: s, HealthCheck: &HealthCheck{Type: s, ExpectStatus: []int{200, 301}}}}})
	}
	c.VRRPInstances = []*VRRPInstance{{Name: "v", Authentication: &VRRPAuth{AuthType: "PASS"}}}
	emit := func(n *yaml.Node) string {
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(n); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	var want yaml.Node
	if err := want.Encode(c); err != nil {
		t.Fatal(err)
	}
	got, err := toNode(reflect.ValueOf(c))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := emit(got), emit(&want); g != w {
		t.Errorf("toNode writes\n%s\nthe marshaller\n%s", g, w)
	}
}
