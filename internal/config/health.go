package config

import (
	"crypto/x509"
	"encoding/hex"
	"os"
	"reflect"
	"strings"
	"time"
)

// Health check types, as documented in docs/health.md. None turns checking
// off for one real server of a checked virtual server.
var checkKeys = map[string][]string{
	"tcp":    nil,
	"http":   {"path", "expect_status", "expect_digest", "host", "urls"},
	"https":  {"path", "expect_status", "expect_digest", "host", "urls", "sni", "tls_verify", "tls_ca"},
	"dns":    {"query_name", "query_type"},
	"script": {"command", "dynamic"},
	"agent":  nil,
	"smtp":   {"helo_name", "hosts"},
	"udp":    {"payload", "require_reply", "expect_reply"},
	"ping":   nil,
	"file":   {"file", "file_weight", "dynamic"},
	"none":   nil,
}

// commonKeys apply to every check type but none; the connection keys (port,
// agent_port) to those that connect somewhere.
var commonKeys = []string{"type", "interval", "timeout", "rise", "fall", "retry", "delay_before_retry"}

var connectTypes = map[string]bool{"tcp": true, "http": true, "https": true, "dns": true, "agent": true, "smtp": true, "udp": true}

// DNSQueryTypes are the query types a dns check may ask (keepalived's).
var DNSQueryTypes = []string{"A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV"}

func checkTypeNames() string {
	return "tcp, http, https, dns, script, agent, smtp, udp, ping, file or none"
}

// validateLifecycle checks the virtual server's health and lifecycle keys
// and resolves its health check.
func (vs *VirtualServer) validateLifecycle(errs *ErrorList) {
	if vs.Quorum != nil && *vs.Quorum < 1 {
		errs.add(vs.At("quorum"), "quorum must be at least 1 (the total weight of live real servers the service needs)")
	}
	q := DefaultQuorum
	if vs.Quorum != nil {
		q = *vs.Quorum
	}
	if vs.QuorumHysteresis < 0 {
		errs.add(vs.At("quorum_hysteresis"), "quorum_hysteresis must not be negative")
	} else if vs.QuorumHysteresis >= q && q >= 1 {
		errs.add(vs.At("quorum_hysteresis"), "quorum_hysteresis %d must be below quorum %d", vs.QuorumHysteresis, q)
	}
	if !vs.SorryServer.IsZero() {
		if vs.SorryServer.Addr.IsUnspecified() {
			errs.add(vs.At("sorry_server"), "sorry_server %s is not a host address", vs.SorryServer.Addr)
		}
		if !vs.SorryServer.HasPort && vs.FWMark == 0 {
			vs.SorryServer.Port, vs.SorryServer.HasPort = vs.Address.Port, true
		}
		// A fwmark service's sorry server may keep the packet's port, as
		// its real servers (fwmark.go).
		if vs.SorryServer.Port == 0 && vs.FWMark == 0 {
			errs.add(vs.At("sorry_server"), "sorry_server %s needs a port", vs.SorryServer)
		}
		for _, rs := range vs.RealServers {
			if rs == nil || rs.Address.Addr != vs.SorryServer.Addr {
				continue
			}
			if port := rs.Address.Port; port == vs.SorryServer.Port || (!rs.Address.HasPort && vs.Address.Port == vs.SorryServer.Port) {
				errs.add(vs.At("sorry_server"), "sorry_server %s is also a real server (at %s)", vs.SorryServer, rs.At("address"))
			}
		}
	}
	// Checked once here; real servers that override it are checked with
	// their own keys in validateHealth. A service-wide type none is allowed:
	// real servers may still set their own check.
	if r := resolveCheck(vs.HealthCheck, nil); r != nil {
		r.validate(errs)
	}
}

// validateHealth resolves and checks the real server's health check.
func (rs *RealServer) validateHealth(vs *VirtualServer, errs *ErrorList) {
	rs.Check = nil
	if rs.HealthCheck == nil {
		if vs.HealthCheck != nil {
			rs.Check = resolveCheck(vs.HealthCheck, nil) // validated once by the virtual server
		}
		return
	}
	r := resolveCheck(vs.HealthCheck, rs.HealthCheck)
	if r == nil {
		return
	}
	var own ErrorList
	r.validate(&own)
	for _, e := range own {
		if !errs.has(e) { // the virtual server's own keys were reported once
			*errs = append(*errs, e)
		}
	}
	rs.Check = r
}

