package importer

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

var updateGolden = flag.Bool("update-keepalived", false, "rewrite testdata/keepalived/*.golden")

// importFixtures are keepalived.conf files as operators write them: the
// parser's fixtures and the importer's own.
var importFixtures = []string{
	"keepalived/testdata/lvs_nat.conf",
	"keepalived/testdata/lvs_dr.conf",
	"keepalived/testdata/vrrp.conf",
	"keepalived/testdata/fwmark_group.conf",
	"keepalived/testdata/advanced.conf",
	"keepalived/testdata/include/keepalived.conf",
	"testdata/keepalived/nat_checkers.conf",
	"testdata/keepalived/vrrp_unicast.conf",
	"testdata/keepalived/groups.conf",
	"testdata/keepalived/dr.conf",
	"testdata/keepalived/lb_kind_dr.conf",
	"testdata/keepalived/errors.conf",
	"testdata/keepalived/script_security.conf",
}

// fixtureFile is where the fixture path is: the paths are relative to
// internal/config, as the goldens name them.
func fixtureFile(path string) (root, file string) {
	root = "."
	if strings.HasPrefix(path, "keepalived/") {
		root = ".."
	}
	return root, filepath.Join(root, path)
}

// convert runs govs convert's conversion on a fixture.
func convert(t *testing.T, path string) ([]byte, []config.Warning, error) {
	t.Helper()
	root, file := fixtureFile(path)
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return Convert(path, src, Options{ConfigID: "main", FS: os.DirFS(root)})
}

// TestImportGolden checks the warnings, errors and YAML of every fixture
// against its golden file (go test -run ImportGolden -update-keepalived
// rewrites them).
func TestImportGolden(t *testing.T) {
	for _, path := range importFixtures {
		t.Run(path, func(t *testing.T) {
			out, warns, err := convert(t, path)
			var b strings.Builder
			for _, w := range warns {
				fmt.Fprintln(&b, w)
			}
			b.WriteString("--- errors\n")
			if err != nil {
				fmt.Fprintln(&b, err)
			}
			b.WriteString("--- yaml\n")
			b.Write(out)
			golden := filepath.Join("testdata/keepalived", strings.NewReplacer("/", "_", ".conf", ".golden").Replace(path))
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run ImportGolden -update-keepalived)", err)
			}
			if b.String() != string(want) {
				t.Errorf("%s differs from %s:\n%s", path, golden, b.String())
			}
		})
	}
}

// TestImportRoundTrip checks, for every fixture that converts, that the
// YAML loads back with Load to the model govs run -c keepalived.conf uses.
func TestImportRoundTrip(t *testing.T) {
	converted := 0
	for _, path := range importFixtures {
		t.Run(path, func(t *testing.T) {
			out, _, err := convert(t, path)
			_, file := fixtureFile(path)
			c, _, lerr := Load(file, Options{ConfigID: "main"})
			if (err == nil) != (lerr == nil) {
				t.Fatalf("convert error %v, load error %v", err, lerr)
			}
			if err != nil {
				return
			}
			converted++
			yamlPath := filepath.Join(t.TempDir(), "govs.yaml")
			if err := os.WriteFile(yamlPath, out, 0o644); err != nil {
				t.Fatal(err)
			}
			back, err := config.Load(yamlPath)
			if err != nil {
				t.Fatalf("converted YAML does not load: %v\n%s", err, out)
			}
			if d := modelDiff(c, back); d != "" {
				t.Errorf("the converted YAML loads to another model: %s\n%s", d, out)
			}
			if len(c.VirtualServers)+len(c.VRRPInstances) == 0 {
				t.Error("empty model")
			}
		})
	}
	if converted < 8 {
		t.Errorf("only %d fixtures convert", converted)
	}
}

// modelDiff compares two models field by field, ignoring positions and the
// file name; it returns the first difference.
func modelDiff(a, b *config.Config) string {
	return diffValue("config", reflect.ValueOf(a), reflect.ValueOf(b))
}

