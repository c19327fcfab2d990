package keepalived

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.tree golden files")

// dump renders a tree with the position of every node and brace, one node a
// line, for golden files and failure messages.
func dump(nodes []*Node) string {
	var b strings.Builder
	Walk(nodes, func(n *Node, depth int) bool {
		b.WriteString(strings.Repeat("  ", depth))
		b.WriteString(n.String())
		b.WriteString("  @")
		b.WriteString(n.Pos.String())
		if n.Block {
			b.WriteString(" {" + n.Open.String() + " }" + n.Close.String())
		}
		b.WriteByte('\n')
		return true
	})
	return b.String()
}

// fixtures are real-world shaped configurations; each must be accepted by
// keepalived -t, parse without error, and match its golden tree.
var fixtures = []string{
	"lvs_nat.conf",
	"lvs_dr.conf",
	"vrrp.conf",
	"fwmark_group.conf",
	"advanced.conf",
	"include/keepalived.conf",
}

func TestFixturesGolden(t *testing.T) {
	for _, name := range fixtures {
		for _, id := range []string{"main", "backup"} {
			t.Run(name+"/"+id, func(t *testing.T) {
				path := filepath.Join("testdata", name)
				f, err := ParseFile(path, Options{ConfigID: id})
				if err != nil {
					t.Fatalf("ParseFile: %v", err)
				}
				if len(f.Warnings) > 0 {
					t.Errorf("warnings: %v", f.Warnings)
				}
				got := dump(f.Nodes)
				golden := strings.TrimSuffix(path, ".conf") + "." + id + ".tree"
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if got != string(want) {
					t.Errorf("tree differs from %s (go test -update rewrites it):\n%s", golden, got)
				}
			})
		}
	}
}

// TestFixturesThroughFS reads the same files through an fs.FS and checks that
// only the file names differ from reading them from disk.
func TestFixturesThroughFS(t *testing.T) {
	fsys := os.DirFS("testdata")
	for _, name := range fixtures {
		disk, err := ParseFile(filepath.Join("testdata", name), Options{ConfigID: "main"})
		if err != nil {
			t.Fatal(err)
		}
		viaFS, err := ParseFile(name, Options{ConfigID: "main", FS: fsys})
		if err != nil {
			t.Fatalf("%s through fs.FS: %v", name, err)
		}
		want := strings.ReplaceAll(dump(disk.Nodes), "testdata/", "")
		if got := dump(viaFS.Nodes); got != want {
			t.Errorf("%s: through fs.FS:\n%s\nfrom disk:\n%s", name, got, want)
		}
		if len(viaFS.Files) != len(disk.Files) {
			t.Errorf("%s: files %v, from disk %v", name, viaFS.Files, disk.Files)
		}
	}
}

// TestKeepalivedAcceptsFixtures shows that the fixtures are keepalived
// configurations, not only ones this parser accepts.
func TestKeepalivedAcceptsFixtures(t *testing.T) {
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/keepalived"); e != nil {
			t.Skip("keepalived is not installed")
		}
		bin = "/usr/sbin/keepalived"
	}
	if testing.Short() {
		t.Skip("short")
	}
	for _, name := range fixtures {
		for _, id := range []string{"main", "backup"} {
			abs, err := filepath.Abs(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-t", "-i", id, "-f", abs).CombinedOutput()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Errorf("keepalived -t -i %s -f %s: %v\n%s", id, name, err, out)
			} else if err != nil {
				t.Skipf("cannot run keepalived: %v", err)
			}
		}
	}
}

