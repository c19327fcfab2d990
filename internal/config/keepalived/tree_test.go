package keepalived

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHelpers(t *testing.T) {
	src := `virtual_server 192.0.2.1 80 {
    lb_algo rr
    real_server 10.0.0.1 80 { weight 1 }
    real_server 10.0.0.2 80 { weight 2 }
}
vrrp_instance V {
    virtual_ipaddress {
        192.0.2.1/24 dev eth0
        192.0.2.2/24
    }
}
`
	f, err := Parse("k.conf", []byte(src), Options{ConfigID: "main"})
	if err != nil {
		t.Fatal(err)
	}
	vs := f.Child("virtual_server")
	if vs == nil || f.Child("nothing") != nil || len(f.All("virtual_server")) != 1 {
		t.Fatal("File.Child / All")
	}
	if vs.Arg(0) != "192.0.2.1" || vs.Arg(2) != "" || vs.Arg(-1) != "" {
		t.Error("Arg")
	}
	if !vs.Has("lb_algo") || vs.Has("lb_kind") {
		t.Error("Has")
	}
	if rs := vs.All("real_server"); len(rs) != 2 || rs[1].Child("weight").Arg(0) != "2" {
		t.Error("All")
	}
	var nilNode *Node
	if nilNode.Child("x") != nil || nilNode.Arg(0) != "" || nilNode.All("x") != nil || nilNode.Words() != nil ||
		nilNode.BlockWords() != nil || nilNode.String() != "" || nilNode.ArgPosition(0).IsValid() {
		t.Error("nil Node helpers")
	}
	// A missing block or argument reads as empty, so chains need no checks.
	if vs.Child("lb_kind").Arg(0) != "" || f.Child("global_defs").Child("router_id").Arg(0) != "" {
		t.Error("chained lookups on missing nodes")
	}
	vip := f.Child("vrrp_instance").Child("virtual_ipaddress")
	if got := strings.Join(vip.BlockWords(), " "); got != "192.0.2.1/24 dev eth0 192.0.2.2/24" {
		t.Errorf("BlockWords = %q", got)
	}
	if got := strings.Join(vip.Children[0].Words(), " "); got != "192.0.2.1/24 dev eth0" {
		t.Errorf("Words = %q", got)
	}
	var seen []string
	Walk(f.Nodes, func(n *Node, depth int) bool {
		seen = append(seen, fmt.Sprintf("%d:%s", depth, n.Keyword))
		return n.Keyword != "real_server"
	})
	want := "0:virtual_server 1:lb_algo 1:real_server 1:real_server 0:vrrp_instance 1:virtual_ipaddress 2:192.0.2.1/24 2:192.0.2.2/24"
	if got := strings.Join(seen, " "); got != want {
		t.Errorf("Walk visited %s\nwant %s", got, want)
	}
	if p := (Position{"k.conf", 3, 7}); p.String() != "k.conf:3:7" || !p.IsValid() || (Position{File: "k.conf"}).String() != "k.conf" {
		t.Error("Position.String")
	}
}

// TestFormatReadsBack checks that Format writes what Parse reads as the same
// tree, for words that need quotes.
func TestFormatReadsBack(t *testing.T) {
	n := []*Node{
		{Keyword: "script", Args: []string{"/bin/check --x", "", "a#b", "c!d", "{", "}"}},
		{Keyword: "@main", Args: []string{"~SEQ"}},
		{Keyword: "blk", Block: true, Children: []*Node{{Keyword: "x"}}},
	}
	var b strings.Builder
	if err := Format(&b, n); err != nil {
		t.Fatal(err)
	}
	f, err := Parse("k.conf", []byte(b.String()), Options{ConfigID: "main"})
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got := formatted(f.Nodes); got != b.String() {
		t.Errorf("read back as\n%s\nwritten as\n%s", got, b.String())
	}
}

// Example reads a configuration split over two files and looks up values the
// way a mapping onto another model does.
func Example() {
	fsys := fstest.MapFS{
		"etc/keepalived/keepalived.conf": {Data: []byte(`
global_defs {
    @lb1 router_id lb1
    @lb2 router_id lb2
}
include conf.d/*.conf
`)},
		"etc/keepalived/conf.d/web.conf": {Data: []byte(`
$PORT=80
virtual_server 192.0.2.10 $PORT {
    lb_algo wlc
    lb_kind NAT
    real_server 10.0.0.11 $PORT { weight 3 }
    real_server 10.0.0.12 $PORT {
        weight 1
        HTTP_GET { url { path /health status_code 200 } }
    }
}
`)},
	}
	f, err := ParseFile("/etc/keepalived/keepalived.conf", Options{ConfigID: "lb2", FS: fsys})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("router_id:", f.Child("global_defs").Child("router_id").Arg(0))
	for _, vs := range f.All("virtual_server") {
		fmt.Printf("%s:%s %s\n", vs.Arg(0), vs.Arg(1), vs.Child("lb_algo").Arg(0))
		for _, rs := range vs.All("real_server") {
			check := "none"
			if h := rs.Child("HTTP_GET"); h != nil {
				check = "http " + h.Child("url").Child("path").Arg(0)
			}
			fmt.Printf("  %s:%s weight %s, check %s (%s)\n", rs.Arg(0), rs.Arg(1), rs.Child("weight").Arg(0), check, rs.Pos)
		}
	}
	// Output:
	// router_id: lb2
	// 192.0.2.10:80 wlc
	//   10.0.0.11:80 weight 3, check none (/etc/keepalived/conf.d/web.conf:6:5)
	//   10.0.0.12:80 weight 1, check http /health (/etc/keepalived/conf.d/web.conf:7:5)
}

// ExampleErrorList shows the errors a command prints, one per line.
func ExampleErrorList() {
	_, err := Parse("keepalived.conf", []byte("virtual_server 192.0.2.1 80 {\n    lb_algo rr\n    real_server ${RS} 80 {\n"), Options{ConfigID: "lb1"})
	fmt.Fprintln(os.Stdout, err)
	// Output:
	// keepalived.conf:3:17: undefined parameter ${RS} (define it with $RS=VALUE before this line)
	// keepalived.conf:1:29: the block of virtual_server opened here is never closed: a '}' is missing
	// keepalived.conf:3:26: the block of real_server opened here is never closed: a '}' is missing
}
