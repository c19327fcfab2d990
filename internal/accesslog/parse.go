package accesslog

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Entry is a parsed line, as the analyser needs it. Its byte slices point
// into the line (or into the Entry's own buffer for strings with escapes):
// they are valid until the next Parse into the same Entry or the next read
// of the line's buffer. Nothing is allocated per line.
type Entry struct {
	Time        int64 // Unix nanoseconds
	Service     []byte
	Client      []byte
	RealServer  []byte
	ConnectMs   float64 // valid if HasConnect
	HasConnect  bool
	DurationMs  float64
	BytesIn     uint64
	BytesOut    uint64
	Termination Termination

	scratch []byte
}

// The keys Parse knows; the others are skipped.
const (
	keyTime = 1 << iota
	keyService
	keyClient
	keyRealServer
	keyDuration
	keyBytesIn
	keyBytesOut
	keyTermination
	keyConnect

	required = keyTime | keyService | keyClient | keyRealServer | keyDuration | keyBytesIn | keyBytesOut | keyTermination
)

var requiredNames = []struct {
	bit  int
	name string
}{{keyTime, "time"}, {keyService, "service"}, {keyClient, "client"}, {keyRealServer, "real_server"},
	{keyDuration, "duration_ms"}, {keyBytesIn, "bytes_in"}, {keyBytesOut, "bytes_out"}, {keyTermination, "termination"}}

// ParseError says where in a line parsing failed.
type ParseError struct {
	Col int // 1-based byte column
	Msg string
}

func (e *ParseError) Error() string { return fmt.Sprintf("col %d: %s", e.Col, e.Msg) }

// Parse reads one JSON line (a trailing newline is allowed) into e. It is a
// hand-written scanner for the flat object of docs/logs.md: no reflection,
// no allocation. Unknown keys (of any JSON type, nested or not) are
// skipped; a key given twice counts the last time.
func Parse(line []byte, e *Entry) error {
	if parseOwn(line, e) {
		return nil
	}
	return parseAny(line, e)
}

// parseOwn reads a line as Record.AppendJSON writes it: its keys in its
// order, no spaces. Matching the keys as literals skips most of the
// scanning; any difference (another writer, an extra key) returns false
// and the line goes to parseAny, which takes any JSON object.
func parseOwn(line []byte, e *Entry) bool {
	p := parser{b: line}
	e.scratch = e.scratch[:0]
	e.HasConnect = false
	var err error
	var s []byte
	if !p.lit(`{"time":`) {
		return false
	}
	if s, err = p.str(e); err != nil {
		return false
	}
	if e.Time, err = parseTime(s); err != nil || !p.lit(`,"service":`) {
		return false
	}
	if e.Service, err = p.str(e); err != nil || !p.lit(`,"client":`) {
		return false
	}
	if e.Client, err = p.str(e); err != nil || !p.lit(`,"real_server":`) {
		return false
	}
	if e.RealServer, err = p.str(e); err != nil {
		return false
	}
	if p.lit(`,"connect_ms":`) {
		if e.ConnectMs, err = p.float(); err != nil {
			return false
		}
		e.HasConnect = true
	}
	if !p.lit(`,"duration_ms":`) {
		return false
	}
	if e.DurationMs, err = p.float(); err != nil || !p.lit(`,"bytes_in":`) {
		return false
	}
	if e.BytesIn, err = p.uint(); err != nil || !p.lit(`,"bytes_out":`) {
		return false
	}
	if e.BytesOut, err = p.uint(); err != nil || !p.lit(`,"termination":`) {
		return false
	}
	if s, err = p.str(e); err != nil || len(s) != 2 || !p.lit("}") {
		return false
	}
	e.Termination = Termination{s[0], s[1]}
	p.ws()
	return p.i == len(p.b)
}

