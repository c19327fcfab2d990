package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govs-lb/govs/internal/config"
)

// sampleExpect is what govs makes of each of keepalived's own sample
// configurations (testdata/samples, keepalived's doc/samples and default
// keepalived.conf): the warnings it gives, as "LINE KEYWORD" (the first word
// of the message), and the error that keeps it from loading, if any.
// keepalived 2.2.7 accepts all of them (keepalived -t, recorded in
// testdata/samples/keepalived-2.2.7-t.txt). Every warned keyword has its
// reason in sampleWarnReasons.
var sampleExpect = map[string]struct {
	warns []string
	err   string
}{
	"keepalived.conf":                       {warns: []string{"20 state", "25 authentication"}},
	"keepalived.conf.HTTP_GET.port":         {warns: nil},
	"keepalived.conf.IPv6":                  {warns: []string{"4 router_id"}},
	"keepalived.conf.PING_CHECK":            {warns: nil},
	"keepalived.conf.SMTP_CHECK":            {warns: nil},
	"keepalived.conf.SSL_GET":               {warns: []string{"14 state"}},
	"keepalived.conf.UDP_CHECK":             {warns: nil},
	"keepalived.conf.conditional_conf":      {warns: []string{"6 vrrp_script", "25 track_script"}},
	"keepalived.conf.fwmark":                {warns: []string{"4 router_id", "12 protocol"}},
	"keepalived.conf.inhibit":               {warns: nil},
	"keepalived.conf.misc_check":            {warns: nil},
	"keepalived.conf.misc_check_arg":        {warns: nil},
	"keepalived.conf.quorum":                {warns: nil},
	"keepalived.conf.sample":                {warns: nil},
	"keepalived.conf.sample.in":             {warns: []string{"20 state", "25 authentication"}},
	"keepalived.conf.status_code":           {warns: nil},
	"keepalived.conf.track_interface":       {warns: []string{"4 router_id"}},
	"keepalived.conf.virtual_server_group":  {warns: nil, err: "keepalived.conf.virtual_server_group:29:17: real server 192.168.200.1:1358 is virtual server VSG_1/tcp/192.168.200.1:1358 (at keepalived.conf.virtual_server_group:16:2), of the same protocol: connections would go through govs again; use that service's real servers"},
	"keepalived.conf.virtualhost":           {warns: nil},
	"keepalived.conf.vrrp":                  {warns: []string{"32 virtual_ipaddress"}},
	"keepalived.conf.vrrp.localcheck":       {warns: nil},
	"keepalived.conf.vrrp.lvs_syncd":        {warns: []string{"4 VI_2", "5 VI_3", "3 vrrp_sync_group", "11 lvs_sync_daemon_interface"}},
	"keepalived.conf.vrrp.routes":           {warns: []string{"4 router_id", "30 virtual_routes"}},
	"keepalived.conf.vrrp.rules":            {warns: []string{"6 router_id", "10 static_rules", "11 static_rules", "25 virtual_rules", "26 virtual_rules"}},
	"keepalived.conf.vrrp.scripts":          {warns: nil},
	"keepalived.conf.vrrp.static_ipaddress": {warns: []string{"4 router_id", "8 virtual_ipaddress", "9 virtual_ipaddress"}},
	"keepalived.conf.vrrp.sync":             {warns: nil},
}

