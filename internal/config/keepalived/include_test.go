package keepalived

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }

// etc is a keepalived configuration split the way packagers and operators
// split it.
func etc() fstest.MapFS {
	return fstest.MapFS{
		"etc/keepalived/keepalived.conf":   file("include global.conf\ninclude conf.d/*.conf\ninclude /etc/keepalived/vrrp/{a,b}.conf\n"),
		"etc/keepalived/global.conf":       file("global_defs {\n router_id g\n}\n"),
		"etc/keepalived/conf.d/20-b.conf":  file("vs b {\n include ../rs/*.conf\n}\n"),
		"etc/keepalived/conf.d/10-a.conf":  file("vs a\n"),
		"etc/keepalived/conf.d/notes.txt":  file("not read\n"),
		"etc/keepalived/conf.d/old.conf/x": file("a directory matched by the wildcard is skipped\n"),
		"etc/keepalived/rs/1.conf":         file("rs 1\n"),
		"etc/keepalived/rs/2.conf":         file("rs 2\n"),
		"etc/keepalived/vrrp/a.conf":       file("vi a\n"),
		"etc/keepalived/vrrp/b.conf":       file("vi b\n"),
	}
}

func TestIncludeTree(t *testing.T) {
	f, err := ParseFile("/etc/keepalived/keepalived.conf", Options{ConfigID: "main", FS: etc()})
	if err != nil {
		t.Fatal(err)
	}
	want := "global_defs {\n\trouter_id g\n}\nvs a\nvs b {\n\trs 1\n\trs 2\n}\nvi a\nvi b\n"
	if got := formatted(f.Nodes); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	wantFiles := []string{
		"/etc/keepalived/keepalived.conf", "/etc/keepalived/global.conf",
		"/etc/keepalived/conf.d/10-a.conf", "/etc/keepalived/conf.d/20-b.conf",
		"/etc/keepalived/rs/1.conf", "/etc/keepalived/rs/2.conf",
		"/etc/keepalived/vrrp/a.conf", "/etc/keepalived/vrrp/b.conf",
	}
	if !reflect.DeepEqual(f.Files, wantFiles) {
		t.Errorf("files %q\nwant %q", f.Files, wantFiles)
	}
	rs := f.All("vs")[1].Children[1]
	if rs.Pos != (Position{"/etc/keepalived/rs/2.conf", 1, 1}) {
		t.Errorf("included node at %s", rs.Pos)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("warnings %v", f.Warnings)
	}
}

