package config

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// EncodeYAML writes c as govs YAML, as govs convert prints it. Beyond what the
// model's YAML tags write, it keeps the keys that were set to a zero value
// (delay_before_retry 0, ...), whose absence would mean the default, writes
// durations as 5m rather than 5m0s, and writes short lists of single words
// on one line.
func EncodeYAML(c *Config) ([]byte, error) {
	n, err := toNode(reflect.ValueOf(c))
	if err != nil {
		return nil, err
	}
	flowShortLists(n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var durationType = reflect.TypeOf(Duration(0))

// compactDuration writes 5m and 1h rather than time.Duration's 5m0s and
// 1h0m0s.
func compactDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// flowShortLists writes lists of a few single words as [a, b].
func flowShortLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
		size, flat := 0, true
		for _, c := range n.Content {
			flat = flat && c.Kind == yaml.ScalarNode && !strings.ContainsAny(c.Value, " \t\n")
			size += len(c.Value) + 2
		}
		if flat && size <= 60 {
			n.Style = yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowShortLists(c)
	}
}

// structFields are the YAML keys of a struct type, in order.
type structFields struct {
	list []structField
	meta int // the index of the Meta field, or -1
}

type structField struct {
	index     int
	name      string
	omitempty bool
}

var fieldCache sync.Map // reflect.Type -> *structFields

// yamlFields reads t's yaml tags once.
func yamlFields(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	fs := &structFields{meta: -1}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == metaType {
			fs.meta = i
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.list = append(fs.list, structField{i, name, opts == "omitempty"})
	}
	f, _ := fieldCache.LoadOrStore(t, fs)
	return f.(*structFields)
}

// toNode builds the YAML node of v as yaml.Node.Encode would, without its
// round trip through YAML text (marshal, then parse): that trip was most of
// govs convert's time, and of FuzzImport's. It knows what the model holds:
// structs with yaml tags (omitempty), pointers, slices, strings, numbers,
// booleans and the types with a MarshalYAML method; the styles are those
// yaml.v3's marshaller picks, which the goldens of internal/config/importer
// pin. Where a struct has a Meta, a key it records as written is kept even
// when omitempty would leave its zero value out.
func toNode(v reflect.Value) (*yaml.Node, error) {
	if !v.IsValid() || (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	if v.Type() == durationType {
		return stringNode(compactDuration(time.Duration(v.Int()))), nil
	}
	switch m := v.Interface().(type) {
	case yaml.Marshaler:
		out, err := m.MarshalYAML()
		if err != nil {
			return nil, err
		}
		return toNode(reflect.ValueOf(out))
	case encoding.TextMarshaler:
		text, err := m.MarshalText()
		if err != nil {
			return nil, err
		}
		return stringNode(string(text)), nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		return toNode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		fields := yamlFields(v.Type())
		var meta Meta
		if fields.meta >= 0 {
			meta = v.Field(fields.meta).Interface().(Meta)
		}
		for _, f := range fields.list {
			fv := v.Field(f.index)
			if f.omitempty && isZero(fv) && (!meta.Has(f.name) || (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) && fv.IsNil()) {
				continue
			}
			val, err := toNode(fv)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.name}, val)
		}
		return n, nil
	case reflect.Slice, reflect.Array:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle // as the marshaller writes it: []
		}
		for i := 0; i < v.Len(); i++ {
			val, err := toNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, val)
		}
		return n, nil
	case reflect.String:
		return stringNode(v.String()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v.Uint(), 10)}, nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}, nil
	}
	return nil, fmt.Errorf("cannot write %s as YAML", v.Type())
}

// stringNode is a string scalar, quoted where the marshaller quotes it:
// where it would read back as another type (the emitter sees to that from
// the !!str tag), and the YAML 1.1 booleans and sexagesimal numbers.
// Bytes that are not UTF-8 are !!binary, as the marshaller writes them.
func stringNode(s string) *yaml.Node {
	if !utf8.ValidString(s) {
		// As the marshaller: YAML text cannot hold it. The importer refuses
		// such strings; this keeps EncodeYAML total.
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!binary", Value: base64.StdEncoding.EncodeToString([]byte(s))}
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if yaml11Bool[s] || base60Float.MatchString(s) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

var (
	yaml11Bool = map[string]bool{
		"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
		"n": true, "N": true, "no": true, "No": true, "NO": true, "off": true, "Off": true, "OFF": true,
	}
	base60Float = regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)
)

// isZero is yaml.v3's omitempty test.
func isZero(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return z.IsZero()
	}
	switch v.Kind() {
	case reflect.String:
		return v.Len() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() && !isZero(v.Field(i)) {
				return false
			}
		}
		return true
	}
	return false
}
