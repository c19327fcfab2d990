package config

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EncodeYAML writes c as govs YAML, as govs convert prints it. Beyond what the
// model's YAML tags write, it keeps the keys that were set to a zero value
// (delay_before_retry 0, ...), whose absence would mean the default, and
// writes short lists of single words on one line.
func EncodeYAML(c *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	keepSetKeys(reflect.ValueOf(c), &n)
	flowShortLists(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// keepSetKeys adds to the mapping n the keys that v's Meta records as
// written but that omitempty left out.
func keepSetKeys(v reflect.Value, n *yaml.Node) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Type() == durationType && n.Kind == yaml.ScalarNode {
		n.Value = compactDuration(time.Duration(v.Int()))
		return
	}
	switch v.Kind() {
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i := 0; i < v.Len() && i < len(n.Content); i++ {
				keepSetKeys(v.Index(i), n.Content[i])
			}
		}
		return
	case reflect.Struct:
	default:
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	t := v.Type()
	var meta Meta
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Type == metaType {
			meta = v.Field(i).Interface().(Meta)
		}
	}
	insert := 0
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		fv := v.Field(i)
		found := -1
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == name {
				found = j
				break
			}
		}
		if found >= 0 {
			keepSetKeys(fv, n.Content[found+1])
			insert = found + 2
			continue
		}
		if !meta.Has(name) || ((fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) && fv.IsNil()) {
			continue
		}
		var val yaml.Node
		if err := val.Encode(fv.Interface()); err != nil {
			continue
		}
		keepSetKeys(fv, &val)
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
		n.Content = slices.Insert(n.Content, insert, key, &val)
		insert += 2
	}
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