func diffValue(path string, a, b reflect.Value) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path + ": one is nil"
			}
			return ""
		}
		return diffValue(path, a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d items, %d", path, a.Len(), b.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if d := diffValue(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Struct:
		if a.Type().PkgPath() == reflect.TypeOf(config.Meta{}).PkgPath() {
			for i := 0; i < a.NumField(); i++ {
				f := a.Type().Field(i)
				if f.Type == reflect.TypeOf(config.Meta{}) || f.Name == "File" && a.Type() == reflect.TypeOf(config.Config{}) {
					continue
				}
				if d := diffValue(path+"."+f.Name, a.Field(i), b.Field(i)); d != "" {
					return d
				}
			}
			return ""
		}
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return fmt.Sprintf("%s: %v != %v", path, a.Interface(), b.Interface())
	}
	return ""
}

// pos is a place in a file.
func pos(file string, line, col int) config.Pos { return config.Pos{File: file, Line: line, Col: col} }

// parseKA imports and validates an inline keepalived.conf.
func parseKA(t *testing.T, src string) (*config.Config, []config.Warning, error) {
	t.Helper()
	return Parse("k.conf", []byte(src), Options{ConfigID: "main", FS: fstest.MapFS{}})
}

func mustParseKA(t *testing.T, src string) (*config.Config, []config.Warning) {
	t.Helper()
	c, warns, err := parseKA(t, src)
	if err != nil {
		t.Fatalf("ParseKeepalived: %v", err)
	}
	return c, warns
}

func warningLines(warns []config.Warning) string {
	var s []string
	for _, w := range warns {
		s = append(s, w.String())
	}
	return strings.Join(s, "\n")
}

func TestImportWarningsHavePositions(t *testing.T) {
	src := `global_defs {
    router_id lb1
    notification_email {
        ops@example.com
    }
    lvs_sync_daemon eth0 VI_1
}
virtual_server 192.0.2.1 80 {
    ha_suspend
    persistence_engine sip
    real_server 10.0.0.1 80 {
        smtp_alert
        TCP_CHECK {
            connect_ip 10.0.0.9
            fwmark 3
        }
    }
}
garp_group {
    garp_interval 1
}
`
	_, warns := mustParseKA(t, src)
	want := `k.conf:6:5: warning: lvs_sync_daemon has no govs equivalent (ignored)
k.conf:2:5: warning: router_id has no govs equivalent (ignored): keepalived sends no alert mail without both notification_email and smtp_server
k.conf:3:5: warning: notification_email has no govs equivalent (ignored): keepalived sends no alert mail without both notification_email and smtp_server
k.conf:9:5: warning: ha_suspend has no govs equivalent (ignored)
k.conf:10:5: warning: persistence_engine has no govs equivalent (ignored)
k.conf:14:13: warning: connect_ip has no govs equivalent (ignored): govs checks the real server's own address
k.conf:15:13: warning: fwmark has no govs equivalent (ignored)
k.conf:19:1: warning: garp_group has no govs equivalent (ignored)`
	if got := warningLines(warns); got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}
}

