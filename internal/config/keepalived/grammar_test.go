package keepalived

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func formatted(nodes []*Node) string {
	var b strings.Builder
	_ = Format(&b, nodes)
	return b.String()
}

// TestGrammar checks how lines become nodes: each case's input is read with
// config id "main", and the tree written back with Format must be want.
func TestGrammar(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"words and blanks", "lb_algo \t  rr  \n", "lb_algo rr\n"},
		{"crlf line ends", "a 1\r\nb 2\r\n", "a 1\nb 2\n"},
		{"no final newline", "a 1", "a 1\n"},
		{"hash comment", "# whole line\nrouter_id lb1 # after\n", "router_id lb1\n"},
		{"bang comment", "! whole line\nrouter_id lb1 ! after\n", "router_id lb1\n"},
		{"comment inside a word", "router_id lb#1\nweight 1!0\n", "router_id lb\nweight 1\n"},
		{"escaped comment characters", `router_id lb\#1 a\!b` + "\n", "router_id \"lb#1\" \"a!b\"\n"},
		{"comment characters in quotes", `misc_path "/bin/check # not a comment !"` + "\n", "misc_path \"/bin/check # not a comment !\"\n"},
		{"quoted words", `notify "/usr/bin/notify --state master" x` + "\n", "notify \"/usr/bin/notify --state master\" x\n"},
		{"quote inside a word splits it", `a ab"c d"e` + "\n", "a ab \"c d\" e\n"},
		{"empty quoted word", `a "" b` + "\n", "a \"\" b\n"},
		{"single quotes are characters", `a 'b c'` + "\n", "a 'b c'\n"},
		{"brace on the keyword line", "vs {\n  a 1\n}\n", "vs {\n\ta 1\n}\n"},
		{"brace on its own line", "vs\n{\n  a 1\n}\n", "vs {\n\ta 1\n}\n"},
		{"brace after comments and blank lines", "vs\n# c\n\n  {\n a\n}\n", "vs {\n\ta\n}\n"},
		{"braces attached to words", "vs{a 1}\n", "vs {\n\ta 1\n}\n"},
		{"one-line nested blocks", "a { b { c 1 } d 2 }\n", "a {\n\tb {\n\t\tc 1\n\t}\n\td 2\n}\n"},
		{"closing braces together", "a {\nb {\nc {\n}}}\nd\n", "a {\n\tb {\n\t\tc {\n\t\t}\n\t}\n}\nd\n"},
		{"text after a closing brace", "a {\n} b\n", "a {\n}\nb\n"},
		{"empty block", "a {}\n", "a {\n}\n"},
		{"braces in quotes", `a "{x}" b` + "\n", "a \"{x}\" b\n"},
		{"value block", "virtual_ipaddress {\n 10.0.0.1/24 dev eth0 label eth0:1\n 10.0.0.2\n}\n",
			"virtual_ipaddress {\n\t10.0.0.1/24 dev eth0 label eth0:1\n\t10.0.0.2\n}\n"},
		{"unknown keywords are kept", "no_such_thing 1 2 {\n x\n}\n", "no_such_thing 1 2 {\n\tx\n}\n"},
		{"trailing backslash outside a definition", "a b \\\nc\n", "a b\\\nc\n"},
		{"semicolon is a character", "a 1; b 2\n", "a 1; b 2\n"},

		{"conditional matches", "@main router_id m\n", "router_id m\n"},
		{"conditional does not match", "@backup router_id b\n", ""},
		{"negated conditional", "@^main a\n@^backup b\n", "b\n"},
		{"conditional with tab", "@main\ta\n", "a\n"},
		{"conditional with nothing after it", "@main\n@main   \n", ""},
		{"conditional inside a block", "p {\n @main 1.2.3.4\n @^main 1.2.3.5\n}\n", "p {\n\t1.2.3.4\n}\n"},
		{"at sign inside a line", "notification_email_from a@main\n", "notification_email_from a@main\n"},

		{"definition and use", "$P=150\npriority $P\n", "priority 150\n"},
		{"braced use", "$NET=10.1\naddr ${NET}.0.1/24\n", "addr 10.1.0.1/24\n"},
		{"use followed by a character is literal", "$A=1\nx $A.2 $Ab\n", "x $A.2 $Ab\n"},
		{"use followed by comma or paren", "$A=1\nx $A, $A)\n", "x 1, 1)\n"},
		{"undefined use is literal", "script \"kill -0 $PID\"\nx $NOPE\n", "script \"kill -0 $PID\"\nx $NOPE\n"},
		{"undefined braced use in quotes is literal", "script \"echo ${HOME}\"\n", "script \"echo ${HOME}\"\n"},
		{"late binding", "$A=10.2.${B}\n$B=0\nx ${A}.1\n$B=7\nx ${A}.1\n", "x 10.2.0.1\nx 10.2.7.1\n"},
		{"value trimmed", "$A=   v  \nx $A\n", "x v\n"},
		{"empty value", "$A=\nx $A y\n", "x y\n"},
		{"blank before = is no definition", "$A =1\n", "$A =1\n"},
		{"definition in a block", "a {\n $W=3\n weight $W\n}\n", "a {\n\tweight 3\n}\n"},
		{"conditional definition", "@main $P=1\n@^main $P=2\np $P\n", "p 1\n"},
		{"definition holding a conditional", "$M=@main\n$M x\n", "x\n"},
		{"substituted braces make blocks", "$OPEN={\na $OPEN\n b\n}\n", "a {\n\tb\n}\n"},
		{"substitution inside quotes", "$D=/opt\nscript \"${D}/check $D\"\n", "script \"/opt/check $D\"\n"}, // $D" is not a reference: a quote does not end a name
		{"predefined hash and bang", "x a${_HASH}b c${_BANG}d\n", "x \"a#b\" \"c!d\"\n"},
		{"predefined instance", "router_id ${_INSTANCE}\n", "router_id main\n"},
		{"predefined random", "x ${_RANDOM 7 7}\n", "x 7\n"},
		{"redefined predefined", "$_INSTANCE=me\nx $_INSTANCE\n", "x me\n"},

		{"multi-line definition", "$RS= \\\nreal_server 10.0.0.${N} 80 { \\\n  weight 1 \\\n}\n$N=1\n$RS\n$N=2\n${RS}\n",
			"real_server 10.0.0.1 80 {\n\tweight 1\n}\nreal_server 10.0.0.2 80 {\n\tweight 1\n}\n"},
		{"multi-line definition ended by an empty line", "$M= \\\na \\\nb \\\n\nc\n$M\n", "c\na\nb\n"},
		{"comment lines inside a multi-line definition", "$M= \\\na \\\n# note\n   \nb\n$M\n", "a\nb\n"},
		{"multi-line definition with a first line", "$M=a \\\nb\n$M\n", "a\nb\n"},
		{"multi-line use after text", "$M= \\\n1.1.1.1 \\\n2.2.2.2\nx $M\n", "x 1.1.1.1\n2.2.2.2\n"},
		{"nested multi-line definitions", "$IN= \\\nc 1 \\\nc 2\n$OUT= \\\nb { \\\n$IN \\\n}\na {\n$OUT\n}\n",
			"a {\n\tb {\n\t\tc 1\n\t\tc 2\n\t}\n}\n"},
		{"definitions inside a multi-line definition",
			"$RSD= \\\nreal_server 10.0.${V}.${R} 80 { \\\n  weight $R \\\n}\n" +
				"$VSD= \\\nvirtual_server 10.0.${V}.4 80 { \\\n  $R=1 \\\n  $RSD \\\n  $R=2 \\\n  $RSD \\\n}\n" +
				"$V=7\n$VSD\n",
			"virtual_server 10.0.7.4 80 {\n\treal_server 10.0.7.1 80 {\n\t\tweight 1\n\t}\n\treal_server 10.0.7.2 80 {\n\t\tweight 2\n\t}\n}\n"},
		{"conditionals in a multi-line definition", "$M= \\\n@main p 1 \\\n@^main p 2\n$M\n", "p 1\n"},
		{"empty multi-line definition", "$M= \\\n\nx $M y\n", "x y\n"},

		{"seq", "~SEQ(I, 1, 3) ip 10.0.${I}.1\n", "ip 10.0.1.1\nip 10.0.2.1\nip 10.0.3.1\n"},
		{"seq with end only", "~SEQ(I,2) n$I\n", "n1\nn2\n"},
		{"seq with start and end", "~SEQ(I,3,1) n$I\n", "n3\nn2\nn1\n"},
		{"seq with step", "~SEQ(I, 0, 5, 12) n$I\n", "n0\nn5\nn10\n"},
		{"seqx", "~SEQx(S, 0x90, 0x10, 0xb0) fe80::${S}:1\n", "fe80::90:1\nfe80::a0:1\nfe80::b0:1\n"},
		{"nested seq", "~SEQ(A,1,2) ~SEQ(B,1,2) x${A}${B}\n", "x11\nx12\nx21\nx22\n"},
		{"seq with parameter arguments", "$MAX=2\n~SEQ(I,1,$MAX) n$I\n", "n1\nn2\n"},
		{"seq of a multi-line parameter", "$M= \\\na ${I} \\\nb ${I}\n~SEQ(I,1,2) $M\n", "a 1\nb 1\na 2\nb 2\n"},
		{"seq in a block", "v {\n~SEQ(I,1,2) 10.0.0.${I}\n}\n", "v {\n\t10.0.0.1\n\t10.0.0.2\n}\n"},
		{"lst", "~LST(IP, 1, 2, 3) 192.168.0.${IP}\n", "192.168.0.1\n192.168.0.2\n192.168.0.3\n"},
		{"lst of groups", "~LST({A, B}, {10,1}, {20,4}) 192.168.${A}.${B}\n", "192.168.10.1\n192.168.20.4\n"},
		{"lst and seq", "~LST(A, x, y) ~SEQ(N,1,2) ${A}${N}\n", "x1\nx2\ny1\ny2\n"},
		{"other tilde lines are not substituted", "$A=1\n~ABC $A\n", "\"~ABC\" $A\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("k.conf", []byte(c.src), Options{ConfigID: "main", FS: fstest.MapFS{}})
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.src, err)
			}
			if got := formatted(f.Nodes); got != c.want {
				t.Errorf("Parse(%q):\n%s\nwant:\n%s", c.src, got, c.want)
			}
		})
	}
}

