package keepalived

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// definition is a $NAME parameter.
type definition struct {
	name      string
	value     []byte // lines separated by '\n' when multiline
	multiline bool
	// builtin computes the value of a predefined parameter; nil once the
	// configuration redefines it.
	builtin   func(p *parser, params []int) string
	maxParams int
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }
func isDigit(c byte) bool     { return c >= '0' && c <= '9' }

func (p *parser) predefine() {
	p.defs = map[string]*definition{
		"_PWD":      {name: "_PWD", builtin: func(p *parser, _ []int) string { return p.pwd() }},
		"_INSTANCE": {name: "_INSTANCE", builtin: func(p *parser, _ []int) string { return p.configID }},
		"_RANDOM":   {name: "_RANDOM", builtin: (*parser).random, maxParams: 2},
		"_HASH":     {name: "_HASH", value: []byte("#")},
		"_BANG":     {name: "_BANG", value: []byte("!")},
	}
}

func (p *parser) random(params []int) string {
	lo, hi := 0, 32767
	if len(params) > 0 {
		lo = params[0]
	}
	if len(params) > 1 {
		hi = params[1]
	}
	if hi < lo {
		lo, hi = hi, lo
	}
	if p.opts.Random != nil {
		return strconv.Itoa(p.opts.Random(lo, hi))
	}
	return strconv.Itoa(lo + rand.IntN(hi-lo+1))
}