func (l ErrorList) has(e Error) bool {
	for _, x := range l {
		if x == e {
			return true
		}
	}
	return false
}

// resolveCheck returns the check in force: over's keys on top of base's,
// or over alone when it names another type, with defaults filled in. It is
// nil when neither is set or the result is type none. base and over are not
// changed.
func resolveCheck(base, over *HealthCheck) *HealthCheck {
	var r HealthCheck
	switch {
	case base == nil && over == nil:
		return nil
	case over == nil:
		r = base.clone()
	case base == nil || (over.Type != "" && over.Type != base.Type):
		r = over.clone()
	default:
		r = base.clone()
		r.overrideWith(over)
	}
	r.Type = strings.ToLower(r.Type)
	if r.Type == "none" {
		return nil
	}
	if r.Interval == 0 && !r.Has("interval") {
		r.Interval = Duration(DefaultHealthInterval)
	}
	if r.Timeout == 0 && !r.Has("timeout") {
		r.Timeout = r.Interval
		if r.Timeout <= 0 {
			r.Timeout = Duration(DefaultHealthInterval)
		}
	}
	if r.Rise == 0 && !r.Has("rise") {
		r.Rise = DefaultHealthRise
	}
	if r.Fall == 0 && !r.Has("fall") {
		r.Fall = DefaultHealthFall
	}
	if r.Retry == nil {
		n := 0
		r.Retry = &n
	}
	if r.DelayBeforeRetry == 0 && !r.Has("delay_before_retry") {
		r.DelayBeforeRetry = Duration(DefaultHealthDelayBeforeRetry)
	}
	switch r.Type {
	case "http", "https":
		if r.Path == "" && len(r.URLs) == 0 {
			r.Path = "/"
		}
	case "dns":
		if r.QueryName == "" {
			r.QueryName = "."
		}
		if r.QueryType == "" {
			r.QueryType = "SOA"
		}
		r.QueryType = strings.ToUpper(r.QueryType)
	case "file":
		if r.FileWeight == nil {
			w := 1
			r.FileWeight = &w
		}
	}
	return &r
}

// MaxHealthURLs bounds the urls of one check.
const MaxHealthURLs = 64

// validateURLs checks an http check's urls, which replace its path,
// expect_status and expect_digest.
func (hc *HealthCheck) validateURLs(errs *ErrorList) {
	for _, k := range []string{"path", "expect_status", "expect_digest"} {
		if hc.Has(k) {
			errs.add(hc.At(k), "%s and urls: write the URL in urls (each entry has path, expect_status, expect_digest, host)", k)
		}
	}
	switch {
	case len(hc.URLs) == 0:
		errs.add(hc.At("urls"), "urls needs at least one entry")
	case len(hc.URLs) > MaxHealthURLs:
		errs.add(hc.At("urls"), "%d urls: at most %d", len(hc.URLs), MaxHealthURLs)
	}
	for _, u := range hc.URLs {
		if u == nil {
			errs.add(hc.At("urls"), "urls: an entry is empty (want path, expect_status, expect_digest, host)")
			continue
		}
		if u.Path == "" && !u.Has("path") {
			errs.add(u.Pos, "a url needs a path")
			continue
		}
		validateURL(&u.Meta, u.Path, u.ExpectStatus, u.ExpectDigest, errs)
	}
}