// TestDebianSamples reads the sample configurations shipped with keepalived,
// when installed: all must parse without error.
func TestDebianSamples(t *testing.T) {
	files, _ := filepath.Glob("/usr/share/doc/keepalived/samples/keepalived.conf.*")
	if len(files) == 0 {
		t.Skip("keepalived samples are not installed")
	}
	for _, f := range files {
		if _, err := ParseFile(f, Options{ConfigID: "main"}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestFixtureContents(t *testing.T) {
	parse := func(name string) *File {
		t.Helper()
		f, err := ParseFile(filepath.Join("testdata", name), Options{ConfigID: "main"})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}

	nat := parse("lvs_nat.conf")
	if got := nat.Child("global_defs").Child("notification_email").BlockWords(); strings.Join(got, ",") != "ops@example.com,oncall@example.com" {
		t.Errorf("notification_email = %q", got)
	}
	vss := nat.All("virtual_server")
	if len(vss) != 3 {
		t.Fatalf("%d virtual servers, want 3", len(vss))
	}
	web := vss[0]
	if web.Arg(0) != "192.0.2.10" || web.Arg(1) != "80" || web.Child("lb_kind").Arg(0) != "NAT" ||
		web.Child("persistence_timeout").Arg(0) != "300" || web.Child("protocol").Arg(0) != "TCP" {
		t.Errorf("web service read as %s", web)
	}
	if q := web.Child("quorum_up"); len(q.Args) != 1 || q.Arg(0) != "/usr/bin/logger -t lvs quorum up" {
		t.Errorf("quoted quorum_up read as %q", q.Args)
	}
	if s := web.Child("sorry_server"); s.Arg(0) != "10.0.0.250" || s.Arg(1) != "8080" {
		t.Errorf("sorry_server = %s", s)
	}
	rs := web.All("real_server")
	if len(rs) != 2 || !rs[0].Has("inhibit_on_failure") || rs[0].Child("weight").Arg(0) != "100" {
		t.Fatalf("real servers read as %v", rs)
	}
	urls := rs[0].Child("HTTP_GET").All("url")
	if len(urls) != 3 {
		t.Fatalf("%d urls, want 3", len(urls))
	}
	if urls[1].Child("path").Arg(0) != "/status?full=1" || urls[1].Child("digest").Arg(0) != "9b3a0c85a887a256d6939da88aabd8cd" ||
		urls[2].Child("status_code").Arg(0) != "200-299" {
		t.Errorf("urls read as %s", dump(urls))
	}
	if !rs[1].Has("TCP_CHECK") || !vss[1].All("real_server")[0].Has("SSL_GET") {
		t.Error("TCP_CHECK or SSL_GET missing")
	}
	if vss[2].Child("protocol").Arg(0) != "UDP" || !vss[2].All("real_server")[0].Has("DNS_CHECK") || !vss[2].All("real_server")[1].Has("UDP_CHECK") {
		t.Error("UDP service read wrong")
	}

	dr := parse("lvs_dr.conf")
	misc := dr.All("virtual_server")[0].All("real_server")[1].Child("MISC_CHECK")
	if misc.Child("misc_path").Arg(0) != "/usr/bin/test -e /run/lvs/mx2.up" || !misc.Has("misc_dynamic") {
		t.Errorf("MISC_CHECK read as %s", dump([]*Node{misc}))
	}
	for _, kw := range []string{"SMTP_CHECK", "PING_CHECK", "FILE_CHECK"} {
		found := false
		Walk(dr.Nodes, func(n *Node, _ int) bool { found = found || n.Keyword == kw; return true })
		if !found {
			t.Errorf("%s missing", kw)
		}
	}
	if dr.All("virtual_server")[1].Child("lb_kind").Arg(0) != "TUN" {
		t.Error("lb_kind TUN missing")
	}

	v := parse("vrrp.conf")
	if s := v.All("vrrp_script")[0].Child("script"); s.Arg(0) != "/usr/bin/killall -0 haproxy" || len(s.Args) != 1 {
		t.Errorf("script read as %q", s.Args)
	}
	if s := v.All("vrrp_script")[1]; !s.Block || s.Open.Line != s.Pos.Line+1 {
		t.Errorf("'{' on its own line: %s open at %s", s, s.Open)
	}
	pub := v.All("vrrp_instance")[0]
	if pub.Child("unicast_src_ip").Arg(0) != "192.0.2.2" || strings.Join(pub.Child("unicast_peer").BlockWords(), " ") != "192.0.2.3" {
		t.Error("unicast read wrong")
	}
	vip := pub.Child("virtual_ipaddress").Children[0]
	if strings.Join(vip.Words(), " ") != "192.0.2.100/24 dev eth0 label eth0:vip" {
		t.Errorf("vip read as %q", vip.Words())
	}
	auth := pub.Child("authentication")
	if auth.Child("auth_type").Arg(0) != "PASS" || auth.Child("auth_pass").Arg(0) != "s3cr3t" {
		t.Error("authentication read wrong")
	}
	if got := pub.Child("track_script").BlockWords(); strings.Join(got, " ") != "chk_haproxy chk_file" {
		t.Errorf("track_script = %q", got)
	}
	if got := pub.Child("track_interface").Children[0].Words(); strings.Join(got, " ") != "ifb0 weight -30" {
		t.Errorf("track_interface = %q", got)
	}
	if got := v.Child("vrrp_sync_group").Child("group").BlockWords(); len(got) != 2 {
		t.Errorf("sync group = %q", got)
	}

	fw := parse("fwmark_group.conf")
	if g := fw.Child("virtual_server_group"); len(g.Children) != 3 || g.Children[2].Keyword != "192.0.2.30-40" {
		t.Errorf("group read as %s", dump([]*Node{g}))
	}
	vs := fw.All("virtual_server")
	if vs[0].Arg(0) != "group" || vs[0].Arg(1) != "WEB" || vs[1].Arg(0) != "fwmark" || vs[1].Arg(1) != "7" {
		t.Errorf("virtual servers %s, %s", vs[0], vs[1])
	}

	inc := parse("include/keepalived.conf")
	wantFiles := []string{"keepalived.conf", "global.conf", "conf.d/10-web.conf", "servers/web.conf", "conf.d/20-dns.conf", "vrrp/public.conf", "vrrp/private.conf"}
	for i := range wantFiles {
		wantFiles[i] = filepath.Join("testdata/include", wantFiles[i])
	}
	if strings.Join(inc.Files, " ") != strings.Join(wantFiles, " ") {
		t.Errorf("files read: %q\nwant %q", inc.Files, wantFiles)
	}
	rs = inc.All("virtual_server")[0].All("real_server")
	if len(rs) != 2 || rs[0].Pos.File != "testdata/include/servers/web.conf" || rs[0].Pos.Line != 1 {
		t.Errorf("included real servers %s", dump(rs))
	}
}
