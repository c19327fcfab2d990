package keepalived

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzParse checks that no input panics and that every position the parser
// gives (nodes, arguments, braces, errors, warnings) is inside the input.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"", "{", "}", "\"", "\\", "$", "${", "@", "~SEQ(", "~LST({", "a {\n}\n}",
		"$M= \\\na \\\n$M\n$M\n",
		"$A=$A$A\nx $A\n",
		"$A=${B}${B}\n$B=${A}\nx ${A}\n",
		"~SEQ(I,1,3) ~LST({A,B},{1,2}) x${I}${A}{\n}\n",
		"@main a\n@^main b\n@\n@^\n",
		"x \"a{b\" c}d\n",
		"a\\#b \\! \"\\#\"\n",
		"include *.conf\ninclude {a,b}\n",
		"${_RANDOM 99999999999999999999 1}\n${_RANDOM 5 1}\n",
	}
	files, _ := filepath.Glob("testdata/*.conf")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			seeds = append(seeds, string(b))
		}
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	inc := fstest.MapFS{"inc.conf": {Data: []byte("x {\ny\n")}, "d/a.conf": {Data: []byte("}\n")}}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("k.conf", src, Options{ConfigID: "main", FS: inc, maxLines: 20000})
		if file == nil {
			t.Fatal("nil File")
		}
		lines := bytes.Split(src, []byte{'\n'})
		lengths := map[string][]int{}
		for _, l := range lines {
			lengths["k.conf"] = append(lengths["k.conf"], len(l))
		}
		for name, fl := range inc {
			for _, l := range bytes.Split(fl.Data, []byte{'\n'}) {
				lengths[name] = append(lengths[name], len(l))
			}
		}
		check := func(what string, p Position) {
			ls, ok := lengths[strings.TrimPrefix(p.File, "/")]
			if !ok {
				t.Fatalf("%s: position %s in an unknown file", what, p)
			}
			if p.Line < 1 || p.Line > len(ls) || p.Col < 1 || p.Col > ls[p.Line-1]+1 {
				t.Fatalf("%s: position %s outside the input", what, p)
			}
		}
		depth := 0
		Walk(file.Nodes, func(n *Node, d int) bool {
			depth = max(depth, d)
			check("node "+n.Keyword, n.Pos)
			if len(n.ArgPos) != len(n.Args) {
				t.Fatalf("node %s: %d args, %d positions", n, len(n.Args), len(n.ArgPos))
			}
			for _, p := range n.ArgPos {
				check("argument of "+n.Keyword, p)
			}
			if n.Block {
				check("'{' of "+n.Keyword, n.Open)
				if n.Close.IsValid() {
					check("'}' of "+n.Keyword, n.Close)
				}
			} else if len(n.Children) > 0 {
				t.Fatalf("node %s has children but no block", n)
			}
			return true
		})
		if depth > maxNesting {
			t.Fatalf("tree %d deep", depth)
		}
		if err != nil {
			list, ok := err.(ErrorList)
			if !ok || len(list) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			for _, e := range list {
				check("error "+e.Msg, e.Pos)
			}
		}
		for _, w := range file.Warnings {
			check("warning "+w.Msg, w.Pos)
		}
	})
}