// parseAny is Parse for any layout.
func parseAny(line []byte, e *Entry) error {
	p := parser{b: line}
	e.scratch = e.scratch[:0]
	e.HasConnect = false
	seen := 0
	p.ws()
	if !p.eat('{') {
		return p.err("not a JSON object")
	}
	p.ws()
	if p.eat('}') {
		return p.missing(seen)
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok {
			return p.err("expected a key")
		}
		p.ws()
		if !p.eat(':') {
			return p.err("expected ':'")
		}
		p.ws()
		var err error
		switch string(key) {
		case "time":
			var s []byte
			if s, err = p.str(e); err == nil {
				if e.Time, err = parseTime(s); err != nil {
					return &ParseError{p.i, "time: " + err.Error()}
				}
			}
			seen |= keyTime
		case "service":
			e.Service, err = p.str(e)
			seen |= keyService
		case "client":
			e.Client, err = p.str(e)
			seen |= keyClient
		case "real_server":
			e.RealServer, err = p.str(e)
			seen |= keyRealServer
		case "duration_ms":
			e.DurationMs, err = p.float()
			seen |= keyDuration
		case "connect_ms":
			if p.null() {
				break
			}
			e.ConnectMs, err = p.float()
			e.HasConnect = err == nil
			seen |= keyConnect
		case "bytes_in":
			e.BytesIn, err = p.uint()
			seen |= keyBytesIn
		case "bytes_out":
			e.BytesOut, err = p.uint()
			seen |= keyBytesOut
		case "termination":
			var s []byte
			if s, err = p.str(e); err == nil {
				if len(s) != 2 {
					return &ParseError{p.i, fmt.Sprintf("termination %q: want two letters", s)}
				}
				e.Termination = Termination{s[0], s[1]}
			}
			seen |= keyTermination
		default:
			err = p.skip(0)
		}
		if err != nil {
			return &ParseError{p.i + 1, string(key) + ": " + err.Error()}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return p.err("expected ',' or '}'")
	}
	p.ws()
	if p.i < len(p.b) {
		return p.err("text after the object")
	}
	return p.missing(seen)
}

type parser struct {
	b []byte
	i int
}

func (p *parser) err(msg string) error { return &ParseError{p.i + 1, msg} }

func (p *parser) missing(seen int) error {
	if seen&required == required {
		return nil
	}
	for _, k := range requiredNames {
		if seen&k.bit == 0 {
			return &ParseError{p.i, "missing key " + k.name}
		}
	}
	return nil
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// lit consumes s if the input goes on with it.
func (p *parser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) null() bool {
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

var (
	errString = errors.New("bad string")
	errNumber = errors.New("bad number")
)

// rawString reads a string's bytes as they are (keys: ours have no
// escapes; an escaped key is simply unknown).
func (p *parser) rawString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for i := start; i < len(p.b); i++ {
		switch p.b[i] {
		case '"':
			p.i = i + 1
			return p.b[start:i], true
		case '\\':
			i++ // the escaped character
		}
	}
	return nil, false
}

// str reads a string value, unescaped into e's scratch buffer when it has
// escapes.
func (p *parser) str(e *Entry) ([]byte, error) {
	if !p.eat('"') {
		if p.null() {
			return nil, nil
		}
		return nil, errors.New("want a string")
	}
	// The common case: no backslash before the closing quote. Values are
	// short (addresses, names), where a plain loop beats a vectorised
	// search's call. Control characters, which JSON forbids in strings,
	// are let through: the analyser has no use for the check.
	start := p.i
	for i := start; i < len(p.b); i++ {
		switch p.b[i] {
		case '"':
			p.i = i + 1
			return p.b[start:i], nil
		case '\\':
			p.i = i
			return p.strSlow(e, start)
		}
	}
	return nil, errString
}

func (p *parser) strSlow(e *Entry, start int) ([]byte, error) {
	n := len(e.scratch)
	e.scratch = append(e.scratch, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return e.scratch[n:len(e.scratch):len(e.scratch)], nil
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return nil, errString
			}
			esc := p.b[p.i+1]
			p.i += 2
			switch esc {
			case '"', '\\', '/':
				e.scratch = append(e.scratch, esc)
			case 'n':
				e.scratch = append(e.scratch, '\n')
			case 't':
				e.scratch = append(e.scratch, '\t')
			case 'r':
				e.scratch = append(e.scratch, '\r')
			case 'b':
				e.scratch = append(e.scratch, '\b')
			case 'f':
				e.scratch = append(e.scratch, '\f')
			case 'u':
				if p.i+4 > len(p.b) {
					return nil, errString
				}
				r, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
				if err != nil {
					return nil, errString
				}
				p.i += 4
				e.scratch = utf8.AppendRune(e.scratch, rune(r))
			default:
				return nil, errString
			}
		case c < 0x20:
			return nil, errString
		default:
			e.scratch = append(e.scratch, c)
			p.i++
		}
	}
	return nil, errString
}

