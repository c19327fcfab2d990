package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Meta records where a mapping and each of its keys stand in the file, so
// that validation can point at the exact value that is wrong.
type Meta struct {
	Pos  Pos            // the mapping itself
	keys map[string]Pos // each key's value
}

// At is the position of key's value, or of the mapping when key is absent.
func (m Meta) At(key string) Pos {
	if p, ok := m.keys[key]; ok {
		return p
	}
	return m.Pos
}

// Has reports whether key was written in the file.
func (m Meta) Has(key string) bool { _, ok := m.keys[key]; return ok }

// scalarDecoder is implemented by types that parse themselves from a scalar.
type scalarDecoder interface {
	decodeScalar(value string) error
}

var (
	metaType     = reflect.TypeOf(Meta{})
	yamlLineRe   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	maxAliasHops = 64
)

type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

// parseYAML parses src and decodes its single document into out.
func parseYAML(file string, src []byte, out any) ErrorList {
	d := &decoder{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		d.yamlError(err)
		return d.errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.errs.add(Pos{File: file, Line: 1, Col: 1}, "empty configuration")
		return d.errs
	}
	d.decode(doc.Content[0], reflect.ValueOf(out).Elem(), 0)
	d.errs.sort()
	return d.errs
}

// yamlError turns the YAML library's syntax errors ("yaml: line 3: ...")
// into positioned errors.
func (d *decoder) yamlError(err error) {
	msgs := []string{err.Error()}
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	}
	for _, m := range msgs {
		line := 1
		if sm := yamlLineRe.FindStringSubmatch(m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			m = sm[2]
		} else {
			m = strings.TrimPrefix(m, "yaml: ")
		}
		d.errs.add(Pos{File: d.file, Line: line, Col: 1}, "%s", m)
	}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasHops; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unexpected node"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, depth int) {
	n = resolveAlias(n)
	if depth > 32 {
		d.errs.add(d.pos(n), "nesting too deep")
		return
	}
	if v.Kind() == reflect.Pointer {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return // an explicit empty value leaves the default
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), depth+1)
		return
	}
	if sd, ok := v.Addr().Interface().(scalarDecoder); ok {
		if n.Kind != yaml.ScalarNode {
			d.errs.add(d.pos(n), "expected a single value, found %s", kindName(n))
			return
		}
		if err := sd.decodeScalar(n.Value); err != nil {
			d.errs.add(d.pos(n), "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(d.pos(n), "expected a list, found %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errs.add(d.pos(n), "expected a string, found %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			d.errs.add(d.pos(n), "expected true or false, found %s", kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if digits := strings.TrimPrefix(n.Value, "-"); n.Kind == yaml.ScalarNode && err == nil &&
			(strings.HasPrefix(n.Value, "+") || len(digits) > 1 && digits[0] == '0') {
			// One spelling per number: "08080" is octal to a YAML 1.1
			// reader and 8080 to strconv, and a port must mean one port.
			d.errs.add(d.pos(n), "write %q as %d: no sign or leading zero", n.Value, i)
			return
		}
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowInt(i) {
			d.errs.add(d.pos(n), "expected a whole number, found %s", kindName(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint32: // a firewall mark: decimal, or hexadecimal as nft and iptables write marks
		u, err := strconv.ParseUint(n.Value, 10, 32)
		if h, ok := strings.CutPrefix(strings.ToLower(n.Value), "0x"); ok && h != "" && h[0] != '+' && h[0] != '-' {
			u, err = strconv.ParseUint(h, 16, 32)
		} else if len(n.Value) > 1 && n.Value[0] == '0' {
			err = strconv.ErrSyntax
		}
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errs.add(d.pos(n), "expected a whole number from 0 to 4294967295 (decimal without sign or leading zero, or 0x hexadecimal), found %s", kindName(n))
			return
		}
		v.SetUint(u)
	default:
		d.errs.add(d.pos(n), "internal: cannot decode into %s", v.Type())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, depth int) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(d.pos(n), "expected a mapping of keys, found %s", kindName(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var known []string
	metaIdx := -1
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == metaType {
			metaIdx = i
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		known = append(known, name)
	}
	var meta *Meta
	if metaIdx >= 0 {
		meta = v.Field(metaIdx).Addr().Interface().(*Meta)
		if meta.Pos.Line == 0 {
			meta.Pos = d.pos(n)
		}
		if meta.keys == nil {
			meta.keys = map[string]Pos{}
		}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.Tag == "!!merge" {
			// A YAML merge key: decode the merged mapping(s) first, so keys
			// written here override them.
			m := resolveAlias(val)
			if m.Kind == yaml.SequenceNode {
				for _, item := range m.Content {
					d.decodeStruct(resolveAlias(item), v, depth+1)
				}
			} else {
				d.decodeStruct(m, v, depth+1)
			}
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			d.errs.add(d.pos(k), "unknown key %q%s", k.Value, suggest(k.Value, known))
			continue
		}
		if seen[k.Value] {
			d.errs.add(d.pos(k), "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		if meta != nil {
			meta.keys[k.Value] = d.pos(resolveAlias(val))
		}
		d.decode(val, v.Field(idx), depth+1)
	}
}

// suggest names the closest known key, for typos like "weigth".
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