// TestPositions checks that nodes, arguments and braces point into the source,
// also after substitution and through includes.
func TestPositions(t *testing.T) {
	src := "" +
		"$W=7\n" + // 1
		"vs 10.0.0.1 80 {\n" + // 2
		"    weight $W   # c\n" + // 3
		"    x{y}\n" + // 4
		"}\n" + // 5
		"$M= \\\n" + // 6
		"  a 1 \\\n" + // 7
		"  b 2\n" + // 8
		"   $M\n" + // 9
		"include inc.conf\n" + // 10
		"~SEQ(I,1,2) s${I} t\n" // 11
	fsys := fstest.MapFS{"inc.conf": {Data: []byte("\n  inc \"q r\" z\n")}}
	f, err := Parse("k.conf", []byte(src), Options{ConfigID: "main", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	pos := func(file string, line, col int) Position { return Position{file, line, col} }
	vs := f.Nodes[0]
	w := vs.Children[0]
	x := vs.Children[1]
	checks := []struct {
		what      string
		got, want Position
	}{
		{"vs", vs.Pos, pos("k.conf", 2, 1)},
		{"vs arg 1", vs.ArgPos[1], pos("k.conf", 2, 13)},
		{"vs {", vs.Open, pos("k.conf", 2, 16)},
		{"vs }", vs.Close, pos("k.conf", 5, 1)},
		{"weight", w.Pos, pos("k.conf", 3, 5)},
		{"weight $W", w.ArgPos[0], pos("k.conf", 3, 12)},
		{"x", x.Pos, pos("k.conf", 4, 5)},
		{"x {", x.Open, pos("k.conf", 4, 6)},
		{"y", x.Children[0].Pos, pos("k.conf", 4, 7)},
		{"x }", x.Close, pos("k.conf", 4, 8)},
		{"multi-line a", f.Nodes[1].Pos, pos("k.conf", 9, 4)},
		{"multi-line b", f.Nodes[2].Pos, pos("k.conf", 9, 4)},
		{"included", f.Nodes[3].Pos, pos("inc.conf", 2, 3)},
		{"included quoted arg", f.Nodes[3].ArgPos[0], pos("inc.conf", 2, 7)},
		{"included arg", f.Nodes[3].ArgPos[1], pos("inc.conf", 2, 13)},
		{"seq 1", f.Nodes[4].Pos, pos("k.conf", 11, 13)},
		{"seq 2 arg", f.Nodes[5].ArgPos[0], pos("k.conf", 11, 19)},
		{"missing arg", vs.ArgPosition(2), pos("k.conf", 2, 15)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s at %s, want %s", c.what, c.got, c.want)
		}
	}
	if f.Nodes[4].Keyword != "s1" || f.Nodes[5].Keyword != "s2" {
		t.Errorf("seq nodes %s, %s", f.Nodes[4], f.Nodes[5])
	}
}

// TestErrors checks that problems are errors naming file:line:col and what is
// wrong, and that reading goes on to report the others.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string // each a prefix of one error, in order
	}{
		{"missing close brace", "global_defs {\n router_id a\n", []string{"k.conf:1:13: the block of global_defs opened here is never closed"}},
		{"missing close braces", "a {\n b {\n", []string{"k.conf:1:3: the block of a", "k.conf:2:4: the block of b"}},
		{"extra close brace", "a {\n}\n}\n", []string{"k.conf:3:1: unexpected '}': no block is open"}},
		{"brace with no keyword", "{\n x\n}\n", []string{"k.conf:1:1: unexpected '{': no keyword before it"}},
		{"second block", "a {\n} {\n}\n", []string{"k.conf:2:3: unexpected '{': a already has a block (opened at k.conf:1:3)"}},
		{"unterminated quote", "notify \"/bin/x --y\n", []string{"k.conf:1:8: unterminated quoted string"}},
		{"unterminated quote after an escaped one", "a \"b\\\"c\n", []string{"k.conf:1:"}},
		{"undefined braced parameter", "vs ${VIP} 80\n", []string{"k.conf:1:4: undefined parameter ${VIP}"}},
		{"multi-line parameter inside a line", "$M= \\\na \\\nb\nx $M y\n", []string{"k.conf:4:3: multi-line parameter $M can only be used at the end of a line"}},
		{"recursive parameter", "$A=x $A\ny $A\n", []string{"k.conf:2:1: parameter $A"}},
		{"mutually recursive parameters", "$A=$B\n$B=$A\ny $A\n", []string{"k.conf:3:1: parameter $"}},
		{"recursive multi-line parameter", "$M= \\\nx \\\n$M\n$M\n", []string{"k.conf:4:1: parameters expand inside each other more than"}},
		{"bad seq", "~SEQ(I; 1, 2) x\n", []string{"k.conf:1:1: invalid ~SEQ"}},
		{"seq without parenthesis", "~SEQ I x\n", []string{"k.conf:1:1: invalid ~SEQ"}},
		{"seq never ending", "~SEQ(I, 1, -1, 5) x\n", []string{"k.conf:1:1: invalid ~SEQ values"}},
		{"seq not a number", "~SEQ(I, 1, z) x\n", []string{"k.conf:1:1: invalid ~SEQ: \"z\" is not a number"}},
		{"seqx negative", "~SEQx(I, -3, 1) x\n", []string{"k.conf:1:1: ~SEQx is only valid"}},
		{"seq too long", "~SEQ(I, 1, 100000000000) x\n", []string{"k.conf:1:1: ~SEQ repeats its line"}},
		{"lst mismatched group", "~LST({A,B}, {1,2}, {3}) x\n", []string{"k.conf:1:1: invalid ~LST: value \"{3}\""}},
		{"lst without values", "~LST(A) x\n", []string{"k.conf:1:1: invalid ~LST"}},
		{"too deep", strings.Repeat("a {\n", 70) + strings.Repeat("}\n", 70), []string{"k.conf:65:3: blocks nested more than 64 deep"}},
		{"errors go on", "a {\n}\n}\nb ${X}\nc {\n", []string{"k.conf:3:1: unexpected '}'", "k.conf:4:3: undefined parameter ${X}", "k.conf:5:3: the block of c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("k.conf", []byte(c.src), Options{ConfigID: "main", FS: fstest.MapFS{}})
			if f == nil {
				t.Fatal("no File returned with the error")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse(%q) error %v, want an ErrorList", c.src, err)
			}
			if len(list) != len(c.want) {
				t.Fatalf("Parse(%q): %d errors, want %d:\n%v", c.src, len(list), len(c.want), err)
			}
			for i, w := range c.want {
				if !strings.HasPrefix(list[i].Error(), w) {
					t.Errorf("error %d = %q, want prefix %q", i, list[i].Error(), w)
				}
			}
			var one Error
			if !errors.As(err, &one) || one != list[0] {
				t.Errorf("errors.As(err, *Error) = %v", one)
			}
		})
	}
}