// TestImportErrorsInKeepalivedFile checks that Validate's errors, and the
// importer's, name the keepalived line of the value.
func TestImportErrorsInKeepalivedFile(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"virtual_server 192.0.2.1 80 {\n  lb_algo nope\n}\n", `k.conf:2:11: unknown scheduler "nope"`},
		{"virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n    weight -1\n  }\n}\n", "k.conf:3:12: weight -1 out of range"},
		{"virtual_server 192.0.2.1 80 {\n  quorum 0\n}\n", "k.conf:2:10: quorum must be at least 1"},
		{"virtual_server 192.0.2.1 80 {\n  protocol UDP\n  ops\n}\n", "k.conf:3:3: ops (one-packet scheduling) is not available with forwarding nat"},
		{"virtual_server 192.0.2.1 80 {\n  lb_kind DR\n  real_server 192.0.2.2 8080 {\n  }\n}\n", "k.conf:3:15: real server 192.0.2.2:8080: forwarding dr cannot change the port"},
		{"virtual_server 192.0.2.1 80 {\n  lvs_method TUN type gue port 6080\n}\n", "k.conf:2:14: lvs_method TUN: govs has no IP tunnelling"},
		{"virtual_server 192.0.2.1 80 {\n  lb_kind MASQ\n}\n", `k.conf:2:11: lb_kind: unknown forwarding method "MASQ"`},
		{"virtual_server 192.0.2.1 80 {\n  protocol SCTP\n}\n", "k.conf:2:12: protocol SCTP: govs serves TCP and UDP only"},
		{"virtual_server 192.0.2.1 http {\n}\n", `k.conf:1:26: virtual_server: invalid port "http"`},
		{"virtual_server lb.example.com 80 {\n}\n", `k.conf:1:16: virtual_server: invalid IP address "lb.example.com"`},
		{"virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n      connect_port 0\n    }\n  }\n}\n", "k.conf:4:20: port 0 out of range"},
		{"virtual_server 192.0.2.1 80 {\n  delay_loop 1m\n}\n", `k.conf:2:14: delay_loop: "1m" is not a number of seconds`},
		{"virtual_server 192.0.2.1 80 {\n  persistence_timeout 0\n}\n", "k.conf:2:23: persistence_timeout must be at least 1 second"},
		{"virtual_server 192.0.2.1 80 {\n  sorry_server 10.0.0.1\n  real_server 10.0.0.1 80 {\n  }\n}\n", "k.conf:2:16: sorry_server 10.0.0.1:80 is also a real server"},
		{"virtual_server 192.0.2.1 80 {\n  alpha maybe\n}\n", `k.conf:2:9: alpha: "maybe" is not true or false`},
		{"virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n    HTTP_GET {\n      url {\n        status_code 500-600\n      }\n    }\n  }\n}\n", "k.conf:5:21: expect_status 600 is not an HTTP status"},
		{"virtual_server_group G {\n  192.0.2.1-0 80\n}\nvirtual_server group G {\n}\n", `k.conf:2:3: virtual_server_group G: invalid range "192.0.2.1-0"`},
		{"virtual_server_group G {\n  192.0.2.1 80\n  192.0.2.1 80\n}\nvirtual_server group G {\n}\n", "k.conf:3:3: duplicate virtual server tcp/192.0.2.1:80"},
		{"virtual_server_group G {\n  10.0.0.0/8 80\n}\nvirtual_server group G {\n}\n", "k.conf:2:3: virtual_server_group G: 10.0.0.0/8 holds more than 4096 addresses"},
		{"virtual_server_group G {\n}\nvirtual_server_group G {\n}\n", `k.conf:3:22: duplicate virtual_server_group "G"`},
		{"vrrp_instance V {\n  interface eth0\n  virtual_router_id 1\n  advert_int 0.5\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n", "k.conf:4:14: advert_int 500ms: VRRP version 2 counts whole seconds"},
		{"vrrp_instance V {\n  virtual_router_id 1\n  virtual_ipaddress {\n    10.0.0.1\n  }\n}\n", `k.conf:1:1: vrrp instance "V" needs an interface`},
		{"vrrp_sync_group G {\n  group {\n    V\n  }\n}\n", `k.conf:2:3: vrrp sync group "G": no vrrp instance named "V"`},
		{"global_defs {\n  lvs_timeouts tcp\n}\n", "k.conf:2:19: lvs_timeouts tcp needs a value"},
		{"virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n", "k.conf:1:29: the block of virtual_server opened here is never closed"},
	} {
		_, _, err := parseKA(t, tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
		var list config.ErrorList
		if err != nil && !errors.As(err, &list) {
			t.Errorf("%q: error is not an ErrorList: %T", tc.src, err)
		}
	}
}

