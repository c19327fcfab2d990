package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/govs-lb/govs/internal/config"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// readObject reads a request body that must be one JSON object. Numbers
// keep their text.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]any, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &Error{Message: fmt.Sprintf("request body larger than %d bytes", maxBody), Code: CodeInvalid}
		}
		return nil, &Error{Message: "reading request body: " + err.Error(), Code: CodeInvalid}
	}
	return parseObject(body)
}

func parseObject(body []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &Error{Message: "request body is not valid JSON: " + err.Error(), Code: CodeInvalid}
	}
	if dec.More() {
		return nil, &Error{Message: "request body holds more than one JSON value", Code: CodeInvalid}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Message: "request body must be a JSON object", Code: CodeInvalid}
	}
	delete(obj, "status") // read-only; accepted so that a GET's answer can be sent back
	if rs, ok := obj["real_servers"].([]any); ok {
		for _, x := range rs {
			if m, ok := x.(map[string]any); ok {
				delete(m, "status")
			}
		}
	}
	return obj, nil
}

// mergePatch applies patch to target as RFC 7396 JSON merge patch: keys
// with null values are removed, objects merge, anything else replaces.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, pv := range patch {
		if pv == nil {
			delete(target, k)
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			tm, _ := target[k].(map[string]any)
			target[k] = mergePatch(tm, pm)
			continue
		}
		target[k] = pv
	}
	return target
}

// toMap turns a rendered spec into the plain form of decoded bodies.
func toMap(o object) map[string]any {
	b, _ := json.Marshal(o)
	m, _ := parseObject(b)
	return m
}

// requestSeq names each request's document, so that the positions of
// entities it created never mix with another request's.
var requestSeq atomic.Uint64

// document is one request body as the configuration decoder saw it: its
// file name in positions, and the field path of every position in it.
type document struct {
	file  string
	paths map[[2]int]string
}

// decodeService decodes obj as a virtual server, through the
// configuration decoder and validation of a configuration holding it alone.
func decodeService(obj map[string]any) (*config.VirtualServer, *document, error) {
	dropDiscovered(obj) // discovery.go
	wrap := map[string]any{"virtual_servers": []any{obj}}
	cfg, doc, err := decode(wrap, []string{"virtual_servers", "0"})
	if err != nil {
		return nil, doc, err
	}
	return cfg.VirtualServers[0], doc, nil
}

// decodeRealServer decodes obj as a real server of the service t names.
func decodeRealServer(obj map[string]any, t target) (*config.RealServer, *document, error) {
	// Discovery's keys: a discovered address is refused by the director,
	// naming its source.
	delete(obj, "origin")
	delete(obj, "source_name")
	delete(obj, "node")
	vs := map[string]any{"protocol": t.proto, "address": t.vip, "real_servers": []any{obj}}
	if t.fwmark != 0 {
		// Any kernel forwarding will do: the real server alone is decoded.
		vs = map[string]any{"fwmark": t.fwmark, "forwarding": "nat", "real_servers": []any{obj}}
		if t.proto == "fwm6" {
			vs["family"] = config.FamilyIPv6
		}
	}
	wrap := map[string]any{"virtual_servers": []any{vs}}
	cfg, doc, err := decode(wrap, []string{"virtual_servers", "0", "real_servers", "0"})
	if err != nil {
		return nil, doc, err
	}
	return cfg.VirtualServers[0].RealServers[0], doc, nil
}

// decode renders wrap as a one-line JSON document (JSON is YAML: every
// node gets its own column), parses it as a configuration file, and maps
// the positions of the subtree at root to field paths.
func decode(wrap map[string]any, root []string) (*config.Config, *document, error) {
	src, err := json.Marshal(wrap)
	if err != nil {
		return nil, nil, &Error{Message: err.Error(), Code: CodeInvalid}
	}
	doc := &document{file: fmt.Sprintf("api-request-%d", requestSeq.Add(1)), paths: map[[2]int]string{}}
	var n yaml.Node
	if err := yaml.Unmarshal(src, &n); err == nil && len(n.Content) > 0 {
		if sub := walkTo(n.Content[0], root); sub != nil {
			doc.record(sub, "")
		}
	}
	cfg, err := config.Parse(doc.file, src)
	if err != nil {
		return nil, doc, err
	}
	return cfg, doc, nil
}

func walkTo(n *yaml.Node, path []string) *yaml.Node {
	for _, p := range path {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

func (d *document) record(n *yaml.Node, path string) {
	d.paths[[2]int{n.Line, n.Column}] = path
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			d.paths[[2]int{k.Line, k.Column}] = p
			d.record(n.Content[i+1], p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.record(c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// fieldErrors turns validation errors into one API error: an error in the
// request body is prefixed with the path of its field, any other keeps its
// FILE:LINE:COL. Field names the first field at fault.
func fieldErrors(list config.ErrorList, doc *document) *Error {
	e := &Error{Code: CodeInvalid}
	var msgs []string
	for _, x := range list {
		if doc != nil && x.Pos.File == doc.file {
			path, ok := doc.paths[[2]int{x.Pos.Line, x.Pos.Col}]
			switch {
			case !ok:
				msgs = append(msgs, x.Msg)
			case path == "":
				msgs = append(msgs, x.Msg)
			default:
				msgs = append(msgs, path+": "+x.Msg)
				if e.Field == "" {
					e.Field = path
				}
			}
			continue
		}
		msgs = append(msgs, x.Error())
	}
	msgs = dedupe(msgs)
	e.Message = strings.Join(msgs, "; ")
	return e
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
