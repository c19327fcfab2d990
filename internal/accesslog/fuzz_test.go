package accesslog

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzParse: no input panics the parser, and what it accepts is JSON with
// the values it returned.
func FuzzParse(f *testing.F) {
	r := Record{Time: t0, Service: "web", ConnectMs: 1.5, DurationMs: 20, Termination: Normal}
	f.Add(r.AppendJSON(nil))
	f.Add([]byte(`{"time":"2026-12-03T10:00:00+01:00","service":"\u00e9\"","client":"","real_server":"","duration_ms":1e2,"bytes_in":0,"bytes_out":0,"termination":"SC","x":[{"y":null}]}`))
	f.Add([]byte(`{"time":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var own, general Entry
		if parseOwn(b, &own) {
			if err := parseAny(b, &general); err != nil {
				t.Fatalf("fast path took %q, the general parser refuses it: %v", b, err)
			}
			own.scratch, general.scratch = nil, nil
			if string(own.Service) != string(general.Service) || string(own.Client) != string(general.Client) ||
				string(own.RealServer) != string(general.RealServer) || own.Time != general.Time || own.HasConnect != general.HasConnect ||
				own.DurationMs != general.DurationMs || own.BytesIn != general.BytesIn || own.Termination != general.Termination {
				t.Fatalf("%q: fast %+v, general %+v", b, own, general)
			}
		}
		var e Entry
		if Parse(b, &e) != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			// The parser is lenient with control characters in strings
			// and numbers' exact grammar; other invalid JSON is a bug.
			if hasControl(b) || looseNumber(b) {
				return
			}
			t.Fatalf("accepted %q, which is not JSON: %v", b, err)
		}
		if s, _ := m["service"].(string); s != string(e.Service) && validUTF8(e.Service) {
			t.Fatalf("service %q, encoding/json says %q", e.Service, s)
		}
	})
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

// looseNumber: the scanner takes any run of number characters ("1..2",
// "+1", "01") where JSON is stricter; such numbers are then rejected or
// read by strconv, never a crash.
func looseNumber(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if (b[i] == ':' || b[i] == ',' || b[i] == '[') && (b[i+1] == '+' || b[i+1] == '.' || b[i+1] == '0' || b[i+1] == '-' || b[i+1] == 'e' || b[i+1] == 'E') {
			return true
		}
		if b[i] == '.' && (b[i+1] == '.' || b[i+1] == 'e' || b[i+1] == 'E') {
			return true
		}
	}
	return false
}

// validUTF8: encoding/json replaces invalid UTF-8 by U+FFFD, the parser
// keeps the bytes; the two agree on valid text.
func validUTF8(b []byte) bool { return utf8.Valid(b) }