func TestImportVirtualServer(t *testing.T) {
	c, warns := mustParseKA(t, `global_defs {
    lvs_timeouts tcp 3600 udp 60
}
virtual_server 192.0.2.1 80 {
    lvs_sched lblc
    persistence_timeout
    persistence_granularity 255.255.0.0
    quorum 3
    hysteresis 1
    quorum_up /bin/up
    quorum_down "/bin/down now"
    sorry_server 10.0.0.9
    inhibit_on_failure
    omega
    real_server 10.0.0.1 80 {
        weight 3
        uthreshold 100
        lthreshold 50
        inhibit_on_failure false
        alpha
        notify_up "/bin/notify up 'my server'"
        notify_down /bin/notify-down nobody nogroup
    }
    real_server 10.0.0.2 0 {
    }
}
virtual_server 192.0.2.1 53 {
    protocol udp
    lb_algo sh
    flag-1
    flag-2
    real_server 10.0.0.1 53 {
    }
}
`)
	vs := c.VirtualServers[0]
	if vs.Scheduler != "lblc" || vs.Forwarding != config.NAT || vs.PersistenceTimeout.D() != 360*time.Second ||
		vs.PersistenceNetmask != "255.255.0.0" || *vs.Quorum != 3 || vs.QuorumHysteresis != 1 || vs.QuorumUp != "/bin/up" ||
		vs.QuorumDown != "/bin/down now" || vs.SorryServer.String() != "10.0.0.9:80" || !vs.InhibitOnFailure || !vs.Omega ||
		vs.Alpha || vs.IdleTimeout.D() != time.Hour {
		t.Errorf("virtual server = %+v", vs)
	}
	rs := vs.RealServers[0]
	if *rs.Weight != 3 || rs.UpperThreshold != 100 || rs.LowerThreshold != 50 || *rs.InhibitOnFailure || !*rs.Alpha ||
		rs.NotifyUp != `/bin/notify up 'my server'` || rs.NotifyDown != "/bin/notify-down" || rs.HealthCheck != nil {
		t.Errorf("real server = %+v", rs)
	}
	if got := vs.RealServers[1].Address.String(); got != "10.0.0.2:80" {
		t.Errorf("real server port 0 = %s, want the service's port", got)
	}
	udp := c.VirtualServers[1]
	if udp.Protocol != config.UDP || strings.Join(udp.SchedulerFlags, ",") != "sh-fallback,sh-port" || udp.IdleTimeout.D() != time.Minute {
		t.Errorf("udp virtual server = %+v", udp)
	}
	if got := warningLines(warns); !strings.Contains(got, "k.conf:22:38: warning: notify_down's user nobody nogroup has no govs equivalent") {
		t.Errorf("warnings:\n%s", got)
	}
	if p := vs.At("scheduler"); p != (pos("k.conf", 5, 15)) {
		t.Errorf("scheduler at %v", p)
	}
	if p := rs.At("weight"); p != (pos("k.conf", 16, 16)) {
		t.Errorf("weight at %v", p)
	}
}

