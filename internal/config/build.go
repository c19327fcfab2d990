package config

// Helpers for code that builds a model in Go rather than decoding YAML: the
// keepalived importer (internal/config/importer). They record where each
// value was written, so that Validate's errors point into the file the
// value came from, and parse scalars exactly as the YAML decoder does.

// SetKey records that key's value was written at p, as the YAML decoder
// does for every key it reads.
func (m *Meta) SetKey(key string, p Pos) {
	if m.keys == nil {
		m.keys = map[string]Pos{}
	}
	m.keys[key] = p
}

// Clone returns a copy of m whose keys can change apart from m's.
func (m Meta) Clone() Meta {
	c := Meta{Pos: m.Pos, keys: make(map[string]Pos, len(m.keys))}
	for k, p := range m.keys {
		c.keys[k] = p
	}
	return c
}

// ParseVirtualIP reads a virtual_ipaddresses entry:
// ADDRESS[/PREFIX] [dev IFACE] [label LABEL].
func ParseVirtualIP(s string) (VirtualIP, error) {
	var v VirtualIP
	err := v.decodeScalar(s)
	return v, err
}

// ParseHostIP reads an IP address without a port.
func ParseHostIP(s string) (HostIP, error) {
	var a HostIP
	err := a.decodeScalar(s)
	return a, err
}

// Add appends an error at p.
func (l *ErrorList) Add(p Pos, format string, args ...any) { l.add(p, format, args...) }

// Err returns the list sorted by position as an error, or nil when it is
// empty.
func (l ErrorList) Err() error { return l.err() }
