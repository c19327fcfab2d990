package keepalived

import "bytes"

// text is a piece of a logical line: its bytes and, for each byte, the column
// in the source line it came from (substituted text takes the column of the
// $ that brought it in).
type text struct {
	b   []byte
	col []int32
}

func newText(b []byte) text {
	t := text{b: append([]byte(nil), b...), col: make([]int32, len(b))}
	for i := range t.col {
		t.col[i] = int32(i + 1)
	}
	return t
}

// filled returns b with every byte at column col.
func filled(b []byte, col int32) text {
	t := text{b: append([]byte(nil), b...), col: make([]int32, len(b))}
	for i := range t.col {
		t.col[i] = col
	}
	return t
}

func (t text) slice(i, j int) text { return text{b: t.b[i:j], col: t.col[i:j]} }

func (t text) clone() text {
	return text{b: append([]byte(nil), t.b...), col: append([]int32(nil), t.col...)}
}

// cut removes bytes [i, j).
func (t *text) cut(i, j int) {
	t.b = append(t.b[:i], t.b[j:]...)
	t.col = append(t.col[:i], t.col[j:]...)
}

// replace replaces bytes [i, j) by v, every new byte at column col.
func (t *text) replace(i, j int, v []byte, col int32) {
	nb := make([]byte, 0, len(t.b)-(j-i)+len(v))
	nb = append(append(append(nb, t.b[:i]...), v...), t.b[j:]...)
	nc := make([]int32, 0, len(nb))
	nc = append(nc, t.col[:i]...)
	for range v {
		nc = append(nc, col)
	}
	nc = append(nc, t.col[j:]...)
	t.b, t.col = nb, nc
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// isSpace is keepalived's WHITE_SPACE: the word separators.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\f' || c == '\n' || c == '\r' || c == '\v'
}

func (t text) trimLeftBlanks() text {
	i := 0
	for i < len(t.b) && isBlank(t.b[i]) {
		i++
	}
	return t.slice(i, len(t.b))
}

func (t text) trimRightBlanks() text {
	j := len(t.b)
	for j > 0 && isBlank(t.b[j-1]) {
		j--
	}
	return t.slice(0, j)
}

// decomment does to one physical line what keepalived's decomment() does:
// removes leading blanks, the comment ('#' or '!' outside double quotes, to the
// end of the line), the backslash of \# and \! outside quotes, and trailing
// blanks, also those before a final backslash. It reports the column of an
// unterminated double quote, or 0.
func decomment(t text) (text, int32) {
	t = t.trimLeftBlanks().clone()
	quote, quoteCol := false, int32(0)
	skip := -1
	cont := false
	var backslashCol int32
	for p := 0; p < len(t.b); {
		c := t.b[p]
		switch {
		case c == '"':
			if skip < 0 {
				quote = !quote
				if quote {
					quoteCol = t.col[p]
				}
			}
			p++
		case c == '\\':
			if p+1 < len(t.b) {
				if !quote && (t.b[p+1] == '#' || t.b[p+1] == '!') {
					t.cut(p, p+1)
					p++
				} else {
					p += 2
				}
				continue
			}
			// A final backslash: a continuation mark, kept after the
			// blanks before it are removed.
			cont = true
			backslashCol = t.col[p]
			t = t.slice(0, p)
			p = len(t.b)
		case (c == '#' || c == '!') && !quote && skip < 0:
			skip = p
			p++
		default:
			p++
		}
	}
	bad := int32(0)
	if quote {
		bad = quoteCol
	}
	if skip >= 0 {
		t = t.slice(0, skip)
	}
	t = t.trimRightBlanks()
	if cont {
		t.b = append(t.b, '\\')
		t.col = append(t.col, backslashCol)
	}
	return t, bad
}

// braceSplit finds the first '{' or '}' outside double quotes, as keepalived's
// read_line() does. It returns the line to hand on now and the rest to read as
// the next line (empty when none). A brace at the start is a line of its own.
func braceSplit(t text) (now, rest text) {
	b := t.b
	p := -1
	if len(b) > 0 && (b[0] == '{' || b[0] == '}') {
		p = 0
	} else {
		for i := 0; i < len(b); {
			k := bytes.IndexAny(b[i:], "{}\"")
			if k < 0 {
				break
			}
			i += k
			if b[i] != '"' {
				p = i
				break
			}
			e := bytes.IndexByte(b[i+1:], '"')
			if e < 0 {
				break
			}
			i += 1 + e + 1
		}
	}
	if p < 0 {
		return t.trimRightBlanks(), text{}
	}
	if p == 0 {
		s := 1
		for s < len(b) && isBlank(b[s]) {
			s++
		}
		return t.slice(0, 1), t.slice(s, len(b)).trimRightBlanks()
	}
	return t.slice(0, p).trimRightBlanks(), t.slice(p, len(b)).trimRightBlanks()
}

// word is one word of a line with its column.
type word struct {
	s   string
	col int32
}

// split cuts a line into words as keepalived's alloc_strvec() does. It
// reports the column of a double quote that is never closed, or 0.
func split(t text) ([]word, int32) {
	b := t.b
	var out []word
	i := 0
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return out, 0
		}
		if b[i] == '"' {
			e := bytes.IndexByte(b[i+1:], '"')
			if e < 0 {
				return out, t.col[i]
			}
			out = append(out, word{s: string(b[i+1 : i+1+e]), col: t.col[i]})
			i += e + 2
			continue
		}
		j := i
		for j < len(b) && !isSpace(b[j]) && b[j] != '"' {
			j++
		}
		out = append(out, word{s: string(b[i:j]), col: t.col[i]})
		i = j
	}
}