func TestImportCheckers(t *testing.T) {
	c, warns := mustParseKA(t, `track_file ready {
    file /run/ready
    weight 2 reverse
}
virtual_server 192.0.2.1 80 {
    delay_loop 4
    virtualhost vs.example.com
    retry 5
    real_server 10.0.0.1 80 {
        HTTP_GET {
            url {
                path /a
                digest 0123456789ABCDEF0123456789abcdef
                status_code 200-299
            }
            connect_timeout 0
        }
    }
    real_server 10.0.0.2 80 {
        virtualhost rs.example.com
        delay_before_retry 2
        SSL_GET {
            url {
                path /b
                virtualhost url.example.com
                regex ^ok
            }
            sni_name sni.example.com
        }
    }
    real_server 10.0.0.3 80 {
        delay_loop 9
        DNS_CHECK {
            type mx
            name example.com.
            delay_loop 11
        }
    }
    real_server 10.0.0.4 80 {
        MISC_CHECK {
            misc_path /usr/bin/check $HOME "a b"
            connect_timeout 3
        }
    }
    real_server 10.0.0.5 80 {
        FILE_CHECK {
            track_file ready
        }
    }
    real_server 10.0.0.6 80 {
        UDP_CHECK {
            payload 0102
            require_reply
            min_reply_length 2
        }
    }
    real_server 10.0.0.7 80 {
        SMTP_CHECK {
            host {
                connect_ip 10.0.0.8
            }
        }
    }
}
`)
	check := func(i int) *config.HealthCheck { return c.VirtualServers[0].RealServers[i].Check }
	h := check(0)
	if h.Type != "http" || h.Path != "/a" || h.ExpectDigest != "0123456789abcdef0123456789abcdef" || h.ExpectStatus != nil ||
		h.Host != "vs.example.com" || h.Interval.D() != 4*time.Second || h.Timeout.D() != time.Second || *h.Retry != 5 ||
		h.DelayBeforeRetry.D() != 3*time.Second || h.Rise != 1 || h.Fall != 1 {
		t.Errorf("HTTP_GET = %+v", h)
	}
	h = check(1)
	if h.Type != "https" || h.Path != "/b" || h.Host != "url.example.com" || h.SNI != "sni.example.com" ||
		h.DelayBeforeRetry.D() != 2*time.Second || h.Timeout.D() != 5*time.Second {
		t.Errorf("SSL_GET = %+v", h)
	}
	h = check(2)
	if h.Type != "dns" || h.QueryType != "MX" || h.QueryName != "example.com." || h.Interval.D() != 11*time.Second ||
		*h.Retry != 5 || h.DelayBeforeRetry.D() != 11*time.Second {
		t.Errorf("DNS_CHECK = %+v", h)
	}
	h = check(3)
	if h.Type != "script" || h.Command != `/usr/bin/check '$HOME' 'a b'` || h.Timeout != h.Interval || *h.Retry != 5 {
		t.Errorf("MISC_CHECK = %+v", h)
	}
	h = check(4)
	if h.Type != "file" || h.File != "/run/ready" || *h.FileWeight != -2 || h.Dynamic {
		t.Errorf("FILE_CHECK = %+v", h)
	}
	h = check(5)
	if h.Type != "udp" || h.Payload != "0102" || !h.RequireReply || h.ExpectReply != "" {
		t.Errorf("UDP_CHECK = %+v", h)
	}
	if h := check(6); h.Type != "smtp" || h.Port != 0 || len(h.Hosts) != 1 || h.Hosts[0].Address.String() != "10.0.0.8" {
		t.Errorf("SMTP_CHECK = %+v", h)
	}
	// The track_file's weight reverse negates it: no warning.
	want := `k.conf:26:17: warning: regex has no govs equivalent (ignored)
k.conf:42:13: warning: connect_timeout has no govs equivalent (ignored)
k.conf:54:13: warning: min_reply_length has no govs equivalent (ignored)`
	if got := warningLines(warns); got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}
	if p := check(2).At("interval"); p != (pos("k.conf", 36, 24)) {
		t.Errorf("DNS_CHECK interval at %v", p)
	}
	if p := check(0).At("host"); p != (pos("k.conf", 7, 17)) {
		t.Errorf("HTTP_GET host at %v", p)
	}
}