// validateHosts checks an smtp check's hosts.
func (hc *HealthCheck) validateHosts(errs *ErrorList) {
	if hc.Has("hosts") && len(hc.Hosts) == 0 {
		errs.add(hc.At("hosts"), "hosts needs at least one entry")
	}
	if len(hc.Hosts) > MaxHealthURLs {
		errs.add(hc.At("hosts"), "%d hosts: at most %d", len(hc.Hosts), MaxHealthURLs)
	}
	for _, h := range hc.Hosts {
		if h == nil {
			errs.add(hc.At("hosts"), "hosts: an entry is empty (want address, port, bind)")
			continue
		}
		if h.Port != 0 || h.Has("port") {
			if h.Port < 1 || h.Port > 65535 {
				errs.add(h.At("port"), "port %d out of range (1..65535)", h.Port)
			}
		}
		for key, a := range map[string]HostIP{"address": h.Address, "bind": h.Bind} {
			if a.IsValid() && (a.IsUnspecified() || a.IsMulticast()) {
				errs.add(h.At(key), "%s %s is not a host address", key, a)
			}
		}
		if h.Address.IsValid() && h.Bind.IsValid() && h.Address.Is4() != h.Bind.Is4() {
			errs.add(h.At("bind"), "bind %s and address %s are of different families", h.Bind, h.Address)
		}
	}
}

// validateURL checks one URL of an http check, m holding its keys.
func validateURL(m *Meta, path string, status []int, digest string, errs *ErrorList) {
	if !strings.HasPrefix(path, "/") {
		errs.add(m.At("path"), "path %q must start with /", path)
	}
	for _, code := range status {
		if code < 100 || code > 599 {
			errs.add(m.At("expect_status"), "expect_status %d is not an HTTP status (100..599)", code)
		}
	}
	if digest != "" {
		if b, err := hex.DecodeString(digest); err != nil || len(b) != 16 {
			errs.add(m.At("expect_digest"), "expect_digest %q is not an MD5 digest (32 hex digits, see govs digest)", digest)
		}
	}
}

func (hc *HealthCheck) clone() HealthCheck {
	c := *hc
	c.keys = make(map[string]Pos, len(hc.keys))
	for k, p := range hc.keys {
		c.keys[k] = p
	}
	c.ExpectStatus = append([]int(nil), hc.ExpectStatus...)
	return c
}

// overrideWith copies the keys over sets. A check built in code rather
// than read from a file has no key positions: its non-zero fields count as set.
func (hc *HealthCheck) overrideWith(over *HealthCheck) {
	fromFile := over.keys != nil
	dst, src := reflect.ValueOf(hc).Elem(), reflect.ValueOf(over).Elem()
	t := src.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		set := over.Has(name)
		if !fromFile {
			set = !src.Field(i).IsZero()
		}
		if set {
			dst.Field(i).Set(src.Field(i))
			if p, ok := over.keys[name]; ok {
				hc.keys[name] = p
			}
		}
	}
	hc.Pos = over.Pos
}