// define handles a line "$NAME=VALUE" (no blank before '='). It reports false
// when the line is not a definition, which then stays an ordinary line.
func (p *parser) define(t text) bool {
	b := t.b
	if len(b) < 2 || b[0] != '$' || !isNameStart(b[1]) {
		return false
	}
	i := 2
	for i < len(b) && isNameChar(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '=' {
		return false
	}
	name := string(b[1:i])
	v := bytes.TrimLeft(b[i+1:], " \t")
	d := &definition{name: name}
	if len(v) > 0 && v[len(v)-1] == '\\' {
		// A multi-line definition: the lines that follow, up to one
		// without a final backslash or an empty line, are part of it.
		d.multiline = true
		v = bytes.TrimRight(v[:len(v)-1], " \t")
		if len(v) > 0 {
			d.value = append(append([]byte(nil), v...), '\n')
		}
		p.pending = d
	} else {
		d.value = append([]byte(nil), v...)
	}
	p.defs[name] = d
	return true
}

// continueDefinition adds one physical line (already decommented, not empty)
// to the multi-line definition being read; a line without a final backslash
// is its last.
func (p *parser) continueDefinition(t text) {
	d := p.pending
	b := t.b
	more := len(b) > 0 && b[len(b)-1] == '\\'
	if more {
		b = bytes.TrimRight(b[:len(b)-1], " \t")
		if len(b) > 0 {
			d.value = append(append(d.value, b...), '\n')
		}
		return
	}
	d.value = append(d.value, b...)
	p.endDefinition()
}

func (p *parser) endDefinition() {
	if d := p.pending; d != nil && len(bytes.TrimSpace(d.value)) == 0 {
		d.multiline = false
		d.value = nil
	}
	p.pending = nil
}

// reference is a use of a parameter in a line.
type reference struct {
	def    *definition
	name   string
	end    int // index just after the reference
	params []int
}

// What lookup found at a '$'.
const (
	notRef       = iota // not a parameter reference: the '$' is a character
	refOK               // a reference to replace
	refUndefined        // a well-formed ${NAME} naming no parameter
	refMultiline        // a multi-line parameter not at the end of the line
)

// lookup checks for a parameter reference at b[i] == '$', with keepalived's
// rules: $NAME must be followed by a blank, ',', ')' or the end of the line;
// ${NAME} may be followed by anything; ${NAME 1 2} passes numbers to a
// predefined parameter that takes them. A multi-line parameter is replaced
// only when its reference ends the line.
func (p *parser) lookup(b []byte, i int) (reference, int) {
	var ref reference
	j := i + 1
	brace := j < len(b) && b[j] == '{'
	if brace {
		j++
	}
	if j >= len(b) || !isNameStart(b[j]) {
		return ref, notRef
	}
	s := j
	for j < len(b) && isNameChar(b[j]) {
		j++
	}
	ref.name = string(b[s:j])
	if brace {
		ps, pe := -1, -1
		for j < len(b) && (b[j] == ' ' || isDigit(b[j])) {
			if b[j] != ' ' {
				if ps < 0 {
					ps = j
				}
				pe = j
			}
			j++
		}
		if j >= len(b) || b[j] != '}' || ps >= 0 && pe+1 != j {
			return ref, notRef
		}
		if ps >= 0 {
			for _, f := range strings.Fields(string(b[ps:j])) {
				n, err := strconv.Atoi(f)
				if err != nil || n > 1<<30 {
					n = 1 << 30
				}
				ref.params = append(ref.params, n)
			}
		}
		j++
	} else if j < len(b) && !isBlank(b[j]) && b[j] != ',' && b[j] != ')' {
		return ref, notRef
	}
	ref.end = j
	d := p.defs[ref.name]
	if d == nil {
		if brace {
			return ref, refUndefined
		}
		return ref, notRef
	}
	if d.multiline && j != len(b) {
		return ref, refMultiline
	}
	if ref.params != nil && (d.builtin == nil || len(ref.params) > d.maxParams) {
		return ref, notRef
	}
	ref.def = d
	return ref, refOK
}

// Limits on substitution, so that a recursive definition ends in an error.
const (
	maxSubstitutions = 4096
	maxLineLen       = 64 << 10
)

// substitute replaces the parameter references in t as keepalived's
// replace_param() does: the text is rescanned from each replacement, so
// replacements are recursive. A multi-line parameter ending the line gives
// its first line in place and its other lines in more, to be read as the
// lines that follow. changed is false when nothing was replaced.
func (p *parser) substitute(t text) (out text, more []text, changed bool, err error) {
	t = t.clone()
	n := 0
	for i := 0; i < len(t.b); {
		k := bytes.IndexByte(t.b[i:], '$')
		if k < 0 {
			break
		}
		i += k
		if i+1 >= len(t.b) {
			break
		}
		ref, st := p.lookup(t.b, i)
		if st != refOK {
			i++
			continue
		}
		n++
		if n > maxSubstitutions {
			return t, nil, false, fmt.Errorf("parameter $%s: more than %d substitutions in one line (a definition that uses itself?)", ref.def.name, maxSubstitutions)
		}
		d := ref.def
		v := d.value
		if d.builtin != nil {
			v = []byte(d.builtin(p, ref.params))
		}
		col := t.col[i]
		if d.multiline {
			lines := bytes.Split(v, []byte{'\n'})
			v = lines[0]
			var rest []text
			for _, l := range lines[1:] {
				if len(bytes.TrimSpace(l)) > 0 {
					rest = append(rest, filled(l, col))
				}
			}
			more = append(rest, more...)
		}
		if len(t.b)-(ref.end-i)+len(v) > maxLineLen {
			return t, nil, false, fmt.Errorf("parameter $%s: the line would be longer than %d bytes (a definition that uses itself?)", d.name, maxLineLen)
		}
		t.replace(i, ref.end, v, col)
		changed = true
		if t := bytes.TrimLeft(v, " \t"); len(t) > 0 && t[0] == '~' {
			// A ~SEQ or ~LST from a parameter is expanded before the
			// rest of the line is substituted.
			break
		}
	}
	return t, more, changed, nil
}

// refProblem is a parameter reference keepalived would mangle.
type refProblem struct {
	col int32
	msg string
}

// checkRefs finds, outside double quotes, each ${NAME} naming no parameter
// (keepalived would split its braces into blocks) and each multi-line
// parameter not at the end of its line (keepalived leaves it as it is). It
// returns them with the line where their braces are removed, so that reading
// goes on without blocks the user did not write.
func (p *parser) checkRefs(t text) (text, []refProblem) {
	var probs []refProblem
	quote := false
	for i := 0; i < len(t.b); i++ {
		switch t.b[i] {
		case '"':
			quote = !quote
		case '$':
			if quote {
				continue
			}
			ref, st := p.lookup(t.b, i)
			var msg string
			switch st {
			case refUndefined:
				msg = fmt.Sprintf("undefined parameter %s (define it with $%s=VALUE before this line)", string(t.b[i:ref.end]), ref.name)
			case refMultiline:
				msg = fmt.Sprintf("multi-line parameter %s can only be used at the end of a line", string(t.b[i:ref.end]))
			default:
				continue
			}
			probs = append(probs, refProblem{t.col[i], msg})
			if t.b[i+1] == '{' {
				if len(probs) == 1 {
					t = t.clone()
				}
				t.cut(ref.end-1, ref.end)
				t.cut(i+1, i+2)
			}
		}
	}
	return t, probs
}

// loop is a parsed ~SEQ or ~LST: variables, the values to give them on each
// round, and the rest of the line to read each time.
type loop struct {
	vars   []string
	rounds func(yield func(vals []string) bool)
	count  int64
	rest   text
}

// parseSeq parses "~SEQ(VAR, [START,] [STEP,] END) REST" or ~SEQx(...).
func (p *parser) parseSeq(t text) (*loop, error) {
	b := t.b
	i := 4
	hex := false
	if i < len(b) && b[i] == 'x' {
		hex = true
		i++
	}
	args, end, err := p.loopArgs(t, i)
	if err != nil {
		return nil, err
	}
	bad := fmt.Errorf("invalid ~SEQ: want ~SEQ(VAR, [START,] [STEP,] END), have %q", string(b[:end]))
	if len(args) < 2 || len(args) > 4 || !validName(args[0]) {
		return nil, bad
	}
	var nums []int64
	for _, a := range args[1:] {
		v, err := strconv.ParseInt(a, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid ~SEQ: %q is not a number", a)
		}
		if v > 1<<40 || v < -(1<<40) {
			return nil, fmt.Errorf("invalid ~SEQ: %q is out of range", a)
		}
		nums = append(nums, v)
	}
	var start, step, last int64
	switch len(nums) {
	case 1:
		last = nums[0]
		start, step = 1, 1
		if last < 0 {
			start = -1
		}
		if last < 1 {
			step = -1
		}
	case 2:
		start, last = nums[0], nums[1]
		step = 1
		if start > last {
			step = -1
		}
	case 3:
		start, step, last = nums[0], nums[1], nums[2]
		if step == 0 || start < last && step < 0 || start > last && step > 0 {
			return nil, fmt.Errorf("invalid ~SEQ values: start %d, step %d, end %d never reach the end", start, step, last)
		}
	}
	if hex && (start < 0 || last < 0) {
		return nil, fmt.Errorf("~SEQx is only valid for numbers that are not negative")
	}
	count := (last-start)/step + 1
	if count < 0 {
		count = 0
	}
	format := func(v int64) string {
		if hex {
			return strconv.FormatInt(v, 16)
		}
		return strconv.FormatInt(v, 10)
	}
	return &loop{
		vars:  []string{args[0]},
		count: count,
		rest:  t.slice(end, len(b)).trimLeftBlanks(),
		rounds: func(yield func([]string) bool) {
			for k := int64(0); k < count; k++ {
				if !yield([]string{format(start + k*step)}) {
					return
				}
			}
		},
	}, nil
}

// parseLst parses "~LST(VAR, V1, V2, ...) REST" or
// "~LST({VAR1, VAR2}, {A1, A2}, {B1, B2}, ...) REST".
func (p *parser) parseLst(t text) (*loop, error) {
	b := t.b
	args, end, err := p.loopArgs(t, 4)
	if err != nil {
		return nil, err
	}
	bad := fmt.Errorf("invalid ~LST: want ~LST(VAR, VALUE, ...) or ~LST({VAR, ...}, {VALUE, ...}, ...), have %q", string(b[:end]))
	if len(args) < 2 {
		return nil, bad
	}
	group := func(s string) ([]string, bool) {
		if !strings.HasPrefix(s, "{") {
			return []string{s}, false
		}
		if !strings.HasSuffix(s, "}") {
			return nil, false
		}
		var out []string
		for _, f := range strings.Split(s[1:len(s)-1], ",") {
			out = append(out, strings.TrimSpace(f))
		}
		return out, true
	}
	vars, grouped := group(args[0])
	if vars == nil {
		return nil, bad
	}
	for _, v := range vars {
		if !validName(v) {
			return nil, fmt.Errorf("invalid ~LST: %q is not a parameter name", v)
		}
	}
	var rows [][]string
	for _, a := range args[1:] {
		vals, g := group(a)
		if vals == nil || g != grouped || len(vals) != len(vars) {
			return nil, fmt.Errorf("invalid ~LST: value %q does not match the variables %s", a, args[0])
		}
		rows = append(rows, vals)
	}
	return &loop{
		vars:  vars,
		count: int64(len(rows)),
		rest:  t.slice(end, len(b)).trimLeftBlanks(),
		rounds: func(yield func([]string) bool) {
			for _, r := range rows {
				if !yield(r) {
					return
				}
			}
		},
	}, nil
}

// loopArgs reads "(A, B, {C, D}, ...)" starting at b[i], substituting
// parameters in it, and returns the arguments (trimmed) and the index after
// ')'. Commas inside {...} do not separate arguments.
func (p *parser) loopArgs(t text, i int) ([]string, int, error) {
	b := t.b
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '(' {
		return nil, 0, fmt.Errorf("invalid %s: '(' expected after it", string(b[:min(i, len(b))]))
	}
	depth := 0
	close := -1
	for j := i + 1; j < len(b); j++ {
		if b[j] == '{' {
			depth++
		} else if b[j] == '}' && depth > 0 {
			depth--
		} else if b[j] == ')' && depth == 0 {
			close = j
			break
		}
	}
	if close < 0 {
		return nil, 0, fmt.Errorf("invalid %s: no ')' closes its '('", string(bytes.TrimRight(b[:i], " \t")))
	}
	inner := t.slice(i+1, close).clone()
	if bytes.IndexByte(inner.b, '$') >= 0 {
		s, more, _, err := p.substitute(inner)
		if err != nil {
			return nil, 0, err
		}
		if len(more) > 0 {
			return nil, 0, fmt.Errorf("a multi-line parameter cannot be used in the arguments of %s", string(b[:4]))
		}
		inner = s
	}
	var args []string
	depth, from := 0, 0
	ib := inner.b
	for j := 0; j <= len(ib); j++ {
		if j < len(ib) && ib[j] == '{' {
			depth++
		} else if j < len(ib) && ib[j] == '}' && depth > 0 {
			depth--
		} else if j == len(ib) || ib[j] == ',' && depth == 0 {
			args = append(args, strings.TrimSpace(string(ib[from:j])))
			from = j + 1
		}
	}
	return args, close + 1, nil
}

func validName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}