func TestImportGroups(t *testing.T) {
	c, warns := mustParseKA(t, `virtual_server_group G {
    192.0.2.1 80
    192.0.2.10-12 80
    192.0.2.20-192.0.2.21 8080
    192.0.2.32/31 443
    fwmark 3
}
virtual_server group G {
    lb_algo rr
    persistence_timeout 60
    real_server 10.0.0.1 {
        TCP_CHECK {
            connect_port 80
        }
    }
}
`)
	var got []string
	for _, vs := range c.VirtualServers {
		got = append(got, vs.Name)
	}
	// The fwmark member is a fwmark service; its real server keeps the
	// packet's port.
	want := "G/tcp/192.0.2.1:80 G/tcp/192.0.2.10:80 G/tcp/192.0.2.11:80 G/tcp/192.0.2.12:80 G/tcp/192.0.2.20:8080 G/tcp/192.0.2.21:8080 G/tcp/192.0.2.32:443 G/tcp/192.0.2.33:443 G/FWM 3"
	if strings.Join(got, " ") != want {
		t.Errorf("names = %s\nwant %s", got, want)
	}
	if w := warningLines(warns); w != "" {
		t.Errorf("warnings:\n%s", w)
	}
	if f := c.VirtualServers[8]; f.Key() != "fwm/3" || f.At("fwmark") != (pos("k.conf", 6, 12)) || f.RealServers[0].Address.String() != "10.0.0.1" {
		t.Errorf("fwmark member = %s at %v, real server %s", f.Key(), f.At("fwmark"), f.RealServers[0].Address)
	}
	vs := c.VirtualServers[2]
	if vs.At("address") != (pos("k.conf", 3, 5)) || vs.Pos != (pos("k.conf", 8, 1)) || vs.RealServers[0].Address.String() != "10.0.0.1:80" ||
		vs.RealServers[0].Check == nil || vs.RealServers[0] == c.VirtualServers[1].RealServers[0] {
		t.Errorf("group member = %+v", vs)
	}

	// Ports missing in the group are errors at the group's line.
	_, _, err := parseKA(t, "virtual_server_group G {\n  192.0.2.1\n}\nvirtual_server group G {\n  persistence_timeout 60\n}\n")
	if err == nil || !strings.Contains(err.Error(), "k.conf:2:3: virtual server address 192.0.2.1 needs a port") {
		t.Errorf("error = %v", err)
	}
}

func TestExpandRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.254-255", "10.0.0.254 10.0.0.255"},
		{"10.0.0.255-10.0.1.1", "10.0.0.255 10.0.1.0 10.0.1.1"},
		{"10.0.0.5/30", "10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7"},
		{"2001:db8::a-c", "2001:db8::a 2001:db8::b 2001:db8::c"},
		{"2001:db8::fffe/127", "2001:db8::fffe 2001:db8::ffff"},
		{"::ffff:10.0.0.1-2", "10.0.0.1 10.0.0.2"},
		{"10.0.0.2-1", "error"},
		{"10.0.0.1-256", "error"},
		{"10.0.0.1-2001:db8::1", "error"},
		{"10.0.0.0/16", "error"},
		{"x-1", "error"},
	} {
		addrs, err := expandRange(tc.in)
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		s := strings.Join(got, " ")
		if err != nil {
			s = "error"
		}
		if s != tc.want {
			t.Errorf("expandRange(%q) = %s (%v), want %s", tc.in, s, err, tc.want)
		}
	}
}

