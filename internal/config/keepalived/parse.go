package keepalived

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Options change how a configuration is read.
type Options struct {
	// ConfigID is the id that @ID lines are compared with, and the value of
	// ${_INSTANCE}; keepalived takes it from -i/--config-id. Empty: the host
	// name up to its first dot, as keepalived does.
	ConfigID string

	// FS is where ParseFile and include read files, when set. Paths are
	// resolved as on a Unix file system whose root is the root of FS:
	// "/etc/keepalived/conf.d/*.conf" is "etc/keepalived/conf.d/*.conf" in FS.
	// Nil: the operating system's files.
	FS fs.FS

	// Random returns a number in [min, max] for ${_RANDOM MIN MAX}. Nil: a
	// pseudo-random number.
	Random func(min, max int) int

	maxLines int // test hook: the limit on lines read, expansions included
}

// Limits that turn runaway input into errors.
const (
	maxNesting      = 64      // blocks inside blocks
	maxIncludeDepth = 32      // includes inside includes
	maxExpandDepth  = 64      // substitutions inside substitutions
	maxLines        = 1 << 22 // lines read, counting each round of ~SEQ/~LST and each line of a multi-line parameter
	maxErrors       = 100
)

// ParseFile reads the configuration in the file at path, with its includes.
func ParseFile(path string, opts Options) (*File, error) {
	fsys := newFileSystem(opts.FS)
	src, err := fsys.readFile(path)
	if err != nil {
		return &File{Name: path}, ErrorList{{Pos: Position{File: path}, Msg: "cannot read the configuration: " + errText(err)}}
	}
	return Parse(path, src, opts)
}

// Parse reads the configuration src, read from the file filename; includes are
// read from opts.FS (or the operating system), relative to filename's
// directory. The File is returned also when there are errors, holding what
// could be read; the error is then an ErrorList.
func Parse(filename string, src []byte, opts Options) (*File, error) {
	p := &parser{opts: opts, fs: newFileSystem(opts.FS), configID: opts.ConfigID, errSeen: map[Error]bool{}}
	if p.configID == "" {
		p.configID = defaultConfigID()
	}
	p.limit = maxLines
	if opts.maxLines > 0 {
		p.limit = opts.maxLines
	}
	p.predefine()
	p.file.Name = filename
	p.file.Files = []string{filename}
	p.parseSource(filename, p.fs.key(filename), src)
	for _, f := range p.open {
		if !f.phantom {
			p.errorf(f.node.Open, "the block of %s opened here is never closed: a '}' is missing", f.node.Keyword)
		}
	}
	p.file.Nodes = p.root
	if len(p.errs) > 0 {
		return &p.file, p.errs
	}
	return &p.file, nil
}

// defaultConfigID is keepalived's default config id: the node name up to its
// first dot.
func defaultConfigID() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

type parser struct {
	opts     Options
	fs       fileSystem
	configID string
	defs     map[string]*definition
	pending  *definition // the multi-line definition being read

	file  File
	root  []*Node
	open  []frame   // blocks open, innermost last
	stack []srcFile // files being read, innermost last

	errs    ErrorList
	errSeen map[Error]bool
	stop    bool // too many errors or lines: read no more

	lines   int // lines processed, for the limit
	limit   int
	emitted int // nodes and braces emitted, to tell whether a line produced any
}

type frame struct {
	node    *Node
	phantom bool // opened by a misplaced '{': its lines are dropped
}

type srcFile struct {
	name, key string
}

func (p *parser) errorf(pos Position, format string, args ...any) {
	e := Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	if p.errSeen[e] || len(p.errs) >= maxErrors {
		return
	}
	p.errSeen[e] = true
	p.errs = append(p.errs, e)
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, Error{Pos: pos, Msg: "too many errors; reading stopped"})
		p.stop = true
	}
}