// TestIncludeRelative checks relative names through a relative main file, as
// "govs check -c keepalived.conf" gives them.
func TestIncludeRelative(t *testing.T) {
	fsys := fstest.MapFS{
		"k.conf":            file("include sub/a.conf\n"),
		"sub/a.conf":        file("a\ninclude ./deeper/b.conf\n"),
		"sub/deeper/b.conf": file("b\ninclude ../c.conf\n"),
		"sub/c.conf":        file("c\n"),
	}
	f, err := ParseFile("k.conf", Options{ConfigID: "main", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatted(f.Nodes); got != "a\nb\nc\n" {
		t.Errorf("got\n%s", got)
	}
	if got := strings.Join(f.Files, " "); got != "k.conf sub/a.conf sub/deeper/b.conf sub/c.conf" {
		t.Errorf("files %s", got)
	}
}

// TestIncludeSplitsBlocks: keepalived reads includes as one stream of lines,
// so a block may open in one file and close in another.
func TestIncludeSplitsBlocks(t *testing.T) {
	fsys := fstest.MapFS{"open.conf": file("vs x {\n a 1\n"), "close.conf": file(" b 2\n}\n")}
	f, err := Parse("k.conf", []byte("include open.conf\ninclude close.conf\nafter\n"), Options{ConfigID: "main", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatted(f.Nodes); got != "vs x {\n\ta 1\n\tb 2\n}\nafter\n" {
		t.Errorf("got\n%s", got)
	}
	if vs := f.Nodes[0]; vs.Open.File != "open.conf" || vs.Close.File != "close.conf" {
		t.Errorf("braces at %s and %s", vs.Open, vs.Close)
	}
}

func TestIncludeVariants(t *testing.T) {
	fsys := fstest.MapFS{"x.conf": file("x\n"), "d/y.conf": file("y\n"), "run.conf": &fstest.MapFile{Data: []byte("r\n"), Mode: 0o755}}
	cases := []struct {
		line, nodes string
		errs, warns []string
	}{
		{line: "include x.conf", nodes: "x\n"},
		{line: "include \"x.conf\"", nodes: "x\n"},
		{line: "include   x.conf   ", nodes: "x\n"},
		{line: "@main include x.conf", nodes: "x\n"},
		{line: "@^main include x.conf"},
		{line: "$F=x.conf\ninclude $F", nodes: "x\n"},
		{line: "include nope.conf", errs: []string{"k.conf:1:1: include: file nope.conf not found"}},
		{line: "includer nope.conf", errs: []string{"k.conf:1:1: includer: file nope.conf not found"}},
		{line: "include nope*.conf", warns: []string{"k.conf:1:1: include nope*.conf: no file matches nope*.conf"}},
		{line: "includem nope*.conf", warns: []string{"no file matches"}},
		{line: "includew nope*.conf", errs: []string{"k.conf:1:1: includew nope*.conf: no file matches nope*.conf"}},
		{line: "includea nope*.conf", errs: []string{"no file matches"}},
		{line: "include {x,nope}.conf", nodes: "x\n", warns: []string{"k.conf:1:1: include {x,nope}.conf: no file nope.conf"}},
		{line: "includeb {x,nope}.conf", nodes: "x\n", errs: []string{"k.conf:1:1: includeb: file nope.conf not found"}},
		{line: "include {x,d/y}.conf", nodes: "x\ny\n"},
		{line: "include {d/*,x}.conf", nodes: "y\nx\n"},
		{line: "include d", errs: []string{"k.conf:1:1: include d: is a directory (to read the files in it, include d/*.conf)"}},
		{line: "include *", nodes: "x\n", warns: []string{"k.conf:1:1: include run.conf: skipped"}},
		{line: "includer run.conf", errs: []string{"k.conf:1:1: includer run.conf: not a regular, non-executable file"}},
		{line: "include", errs: []string{"k.conf:1:1: include needs a file name or pattern"}},
		{line: "include [x.conf", errs: []string{"k.conf:1:1: include [x.conf: bad pattern"}},
		{line: "include ../../x.conf", errs: []string{"k.conf:1:1: include ../../x.conf: the path leads outside"}},
		{line: "include x.conf }", errs: []string{"k.conf:1:1: include: file x.conf } not found"}},
		{line: "includes x.conf", nodes: "includes x.conf\n"},
		{line: "blk {\n include x.conf\n}", nodes: "blk {\n\tx\n}\n"},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			f, err := Parse("k.conf", []byte(c.line+"\n"), Options{ConfigID: "main", FS: fsys})
			if got := formatted(f.Nodes); got != c.nodes {
				t.Errorf("nodes\n%s\nwant\n%s", got, c.nodes)
			}
			var errs ErrorList
			errors.As(err, &errs)
			checkPrefixes(t, "error", errs, c.errs)
			checkPrefixes(t, "warning", f.Warnings, c.warns)
		})
	}
}

func checkPrefixes(t *testing.T, what string, got ErrorList, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%ss:\n%v\nwant %q", what, got, want)
		return
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].Error(), w) && !strings.Contains(got[i].Error(), w) {
			t.Errorf("%s %d = %q, want %q", what, i, got[i].Error(), w)
		}
	}
}