func TestTooManyErrors(t *testing.T) {
	_, err := Parse("k.conf", []byte(strings.Repeat("}\n", 500)), Options{ConfigID: "main"})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != maxErrors+1 || !strings.Contains(list[maxErrors].Msg, "too many errors") {
		t.Fatalf("got %d errors, last %v", len(list), list[len(list)-1])
	}
}

func TestLineLimit(t *testing.T) {
	_, err := Parse("k.conf", []byte("~SEQ(A,1,20) ~SEQ(B,1,20) ~SEQ(C,1,20) x\n"), Options{ConfigID: "main", maxLines: 1000})
	if err == nil || !strings.Contains(err.Error(), "more than 1000 lines") {
		t.Fatalf("err = %v", err)
	}
}

func TestWarnings(t *testing.T) {
	f, err := Parse("k.conf", []byte("a b \\\n@main\ninclude none/*.conf\n"), Options{ConfigID: "main", FS: fstest.MapFS{}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"k.conf:1:5: a '\\' at the end of a line continues it only in a $NAME= definition",
		"k.conf:2:1: conditional line \"@main\" has nothing after its id",
		"k.conf:3:1: include none/*.conf: no file matches none/*.conf",
	}
	if len(f.Warnings) != len(want) {
		t.Fatalf("warnings:\n%v", f.Warnings)
	}
	for i, w := range want {
		if !strings.HasPrefix(f.Warnings[i].Error(), w) {
			t.Errorf("warning %d = %q, want prefix %q", i, f.Warnings[i].Error(), w)
		}
	}
}

func TestDefaultConfigID(t *testing.T) {
	id := defaultConfigID()
	if strings.Contains(id, ".") {
		t.Errorf("default config id %q has a dot", id)
	}
	f, err := Parse("k.conf", []byte("x ${_INSTANCE}\n@"+id+" y\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id != "" && (f.Nodes[0].Arg(0) != id || len(f.Nodes) != 2) {
		t.Errorf("with the default config id %q: %s", id, formatted(f.Nodes))
	}
}

func TestRandomOption(t *testing.T) {
	var gotMin, gotMax int
	f, err := Parse("k.conf", []byte("x ${_RANDOM 3 9} ${_RANDOM}\n"), Options{ConfigID: "main", Random: func(min, max int) int {
		gotMin, gotMax = min, max
		return 4
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Nodes[0].Arg(0) != "4" || gotMin != 0 || gotMax != 32767 {
		t.Errorf("random: %s, last range [%d, %d]", f.Nodes[0], gotMin, gotMax)
	}
	f, _ = Parse("k.conf", []byte("x ${_RANDOM 3 5}\n"), Options{ConfigID: "main"})
	if a := f.Nodes[0].Arg(0); a != "3" && a != "4" && a != "5" {
		t.Errorf("random in [3, 5] = %q", a)
	}
}

func TestPWD(t *testing.T) {
	fsys := fstest.MapFS{"etc/keepalived/sub/a.conf": {Data: []byte("in ${_PWD}\n")}}
	f, err := Parse("/etc/keepalived/k.conf", []byte("top $_PWD\ninclude sub/a.conf\n"), Options{ConfigID: "main", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatted(f.Nodes); got != "top /etc/keepalived\nin /etc/keepalived/sub\n" {
		t.Errorf("got\n%s", got)
	}
}