func TestImportVRRP(t *testing.T) {
	c, warns := mustParseKA(t, `global_defs {
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh_repeat 2
    vrrp_lower_prio_no_advert
}
vrrp_script chk {
    script "/bin/check --fast"
    weight 20
    rise 3
}
vrrp_instance A {
    state master
    interface eth1
    virtual_router_id 7
    priority 110
    advert_int 2
    mcast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.3
    }
    virtual_ipaddress {
        10.0.0.100
        10.0.0.101/24 label eth1:1
    }
    track_script {
        chk weight -5 reverse
    }
    garp_master_refresh 0
    lower_prio_no_advert false
    notify "/bin/notify all"
    notify_stop /bin/stop
}
vrrp_sync_group G {
    group {
        A
    }
    notify_backup /bin/backup
    notify_master /bin/master
}
`)
	vi := c.VRRPInstances[0]
	if vi.State != "MASTER" || vi.Interface != "eth1" || vi.VirtualRouterID != 7 || vi.Priority != 110 || vi.AdvertInt.D() != 2*time.Second ||
		vi.UnicastSrcIP.String() != "10.0.0.2" || len(vi.UnicastPeers) != 1 || vi.Version != 2 || vi.Notify != "/bin/notify all" ||
		vi.NotifyStop != "/bin/stop" || vi.LowerPrioNoAdvert || vi.GARPMasterRepeat != 3 || vi.GARPMasterRefreshRepeat != 2 ||
		vi.GARPMasterDelay.D() != time.Second || vi.GARPMasterRefresh.D() != 0 {
		t.Errorf("instance = %+v", vi)
	}
	if got := fmt.Sprint(vi.VirtualIPAddresses); got != "[10.0.0.100/32 10.0.0.101/24 label eth1:1]" {
		t.Errorf("vips = %s", got)
	}
	ts := vi.TrackScripts[0]
	if ts.Name != "chk" || ts.Script != "/bin/check --fast" || ts.Weight != -5 || ts.Rise != 3 || ts.Fall != 1 || ts.Interval.D() != time.Second {
		t.Errorf("track script = %+v", ts)
	}
	if ts.At("weight") != (pos("k.conf", 27, 20)) || ts.At("script") != (pos("k.conf", 8, 12)) {
		t.Errorf("track script positions: weight %v, script %v", ts.At("weight"), ts.At("script"))
	}
	g := c.VRRPSyncGroups[0]
	if g.Name != "G" || strings.Join(g.Instances, ",") != "A" || g.NotifyBackup != "/bin/backup" || g.NotifyMaster != "/bin/master" {
		t.Errorf("sync group = %+v", g)
	}
	if got := warningLines(warns); got != "k.conf:27:23: warning: weight reverse has no govs equivalent (ignored)" {
		t.Errorf("warnings:\n%s", got)
	}
}

