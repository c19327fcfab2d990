package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/govs-lb/govs/internal/config"
)

// svcAttrs are the log attributes naming a virtual service the way every
// govs log does: its configured name, and its address apart. key is the
// service's PROTO/VIP:PORT.
func (s *Server) svcAttrs(key string) []any {
	name := key
	if vc, err := s.serviceConfig(key); err == nil && vc.Name != "" {
		name = vc.Name
	}
	return []any{"service", name, "address", key}
}

// forwardingOf is a service's forwarding, "" when it is gone.
func (s *Server) forwardingOf(key string) string {
	if vc, err := s.serviceConfig(key); err == nil {
		return string(vc.Forwarding)
	}
	return ""
}

// changes says what differs between two configurations of one entity, key
// by key in the API's own terms ("scheduler: wlc -> rr"), for the log of a
// change; keys in skip are left out. "none" when nothing did.
func changes(before, after any, skip ...string) string {
	b, errB := specMap(before)
	a, errA := specMap(after)
	if errB != nil || errA != nil {
		return "unknown"
	}
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	for _, k := range skip {
		delete(keys, k)
	}
	var out []string
	for k := range keys {
		if !reflect.DeepEqual(b[k], a[k]) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, logValue(b[k]), logValue(a[k])))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func specMap(v any) (map[string]any, error) {
	o, err := spec(v)
	if err != nil {
		return nil, err
	}
	return toMap(o), nil
}

func logValue(v any) string {
	if v == nil {
		return "unset"
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// copyService is a shallow copy of a service's configuration, enough for
// changes (real servers are compared apart).
func copyService(vs *config.VirtualServer) config.VirtualServer { return *vs }

// logForwardingChange logs a service's forwarding changed by a real
// server's request (ipvsadm's -m on -a/-e switches the whole service).
func (s *Server) logForwardingChange(key, before string) {
	if after := s.forwardingOf(key); before != "" && after != before {
		s.log.Warn("forwarding changed through the API", append(s.svcAttrs(key), "from", before, "to", after)...)
	}
}