// validate checks a resolved health check; positions point at the key
// that is wrong, in whichever block set it.
func (hc *HealthCheck) validate(errs *ErrorList) {
	applies, known := checkKeys[hc.Type]
	if hc.Type == "" {
		errs.add(hc.Pos, "health_check needs a type (%s)", checkTypeNames())
		return
	}
	if !known {
		errs.add(hc.At("type"), "unknown health check type %q (%s)", hc.Type, checkTypeNames())
		return
	}
	allowed := map[string]bool{}
	for _, k := range commonKeys {
		allowed[k] = true
	}
	for _, k := range applies {
		allowed[k] = true
	}
	if connectTypes[hc.Type] {
		allowed["port"] = true
	}
	if hc.Type != "agent" {
		allowed["agent_port"] = true
	}
	for k := range hc.keys {
		if !allowed[k] {
			errs.add(hc.At(k), "%s does not apply to a %s check", k, hc.Type)
		}
	}
	positive := func(key string, d Duration) {
		if d <= 0 {
			errs.add(hc.At(key), "%s must be positive", key)
		}
	}
	positive("interval", hc.Interval)
	positive("timeout", hc.Timeout)
	for key, n := range map[string]int{"rise": hc.Rise, "fall": hc.Fall} {
		if n < 1 || n > 1000 {
			errs.add(hc.At(key), "%s %d out of range (1..1000)", key, n)
		}
	}
	if *hc.Retry < 0 || *hc.Retry > 100 {
		errs.add(hc.At("retry"), "retry %d out of range (0..100)", *hc.Retry)
	}
	if hc.DelayBeforeRetry.D() > time.Hour {
		errs.add(hc.At("delay_before_retry"), "delay_before_retry %s is over an hour", hc.DelayBeforeRetry.D())
	}
	for key, p := range map[string]int{"port": hc.Port, "agent_port": hc.AgentPort} {
		if (p != 0 || hc.Has(key)) && (p < 1 || p > 65535) {
			errs.add(hc.At(key), "%s %d out of range (1..65535)", key, p)
		}
	}
	switch hc.Type {
	case "http", "https":
		if hc.Has("urls") || len(hc.URLs) > 0 {
			hc.validateURLs(errs)
		} else {
			validateURL(&hc.Meta, hc.Path, hc.ExpectStatus, hc.ExpectDigest, errs)
		}
		if hc.TLSCA != "" {
			pem, err := os.ReadFile(hc.TLSCA)
			if err != nil {
				errs.add(hc.At("tls_ca"), "tls_ca: %v", err)
			} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				errs.add(hc.At("tls_ca"), "tls_ca %s holds no PEM certificate", hc.TLSCA)
			}
		}
	case "smtp":
		hc.validateHosts(errs)
	case "dns":
		known := false
		for _, t := range DNSQueryTypes {
			known = known || t == hc.QueryType
		}
		if !known {
			errs.add(hc.At("query_type"), "unknown query_type %q (%s)", hc.QueryType, strings.Join(DNSQueryTypes, " "))
		}
		if !validDNSName(hc.QueryName) {
			errs.add(hc.At("query_name"), "query_name %q is not a domain name", hc.QueryName)
		}
	case "script":
		if strings.TrimSpace(hc.Command) == "" {
			errs.add(hc.At("command"), "a script check needs command (run with /bin/sh -c)")
		}
	case "agent":
		if hc.Port == 0 && !hc.Has("port") {
			errs.add(hc.Pos, "an agent check needs port: the port the agent answers on")
		}
	case "udp":
		if _, err := ParseHex(hc.Payload, false); err != nil {
			errs.add(hc.At("payload"), "payload: %v", err)
		}
		if _, err := ParseHex(hc.ExpectReply, true); err != nil {
			errs.add(hc.At("expect_reply"), "expect_reply: %v", err)
		}
	case "file":
		if hc.File == "" {
			errs.add(hc.Pos, "a file check needs file: the file holding the value")
		}
		if w := *hc.FileWeight; w < -65535 || w > 65535 {
			errs.add(hc.At("file_weight"), "file_weight %d out of range (-65535..65535)", w)
		}
	}
}

func validDNSName(name string) bool {
	if name == "." {
		return true
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

// ParseHex reads keepalived's free-form hex strings: digits in groups
// separated by spaces, read in pairs, a group's odd last digit standing for
// a byte of its own ("Ab12f 3 456" is AB 12 0F 03 45 06). With wildcard, x or X stands for a nibble that matches
// anything; it is returned as the byte 'x' in the mask's place: the result
// is then pairs of (value, mask) bytes.
func ParseHex(s string, wildcard bool) ([]byte, error) {
	var out []byte
	for _, group := range strings.Fields(s) {
		for i := 0; i < len(group); i += 2 {
			pair := group[i:min(i+2, len(group))]
			if len(pair) == 1 {
				pair = "0" + pair
			}
			var v, m byte
			for j := 0; j < 2; j++ {
				c := pair[j]
				var nib byte
				mask := byte(0xf)
				switch {
				case c >= '0' && c <= '9':
					nib = c - '0'
				case c >= 'a' && c <= 'f':
					nib = c - 'a' + 10
				case c >= 'A' && c <= 'F':
					nib = c - 'A' + 10
				case wildcard && (c == 'x' || c == 'X'):
					mask = 0
				default:
					return nil, errHex(group)
				}
				v = v<<4 | nib
				m = m<<4 | mask
			}
			out = append(out, v)
			if wildcard {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

type errHex string

func (e errHex) Error() string { return "invalid hex digits in " + string(e) }
