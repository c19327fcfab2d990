package keepalived

import (
	"fmt"
	"io"
	"strings"
)

// Position is a place in a configuration file. Line and Col count from 1; Col
// counts bytes. File is the path the file was read under: for an included file,
// the include pattern's match joined to the including file's directory. A
// quoted word is at its opening quote; text that came from a $NAME is at the
// '$' of the line that used it, also for every line of a multi-line parameter.
type Position struct {
	File string
	Line int
	Col  int
}

// String returns "file:line:col".
func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsValid reports whether p names a line.
func (p Position) IsValid() bool { return p.Line > 0 }

// Node is one configuration line: a keyword, its arguments and, when the line
// is followed by { ... }, the lines of that block.
//
// Lines inside value blocks (virtual_ipaddress, notification_email,
// unicast_peer, track_script, ...) are nodes too: "10.0.0.1/24 dev eth0" is a
// node with keyword "10.0.0.1/24" and arguments "dev", "eth0". [Node.Words]
// and [Node.BlockWords] give them back as plain word lists.
type Node struct {
	Keyword string
	Args    []string
	Pos     Position   // the keyword
	ArgPos  []Position // one per argument

	// Block is true when the node has a { } block; Children are its lines
	// (possibly none). Open and Close are the braces.
	Block    bool
	Children []*Node
	Open     Position
	Close    Position
}

// Arg returns argument i, or "" when there are fewer arguments.
func (n *Node) Arg(i int) string {
	if n == nil || i < 0 || i >= len(n.Args) {
		return ""
	}
	return n.Args[i]
}

// ArgPosition returns the position of argument i, or the position just after
// the last word when there are fewer arguments (where a missing argument would
// be), so that errors about arguments always have a place.
func (n *Node) ArgPosition(i int) Position {
	if n == nil {
		return Position{}
	}
	if i >= 0 && i < len(n.ArgPos) {
		return n.ArgPos[i]
	}
	p, w := n.Pos, n.Keyword
	if len(n.Args) > 0 {
		p, w = n.ArgPos[len(n.ArgPos)-1], n.Args[len(n.Args)-1]
	}
	p.Col += len(w)
	return p
}

// Words returns the keyword followed by the arguments.
func (n *Node) Words() []string {
	if n == nil {
		return nil
	}
	return append([]string{n.Keyword}, n.Args...)
}

// Child returns the first child with the keyword, or nil.
func (n *Node) Child(keyword string) *Node {
	if n == nil {
		return nil
	}
	return first(n.Children, keyword)
}

// All returns every child with the keyword, in order.
func (n *Node) All(keyword string) []*Node {
	if n == nil {
		return nil
	}
	return all(n.Children, keyword)
}

// Has reports whether a child has the keyword.
func (n *Node) Has(keyword string) bool { return n.Child(keyword) != nil }

// BlockWords returns every word of every line of the block, in order, as
// keepalived reads value blocks such as virtual_ipaddress or
// notification_email.
func (n *Node) BlockWords() []string {
	if n == nil {
		return nil
	}
	var w []string
	for _, c := range n.Children {
		w = append(w, c.Keyword)
		w = append(w, c.Args...)
	}
	return w
}

// String returns the line as keepalived syntax, without its block.
func (n *Node) String() string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(quote(n.Keyword))
	for _, a := range n.Args {
		b.WriteByte(' ')
		b.WriteString(quote(a))
	}
	return b.String()
}

// File is a parsed configuration: the top-level nodes of the main file with the
// text of every include spliced in where it was included.
type File struct {
	Name  string   // the main file
	Nodes []*Node  // top-level lines
	Files []string // every file read, main file first, in the order read

	// Warnings are things keepalived accepts but a reader likely did not
	// mean, such as an include pattern matching no file.
	Warnings ErrorList
}

// Child returns the first top-level node with the keyword, or nil.
func (f *File) Child(keyword string) *Node {
	if f == nil {
		return nil
	}
	return first(f.Nodes, keyword)
}

// All returns every top-level node with the keyword, in order.
func (f *File) All(keyword string) []*Node {
	if f == nil {
		return nil
	}
	return all(f.Nodes, keyword)
}

// Walk calls fn for every node in depth-first order, with its depth (0 for
// top-level nodes). When fn returns false, the node's children are skipped.
func Walk(nodes []*Node, fn func(n *Node, depth int) bool) {
	walk(nodes, 0, fn)
}

func walk(nodes []*Node, depth int, fn func(*Node, int) bool) {
	for _, n := range nodes {
		if fn(n, depth) {
			walk(n.Children, depth+1, fn)
		}
	}
}

func first(nodes []*Node, keyword string) *Node {
	for _, n := range nodes {
		if n.Keyword == keyword {
			return n
		}
	}
	return nil
}

func all(nodes []*Node, keyword string) []*Node {
	var out []*Node
	for _, n := range nodes {
		if n.Keyword == keyword {
			out = append(out, n)
		}
	}
	return out
}

// Format writes nodes as keepalived syntax, one line per node, blocks indented
// by a tab. Words that need it are double-quoted; keepalived has no way to
// write a word holding both a double quote and a blank, so such a word does not
// read back the same.
func Format(w io.Writer, nodes []*Node) error {
	var b strings.Builder
	format(&b, nodes, 0)
	_, err := io.WriteString(w, b.String())
	return err
}

func format(b *strings.Builder, nodes []*Node, depth int) {
	for _, n := range nodes {
		b.WriteString(strings.Repeat("\t", depth))
		b.WriteString(n.String())
		if n.Block {
			b.WriteString(" {\n")
			format(b, n.Children, depth+1)
			b.WriteString(strings.Repeat("\t", depth))
			b.WriteString("}")
		}
		b.WriteByte('\n')
	}
}

// quote double-quotes a word that would not read back as itself.
func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\f\n\r\v#!{}\"") || s[0] == '@' || s[0] == '~' {
		if strings.Contains(s, `"`) {
			return s
		}
		return `"` + s + `"`
	}
	return s
}

// Error is one problem, at a place in a file. Warnings use the same type.
type Error struct {
	Pos Position
	Msg string
}

func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found, in the order found (file order, with the
// text of an include at the place of its include line).
type ErrorList []Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the errors one by one, for errors.As and errors.Is.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}
