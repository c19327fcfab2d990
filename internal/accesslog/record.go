// Package accesslog is govs's access log: the JSON-lines format one line
// per finished connection or UDP flow (Record, its encoder AppendJSON, and
// its reader Parse), and govs logs, the analyser that reads such logs
// (Analyser, reports, the k-way merge of many files). docs/logs.md is the
// format's specification; the writer and the reader here follow it.
package accesslog

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Termination is how and where a connection ended: two letters after
// HAProxy's TCP termination codes (docs/logs.md has the table). The first
// says who or what ended it, the second in which phase.
type Termination [2]byte

// First letters: who or what ended the connection.
const (
	ByNone          = '-' // normal end: both sides closed
	ByClient        = 'C' // the client aborted (reset, or closed before the server answered)
	ByServer        = 'S' // the server aborted or refused
	ByProxy         = 'P' // govs ended it (a limit, a policy)
	ByResource      = 'R' // govs ran out of a resource (sockets, memory, flow table)
	ByInternal      = 'I' // an internal error in govs
	ByDown          = 'D' // the real server went down (health) and its connections were cut
	ByKilled        = 'K' // an operator killed it (govsadm, the API)
	ByClientTimeout = 'c' // the client's idle timeout expired
	ByServerTimeout = 's' // the server's timeout expired (connect or idle)
)

// Second letters: the phase the connection was in.
const (
	InNone    = '-' // normal end
	InConnect = 'C' // connecting to the real server
	InData    = 'D' // transferring data
	InClosing = 'L' // closing: one side had closed, the other had not finished
)

// Normal is the code of a connection that ended normally.
var Normal = Termination{ByNone, InNone}

// String is the code's two letters.
func (t Termination) String() string { return string(t[:]) }

// Error reports whether the code is anything but a normal end.
func (t Termination) Error() bool { return t != Normal }

// Record is one access-log line: one connection or UDP flow, written when
// it ends.
type Record struct {
	Time       time.Time // when the connection was accepted
	Service    string    // the virtual service's name
	Client     netip.AddrPort
	RealServer netip.AddrPort // zero: none was chosen (refused)
	// ConnectMs is the time to connect to the real server; negative:
	// unknown (kernel forwarding, or no connect), and the key is omitted.
	ConnectMs   float64
	DurationMs  float64 // accept to close
	BytesIn     uint64  // client to real server
	BytesOut    uint64  // real server to client
	Termination Termination
}

// TimeLayout is how the time key is written: RFC 3339 in UTC with
// milliseconds. The reader takes any RFC 3339 time.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendJSON appends r as one JSON line (newline included) to b. It does
// not allocate when b has room: the proxy calls it for every connection.
// The key order is fixed (time first, which lets a reader sort by time
// without parsing the rest).
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `","service":`...)
	b = appendString(b, r.Service)
	b = append(b, `,"client":"`...)
	b = appendAddrPort(b, r.Client)
	b = append(b, `","real_server":"`...)
	b = appendAddrPort(b, r.RealServer)
	b = append(b, '"')
	if r.ConnectMs >= 0 {
		b = append(b, `,"connect_ms":`...)
		b = appendMs(b, r.ConnectMs)
	}
	b = append(b, `,"duration_ms":`...)
	b = appendMs(b, r.DurationMs)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendUint(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendUint(b, r.BytesOut, 10)
	b = append(b, `,"termination":"`...)
	t := r.Termination
	if t[0] == 0 {
		t = Normal
	}
	for _, c := range t {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			c = '?'
		}
		b = append(b, c)
	}
	return append(b, "\"}\n"...)
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return b
	}
	return ap.AppendTo(b)
}

// appendMs writes milliseconds with microsecond precision, trailing zeros
// dropped: 12, 0.25, 1503.007.
func appendMs(b []byte, ms float64) []byte {
	if ms < 0 || ms != ms {
		ms = 0
	}
	n := len(b)
	b = strconv.AppendFloat(b, ms, 'f', 3, 64)
	for len(b) > n && b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	if b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return b
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