func (p *parser) warnf(pos Position, format string, args ...any) {
	if len(p.file.Warnings) < maxErrors {
		p.file.Warnings = append(p.file.Warnings, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
}

func (p *parser) pwd() string {
	if len(p.stack) == 0 {
		return ""
	}
	return p.fs.dir(p.stack[len(p.stack)-1].name)
}

// parseSource reads one file: physical lines, decommented, into definitions
// or logical lines.
func (p *parser) parseSource(name, key string, src []byte) {
	p.stack = append(p.stack, srcFile{name: name, key: key})
	defer func() { p.stack = p.stack[:len(p.stack)-1] }()
	lineNo := 0
	for len(src) > 0 && !p.stop {
		var raw []byte
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			raw, src = src[:i], src[i+1:]
		} else {
			raw, src = src, nil
		}
		lineNo++
		for len(raw) > 0 && (raw[len(raw)-1] == '\r' || raw[len(raw)-1] == '\n') {
			raw = raw[:len(raw)-1]
		}
		if len(raw) == 0 {
			// An empty line ends a multi-line definition.
			p.endDefinition()
			continue
		}
		t, badQuote := decomment(newText(raw))
		if badQuote != 0 {
			p.errorf(Position{name, lineNo, int(badQuote)}, "unterminated quoted string: the '\"' here is never closed")
		}
		if len(t.b) == 0 {
			continue // blank or comment: also inside a multi-line definition
		}
		if p.pending != nil {
			p.continueDefinition(t)
			continue
		}
		before := p.emitted
		p.process(name, lineNo, t, 0)
		if n := len(t.b); p.pending == nil && p.emitted > before && t.b[n-1] == '\\' && (n < 2 || t.b[n-2] != '\\') {
			p.warnf(Position{name, lineNo, int(t.col[n-1])}, "a '\\' at the end of a line continues it only in a $NAME= definition; here it is part of the word before it")
		}
	}
	// keepalived would carry an unfinished multi-line definition on into
	// the including file; it ends with its file here.
	p.endDefinition()
}

// process reads one logical line as keepalived's read_line() does:
// conditional, definition, ~SEQ/~LST, substitution, include, and braces.
func (p *parser) process(file string, line int, t text, depth int) {
	if p.stop {
		return
	}
	pos := func(col int32) Position { return Position{File: file, Line: line, Col: int(col)} }
	for !p.stop {
		t = t.trimLeftBlanks()
		if len(t.b) == 0 {
			return
		}
		p.lines++
		if p.lines > p.limit {
			p.errorf(pos(t.col[0]), "the configuration expands to more than %d lines (a ~SEQ or ~LST too large, or a parameter that uses itself?)", p.limit)
			p.stop = true
			return
		}
		if depth > maxExpandDepth {
			p.errorf(pos(t.col[0]), "parameters expand inside each other more than %d deep (a multi-line parameter that uses itself?)", maxExpandDepth)
			return
		}
		b := t.b
		if b[0] == '@' {
			off, neg := 1, false
			if len(b) > 1 && b[1] == '^' {
				off, neg = 2, true
			}
			j := off
			for j < len(b) && !isBlank(b[j]) {
				j++
			}
			if j >= len(b) {
				p.warnf(pos(t.col[0]), "conditional line %q has nothing after its id; keepalived ignores it", string(b))
				return
			}
			if (string(b[off:j]) == p.configID) == neg {
				return
			}
			t = t.slice(j, len(b)).trimLeftBlanks()
			b = t.b
			if len(b) == 0 {
				return
			}
		}
		if b[0] == '$' && p.define(t) {
			return
		}
		if bytes.HasPrefix(b, []byte("~SEQ")) || bytes.HasPrefix(b, []byte("~LST")) {
			p.loop(file, line, t, depth)
			return
		}
		if b[0] != '~' && bytes.IndexByte(b, '$') >= 0 {
			nt, more, changed, err := p.substitute(t)
			if err != nil {
				p.errorf(pos(t.col[0]), "%v", err)
				return
			}
			if changed {
				p.process(file, line, nt, depth+1)
				for _, m := range more {
					p.process(file, line, m, depth+1)
				}
				return
			}
			var probs []refProblem
			if t, probs = p.checkRefs(t); len(probs) > 0 {
				for _, e := range probs {
					p.errorf(pos(e.col), "%s", e.msg)
				}
				b = t.b
			}
		}
		if kw, pattern, ok := includeLine(b); ok {
			p.include(kw, pattern, pos(t.col[0]))
			return
		}
		now, rest := braceSplit(t)
		p.emit(file, line, now)
		t = rest
	}
}

// loop runs a ~SEQ or ~LST line: the rest of the line once per value.
func (p *parser) loop(file string, line int, t text, depth int) {
	pos := Position{File: file, Line: line, Col: int(t.col[0])}
	var l *loop
	var err error
	if t.b[1] == 'S' {
		l, err = p.parseSeq(t)
	} else {
		l, err = p.parseLst(t)
	}
	if err != nil {
		p.errorf(pos, "%v", err)
		return
	}
	if l.count > int64(p.limit) {
		p.errorf(pos, "%s repeats its line %d times, more than the limit of %d lines", string(t.b[:4]), l.count, p.limit)
		p.stop = true
		return
	}
	for vals := range l.rounds {
		for i, v := range l.vars {
			p.defs[v] = &definition{name: v, value: []byte(vals[i])}
		}
		p.process(file, line, l.rest.clone(), depth+1)
		if p.stop {
			break
		}
	}
}

// emit hands one line, without braces inside it except alone, to the tree.
func (p *parser) emit(file string, line int, t text) {
	pos := func(col int32) Position { return Position{File: file, Line: line, Col: int(col)} }
	if len(t.b) == 1 && (t.b[0] == '{' || t.b[0] == '}') {
		p.emitted++
		if t.b[0] == '{' {
			p.openBlock(pos(t.col[0]))
		} else {
			p.closeBlock(pos(t.col[0]))
		}
		return
	}
	words, badQuote := split(t)
	if badQuote != 0 {
		p.errorf(pos(badQuote), "unterminated quoted string: the '\"' here is never closed")
	}
	if len(words) == 0 {
		return
	}
	p.emitted++
	n := &Node{Keyword: words[0].s, Pos: pos(words[0].col)}
	for _, w := range words[1:] {
		n.Args = append(n.Args, w.s)
		n.ArgPos = append(n.ArgPos, pos(w.col))
	}
	kids := p.children()
	*kids = append(*kids, n)
}

func (p *parser) children() *[]*Node {
	if len(p.open) == 0 {
		return &p.root
	}
	return &p.open[len(p.open)-1].node.Children
}

func (p *parser) openBlock(pos Position) {
	kids := *p.children()
	var last *Node
	if len(kids) > 0 {
		last = kids[len(kids)-1]
	}
	switch {
	case len(p.open) > 0 && p.open[len(p.open)-1].phantom:
		p.open = append(p.open, frame{node: &Node{}, phantom: true})
	case last == nil:
		p.errorf(pos, "unexpected '{': no keyword before it to open a block for")
		p.open = append(p.open, frame{node: &Node{}, phantom: true})
	case last.Block:
		p.errorf(pos, "unexpected '{': %s already has a block (opened at %s)", last.Keyword, last.Open)
		p.open = append(p.open, frame{node: &Node{}, phantom: true})
	case len(p.open) >= maxNesting:
		p.errorf(pos, "blocks nested more than %d deep", maxNesting)
		p.open = append(p.open, frame{node: &Node{}, phantom: true})
	default:
		last.Block = true
		last.Open = pos
		p.open = append(p.open, frame{node: last})
	}
}

func (p *parser) closeBlock(pos Position) {
	if len(p.open) == 0 {
		p.errorf(pos, "unexpected '}': no block is open")
		return
	}
	f := p.open[len(p.open)-1]
	p.open = p.open[:len(p.open)-1]
	if !f.phantom {
		f.node.Close = pos
	}
}

// includeLine reports whether a line is an include and returns the keyword and
// the pattern: the rest of the line, as keepalived 2.2 takes it.
func includeLine(b []byte) (kw, pattern string, ok bool) {
	i := 0
	for i < len(b) && !isBlank(b[i]) {
		i++
	}
	switch string(b[:i]) {
	case "include", "includer", "includem", "includew", "includeb", "includea":
	default:
		return "", "", false
	}
	return string(b[:i]), strings.TrimSpace(string(b[i:])), true
}

func errText(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