func TestScriptQuoting(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/bin/true", "/bin/true"},
		{"/usr/bin/logger -t lvs web1 up", "/usr/bin/logger -t lvs web1 up"},
		{`/bin/x "a b" 'c d' e\ f`, `/bin/x 'a b' 'c d' 'e f'`},
		{`/bin/x $HOME;rm`, `/bin/x '$HOME;rm'`},
		{`/bin/x "it's"`, `/bin/x 'it'\''s'`},
		{`/bin/x "unterminated`, `/bin/x '"unterminated'`},
	} {
		if got := shellJoin(splitWords(tc.in)); got != tc.want {
			t.Errorf("shellJoin(splitWords(%q)) = %q, want %q", tc.in, got, tc.want)
		}
	}
	words := []string{"/bin/x", "a b", `it's`, `q"`, ""}
	if got := splitWords(commandJoin(words)); !reflect.DeepEqual(got, words) {
		t.Errorf("commandJoin does not split back: %q", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	ka := filepath.Join(dir, "keepalived.conf")
	yml := filepath.Join(dir, "govs.yaml")
	os.WriteFile(ka, []byte("virtual_server 192.0.2.1 80 {\n  router_id x\n}\n@backup virtual_server 192.0.2.2 80\n"), 0o644)
	os.WriteFile(yml, []byte("virtual_servers:\n  - address: 192.0.2.1:80\n"), 0o644)

	c, warns, err := Load(ka, Options{ConfigID: "main"})
	if err != nil || len(c.VirtualServers) != 1 || len(warns) != 1 || warns[0].Pos != (pos(ka, 2, 3)) {
		t.Errorf("keepalived: %v %v %v", c, warns, err)
	}
	if c, _, err := Load(ka, Options{ConfigID: "backup", Format: config.FormatKeepalived}); err != nil || len(c.VirtualServers) != 2 {
		t.Errorf("keepalived with another config id: %v %v", c, err)
	}
	if c, warns, err := Load(yml, Options{}); err != nil || len(c.VirtualServers) != 1 || warns != nil {
		t.Errorf("yaml: %v %v %v", c, warns, err)
	}
	// Forced, a YAML file reads as a keepalived.conf of unknown keywords.
	if _, warns, _ := Load(yml, Options{Format: config.FormatKeepalived}); len(warns) != 2 ||
		warns[0].String() != yml+":1:1: warning: virtual_servers: has no govs equivalent (ignored)" {
		t.Errorf("yaml read as keepalived: %v", warns)
	}
	if _, _, err := Load(ka, Options{Format: config.FormatYAML}); err == nil {
		t.Error("keepalived read as yaml: no error")
	}
	if _, _, err := Load(yml, Options{Format: "json"}); err == nil || !strings.Contains(err.Error(), `unknown configuration format "json"`) {
		t.Errorf("unknown format: %v", err)
	}
	if _, _, err := Load(filepath.Join(dir, "missing.conf"), Options{}); err == nil {
		t.Error("missing file: no error")
	}
}

// TestEncodeYAMLKeepsZeroValues checks that keys written as zero (here
// delay_before_retry 0, whose absence means 1s) survive the YAML.
func TestEncodeYAMLKeepsZeroValues(t *testing.T) {
	src := []byte("virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n    TCP_CHECK {\n      delay_before_retry 0\n    }\n  }\n}\n")
	out, _, err := Convert("k.conf", src, Options{ConfigID: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "delay_before_retry: 0s") {
		t.Errorf("YAML lost delay_before_retry 0:\n%s", out)
	}
	c, err := config.Parse("k.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.VirtualServers[0].RealServers[0].Check.DelayBeforeRetry; d != 0 {
		t.Errorf("delay_before_retry = %v", d)
	}
}

// FuzzImport: the importer never panics; whatever converts without error
// loads back as YAML to the same model.
func FuzzImport(f *testing.F) {
	for _, path := range importFixtures {
		_, file := fixtureFile(path)
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	// keepalived's own samples (alerts, urls, hosts, routes, rules, ...).
	samples, _ := filepath.Glob("testdata/samples/keepalived.conf*")
	for _, file := range samples {
		if src, err := os.ReadFile(file); err == nil {
			f.Add(src)
		}
	}
	f.Add([]byte("virtual_server_group G {\n 10.0.0.1-3 80\n}\nvirtual_server group G {\n real_server 10.1.0.1 80 {\n  HTTP_GET {\n   url {\n    status_code 200 300-302\n   }\n  }\n }\n}\n"))
	f.Add([]byte("vrrp_instance V {\n interface e\n virtual_router_id 1\n virtual_ipaddress {\n  fe80::1%e/64\n }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) { checkImport(t, src) })
}

// checkImport is FuzzImport's property: the importer never panics, every
// message has a line, and whatever converts without error loads back as YAML
// to the same model.
func checkImport(t testing.TB, src []byte) {
	opts := Options{ConfigID: "main", FS: fstest.MapFS{}}
	c, warns, errs := Read("k.conf", src, opts)
	for _, w := range warns {
		if w.Pos.Line < 1 && w.Pos.File == "k.conf" {
			t.Fatalf("warning without a line: %s", w)
		}
	}
	if c == nil {
		if len(errs) == 0 {
			t.Fatal("no model and no error")
		}
		return
	}
	out, err := config.EncodeYAML(c)
	if err != nil {
		t.Fatalf("EncodeYAML: %v", err)
	}
	errs = appendErrs(errs, c.Validate())
	for _, e := range errs {
		if e.Pos.File == "k.conf" && e.Pos.Line < 1 {
			t.Fatalf("error without a line: %s", e.Error())
		}
	}
	if len(errs) > 0 {
		return
	}
	back, err := config.Parse("k.yaml", out)
	if err != nil {
		t.Fatalf("converted YAML does not load: %v\n%s", err, out)
	}
	if d := modelDiff(c, back); d != "" {
		t.Fatalf("round trip: %s\n%s", d, out)
	}
}

// BenchmarkImportCheck measures FuzzImport's work per input on the seeds
// (go test -run XXX -bench ImportCheck -benchmem ./internal/config/importer/).
func BenchmarkImportCheck(b *testing.B) {
	var srcs [][]byte
	for _, path := range importFixtures {
		_, file := fixtureFile(path)
		src, err := os.ReadFile(file)
		if err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		checkImport(b, srcs[i%len(srcs)])
	}
}