// number returns the bytes of a JSON number.
func (p *parser) number() []byte {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	return p.b[start:p.i]
}

func (p *parser) uint() (uint64, error) {
	s := p.number()
	if len(s) == 0 || len(s) > 19 {
		return 0, errNumber
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errNumber
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// float reads a non-negative number; plain decimals (what the writer
// writes) are parsed by hand, anything else by strconv.
func (p *parser) float() (float64, error) {
	s := p.number()
	if len(s) == 0 {
		return 0, errNumber
	}
	var ip uint64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9' && i < 15; i++ {
		ip = ip*10 + uint64(s[i]-'0')
	}
	if i == len(s) {
		return float64(ip), nil
	}
	if s[i] == '.' && i > 0 {
		var fp uint64
		div := 1.0
		j := i + 1
		for ; j < len(s) && s[j] >= '0' && s[j] <= '9' && j-i <= 9; j++ {
			fp = fp*10 + uint64(s[j]-'0')
			div *= 10
		}
		if j == len(s) && j > i+1 {
			return float64(ip) + float64(fp)/div, nil
		}
	}
	v, err := strconv.ParseFloat(string(s), 64)
	if err != nil || v < 0 {
		return 0, errNumber
	}
	return v, nil
}

// skip passes over any JSON value (of an unknown key).
func (p *parser) skip(depth int) error {
	if depth > 64 {
		return errors.New("nested too deep")
	}
	if p.i >= len(p.b) {
		return errors.New("missing value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		if _, ok := p.rawString(); !ok {
			return errString
		}
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.ws()
		if p.eat(end) {
			return nil
		}
		for {
			p.ws()
			if c == '{' {
				if _, ok := p.rawString(); !ok {
					return errString
				}
				p.ws()
				if !p.eat(':') {
					return errors.New("expected ':'")
				}
				p.ws()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat(end) {
				return nil
			}
			return errors.New("unterminated " + string(c))
		}
	case c == 't' && len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		p.i += 4
	case c == 'f' && len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		p.i += 5
	case p.null():
	default:
		if len(p.number()) == 0 {
			return errors.New("bad value")
		}
	}
	return nil
}

// parseTime reads an RFC 3339 time into Unix nanoseconds: the common form
// (YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)) by hand, which is several times
// faster than time.Parse, anything else through time.Parse.
func parseTime(s []byte) (int64, error) {
	if len(s) >= 20 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't' || s[10] == ' ') && s[13] == ':' && s[16] == ':' {
		y, ok1 := digits(s[0:4])
		mo, ok2 := digits(s[5:7])
		d, ok3 := digits(s[8:10])
		h, ok4 := digits(s[11:13])
		mi, ok5 := digits(s[14:16])
		se, ok6 := digits(s[17:19])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(mo, y) && h < 24 && mi < 60 && se < 60 {
			i := 19
			var frac int64
			if s[i] == '.' {
				i++
				scale := int64(100000000)
				j := i
				for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
					frac += int64(s[i]-'0') * scale
					scale /= 10
				}
				if i == j {
					goto slow
				}
			}
			var off int64
			switch {
			case i == len(s)-1 && (s[i] == 'Z' || s[i] == 'z'):
			case i == len(s)-6 && (s[i] == '+' || s[i] == '-') && s[i+3] == ':':
				oh, ok1 := digits(s[i+1 : i+3])
				om, ok2 := digits(s[i+4 : i+6])
				if !ok1 || !ok2 || oh > 23 || om > 59 {
					goto slow
				}
				off = int64(oh*3600 + om*60)
				if s[i] == '-' {
					off = -off
				}
			default:
				goto slow
			}
			days := daysFromCivil(y, mo, d)
			secs := days*86400 + int64(h*3600+mi*60+se) - off
			return secs*1e9 + frac, nil
		}
	}
slow:
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t.UnixNano(), nil
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is days since 1970-01-01 (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}
