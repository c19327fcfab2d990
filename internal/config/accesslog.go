package config

import "github.com/govs-lb/govs/internal/accesslog"

// AccessLog is logging.access_log: empty (false) for none, "true" for one
// line per connection in the log stream, an absolute file path for JSON
// lines, or syslog+udp://HOST:PORT / syslog+tcp://HOST:PORT for RFC 5424
// syslog (docs/logs.md).
type AccessLog string

// AccessLogStream is access_log: true.
const AccessLogStream AccessLog = "true"

// Enabled reports whether connections are logged at all.
func (a AccessLog) Enabled() bool { return a != "" }

// Target is the file or syslog target; empty for none or the log stream.
func (a AccessLog) Target() string {
	if a == AccessLogStream {
		return ""
	}
	return string(a)
}

func (a *AccessLog) decodeScalar(s string) error {
	switch s {
	case "false", "":
		*a = ""
		return nil
	case "true":
		*a = AccessLogStream
		return nil
	}
	if _, _, err := accesslog.ParseTarget(s); err != nil {
		return err
	}
	*a = AccessLog(s)
	return nil
}

// MarshalYAML writes true back as a boolean.
func (a AccessLog) MarshalYAML() (any, error) {
	if a == AccessLogStream {
		return true, nil
	}
	return string(a), nil
}