// sampleWarnReasons says, for each keyword govs warns about in the samples,
// why: keepalived warns too, or docs/keepalived.md documents the difference.
var sampleWarnReasons = map[string]string{
	// Alerts: without both notification_email and smtp_server keepalived
	// sends no mail.
	"router_id":  "documented: router_id only names the director in alerts",
	"smtp_alert": "documented: no alerts without notification_email and smtp_server",
	// VRRP.
	"authentication":            "keepalived warns: strict mode does not support authentication, ignoring",
	"static_routes":             "documented: a route with an option govs does not set is left out",
	"static_rules":              "keepalived warns: rule without preference (it sets 16384, ...), invalid rule address",
	"static_ipaddress":          "documented: no static addresses",
	"virtual_routes":            "documented: a route with an option govs does not set (\"or\" multipath) is left out; keepalived warns about this file too",
	"virtual_rules":             "keepalived warns: rule without preference (it sets 16383, ...), invalid rule address",
	"virtual_ipaddress":         "documented: an address listed twice is added once, as keepalived does; an address option govs does not set (scope) is ignored",
	"state":                     "keepalived warns: initial state MASTER is incompatible with AH, or in strict mode with not being the address owner",
	"vrrp_script":               "keepalived warns: a vrrp_script without script is removed",
	"track_script":              "keepalived warns: track script not found, ignoring",
	"VI_2":                      "keepalived warns: unknown keyword (old vrrp_sync_group syntax)",
	"VI_3":                      "keepalived warns: unknown keyword (old vrrp_sync_group syntax)",
	"vrrp_sync_group":           "keepalived warns: sync group has no virtual router(s), removing",
	"lvs_sync_daemon_interface": "keepalived warns: deprecated; documented: govs syncs connections through an authenticated sync: section (docs/sync.md), which keepalived.conf cannot express (no key)",
	// Firewall marks.
	"protocol": "keepalived warns: protocol specified for fwmark - protocol will be ignored",
}

func TestKeepalivedSamples(t *testing.T) {
	dir := "testdata/samples"
	files, err := filepath.Glob(filepath.Join(dir, "keepalived.conf*"))
	if err != nil || len(files) < 27 {
		t.Fatalf("want keepalived's 27 sample configurations in %s, have %d (%v)", dir, len(files), err)
	}
	var table strings.Builder
	for _, file := range files {
		name := filepath.Base(file)
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{ConfigID: "main", FS: os.DirFS(dir)}
		c, warns, perr := Parse(name, src, opts)
		var got []string
		for _, w := range warns {
			kw, _, _ := strings.Cut(w.Msg, " ")
			kw = strings.TrimSuffix(kw, ":")
			got = append(got, fmt.Sprintf("%d %s", w.Pos.Line, kw))
			if sampleWarnReasons[kw] == "" {
				t.Errorf("%s: warning with no documented reason in sampleWarnReasons: %v", name, w)
			}
		}
		gotErr := ""
		if perr != nil {
			gotErr = perr.Error()
		}
		want := sampleExpect[name]
		fmt.Fprintf(&table, "\t%q: {warns: %#v", name, got)
		if gotErr != "" {
			fmt.Fprintf(&table, ", err: %q", firstLine(gotErr))
		}
		table.WriteString("},\n")
		if strings.Join(got, "\n") != strings.Join(want.warns, "\n") {
			t.Errorf("%s: warnings differ:\n got %q\nwant %q\n%s", name, got, want.warns, warningLines(warns))
		}
		if (gotErr == "") != (want.err == "") || want.err != "" && !strings.Contains(gotErr, want.err) {
			t.Errorf("%s: error %q, want %q", name, gotErr, want.err)
		}
		if perr != nil {
			continue
		}
		// govs convert: YAML that loads back to the same model.
		out, _, err := Convert(name, src, opts)
		if err != nil {
			t.Errorf("%s: convert: %v", name, err)
			continue
		}
		yamlPath := filepath.Join(t.TempDir(), "govs.yaml")
		if err := os.WriteFile(yamlPath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		back, err := config.Load(yamlPath)
		if err != nil {
			t.Errorf("%s: converted YAML does not load: %v\n%s", name, err, out)
			continue
		}
		if d := modelDiff(c, back); d != "" {
			t.Errorf("%s: the converted YAML loads to another model: %s\n%s", name, d, out)
		}
	}
	if t.Failed() {
		t.Logf("the table as govs sees the samples now:\n%s", table.String())
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