func TestIncludeLoop(t *testing.T) {
	fsys := fstest.MapFS{
		"k.conf":     file("top\ninclude a.conf\n"),
		"a.conf":     file("a\ninclude sub/b.conf\n"),
		"sub/b.conf": file("b\ninclude ../k.conf\n"),
		"self.conf":  file("include self.conf\n"),
	}
	f, err := ParseFile("k.conf", Options{ConfigID: "main", FS: fsys})
	if err == nil || err.Error() != "sub/b.conf:2:1: include loop: k.conf includes a.conf includes sub/b.conf includes k.conf" {
		t.Fatalf("err = %v", err)
	}
	if got := formatted(f.Nodes); got != "top\na\nb\n" {
		t.Errorf("nodes read before the loop:\n%s", got)
	}
	_, err = ParseFile("self.conf", Options{ConfigID: "main", FS: fsys})
	if err == nil || !strings.Contains(err.Error(), "include loop: self.conf includes self.conf") {
		t.Fatalf("err = %v", err)
	}
}

// TestIncludeSameFileTwice: including one file twice, not inside itself, is
// no loop.
func TestIncludeSameFileTwice(t *testing.T) {
	fsys := fstest.MapFS{"rs.conf": file("rs\n")}
	f, err := Parse("k.conf", []byte("a {\ninclude rs.conf\n}\nb {\ninclude ./rs.conf\n}\n"), Options{ConfigID: "main", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatted(f.Nodes); got != "a {\n\trs\n}\nb {\n\trs\n}\n" {
		t.Errorf("got\n%s", got)
	}
}

func TestIncludeDepth(t *testing.T) {
	// A chain f0 -> f1 -> ... -> f40.
	fsys := fstest.MapFS{}
	for i := 0; i < 40; i++ {
		fsys["f"+strconv.Itoa(i)+".conf"] = file("n\ninclude f" + strconv.Itoa(i+1) + ".conf\n")
	}
	fsys["f40.conf"] = file("end\n")
	_, err := ParseFile("f0.conf", Options{ConfigID: "main", FS: fsys})
	if err == nil || !strings.HasPrefix(err.Error(), "f32.conf:2:1: includes nested more than 32 deep") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	_, err := ParseFile("missing.conf", Options{FS: fstest.MapFS{}})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(list[0].Error(), "missing.conf: cannot read the configuration") {
		t.Fatalf("err = %v", err)
	}
}

// TestIncludeOS reads includes from the operating system's files, with a
// relative and an absolute include.
func TestIncludeOS(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "conf.d", "a.conf"), []byte("a ${_PWD}\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "b.conf"), []byte("b\n"), 0o644))
	main := filepath.Join(dir, "keepalived.conf")
	must(os.WriteFile(main, []byte("include conf.d/*.conf\ninclude "+filepath.Join(dir, "b.conf")+"\n"), 0o644))
	f, err := ParseFile(main, Options{ConfigID: "main"})
	if err != nil {
		t.Fatal(err)
	}
	want := "a " + filepath.Join(dir, "conf.d") + "\nb\n"
	if got := formatted(f.Nodes); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if f.Nodes[0].Pos.File != filepath.Join(dir, "conf.d", "a.conf") {
		t.Errorf("included file named %s", f.Nodes[0].Pos.File)
	}
}

func TestExpandBraces(t *testing.T) {
	cases := map[string][]string{
		"a.conf":               {"a.conf"},
		"{a,b}.conf":           {"a.conf", "b.conf"},
		"x{a,b{1,2}}y":         {"xay", "xb1y", "xb2y"},
		"{foo/{,cat,dog},bar}": {"foo/", "foo/cat", "foo/dog", "bar"},
		"{a}":                  {"a"},
		"{a,b":                 {"{a,b"},
		`\{a,b}`:               {`\{a,b}`},
		"{a,b}{1,2}":           {"a1", "a2", "b1", "b2"},
	}
	for in, want := range cases {
		got, err := expandBraces(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("expandBraces(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := expandBraces(strings.Repeat("{a,b}", 12)); err == nil {
		t.Error("4096 alternatives accepted")
	}
}
