package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Discovery is a virtual server's `discovery:` block: a source of real
// servers that join the ones written in real_servers (docs/discovery.md).
type Discovery struct {
	Meta `yaml:"-"`

	// Type is the source: kubernetes, docker, dns, etcd or file.
	Type string `yaml:"type"`
	// FailPolicy says what a failing source does to the pool: keep_last
	// (the default) keeps the last good set, set_empty drains it.
	FailPolicy string `yaml:"fail_policy,omitempty"`
	// Interval is how often a polling source asks again (dns: the lower
	// bound of the TTL-driven re-resolution; file: the poll period; watch
	// sources: the retry period after an error). Default 5s.
	Interval Duration `yaml:"interval,omitempty"`
	// Timeout bounds one query of the source. Default 5s.
	Timeout Duration `yaml:"timeout,omitempty"`
	// MaxDrop is the fraction (0..1) of the pool that one answer may remove
	// at once; a larger drop, or a drop to zero, is held until confirmed.
	// Default 0.5. 1 holds only drops to zero.
	MaxDrop *Fraction `yaml:"max_drop,omitempty"`
	// Confirm is how many consecutive identical answers confirm a held
	// drop; ConfirmTime confirms it once it has lasted that long, for
	// sources that answer only on change. Defaults 3 and 30s.
	Confirm     int      `yaml:"confirm,omitempty"`
	ConfirmTime Duration `yaml:"confirm_time,omitempty"`
	// Settle is the shortest time between two changes applied to the
	// pool: a burst of source events is applied once. Default 1s.
	Settle Duration `yaml:"settle,omitempty"`
	// Drain is how long a removed real server stays at weight 0 (its
	// established connections finishing) before it leaves, at most; it
	// leaves earlier once it has no connection. Default: grace_period.
	Drain Duration `yaml:"drain,omitempty"`
	// Weight is the weight of servers whose source gives none. Default 1.
	Weight *int `yaml:"weight,omitempty"`

	// docker
	Host  string `yaml:"host,omitempty"`  // daemon: unix:///path or tcp://host:port
	Label string `yaml:"label,omitempty"` // KEY or KEY=VALUE
	// Port: docker the container port; dns the port of a host name's
	// addresses; kubernetes a port name or number.
	Port string `yaml:"port,omitempty"`

	// dns
	Name   string `yaml:"name,omitempty"`   // SRV name, or a host name with port
	Server string `yaml:"server,omitempty"` // HOST:PORT; default the system resolver

	// etcd
	Endpoints []string `yaml:"endpoints,omitempty"`
	Prefix    string   `yaml:"prefix,omitempty"`

	// file
	Path string `yaml:"path,omitempty"`

	// kubernetes: kubeconfig ("" for in-cluster), namespace ("" for the
	// kubeconfig context's or the pod's), the Service's name
	Kubeconfig string `yaml:"kubeconfig,omitempty"`
	Namespace  string `yaml:"namespace,omitempty"`
	Service    string `yaml:"service,omitempty"`
}

// Fraction is a number from 0 to 1: 0.5, or a percentage "50%".
type Fraction float64

func (f *Fraction) decodeScalar(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err == nil && strings.HasSuffix(s, "%") {
		v /= 100
	}
	if err != nil || v < 0 || v > 1 {
		return fmt.Errorf("invalid fraction %q: want a number from 0 to 1 (0.5) or a percentage (50%%)", s)
	}
	*f = Fraction(v)
	return nil
}

// MarshalYAML writes the fraction as a number.
func (f Fraction) MarshalYAML() (any, error) { return float64(f), nil }

// Discovery defaults.
const (
	FailKeepLast = "keep_last"
	FailSetEmpty = "set_empty"

	DefaultDiscoveryInterval    = 5 * time.Second
	DefaultDiscoveryTimeout     = 5 * time.Second
	DefaultDiscoveryMaxDrop     = 0.5
	DefaultDiscoveryConfirm     = 3
	DefaultDiscoveryConfirmTime = 30 * time.Second
	DefaultDiscoverySettle      = time.Second
)

// discoveryKeys are the keys each type takes besides the common ones.
var discoveryKeys = map[string][]string{
	"docker":     {"host", "label", "port"},
	"dns":        {"name", "server", "port"},
	"etcd":       {"endpoints", "prefix"},
	"file":       {"path"},
	"kubernetes": {"kubeconfig", "namespace", "service", "port"},
}

var discoveryAllKeys = []string{"host", "label", "port", "name", "server", "endpoints", "prefix", "path", "kubeconfig", "namespace", "service"}

// PortNumber returns Port as a number (0 when unset or not a number).
func (d *Discovery) PortNumber() int {
	p, err := ParsePort(d.Port)
	if err != nil {
		return 0
	}
	return int(p)
}

// validateDiscovery checks the discovery block and fills in its defaults.
func (vs *VirtualServer) validateDiscovery(grace Duration, errs *ErrorList) {
	d := vs.Discovery
	if d == nil {
		return
	}
	keys, known := discoveryKeys[d.Type]
	switch {
	case d.Type == "":
		errs.add(d.Pos, "discovery needs a type (kubernetes, docker, dns, etcd or file)")
		return
	case !known:
		errs.add(d.At("type"), "unknown discovery type %q (kubernetes, docker, dns, etcd or file)", d.Type)
		return
	}
	for _, k := range discoveryAllKeys {
		if d.Has(k) && !slices.Contains(keys, k) {
			errs.add(d.At(k), "%s does not apply to discovery type %s (it takes %s)", k, d.Type, strings.Join(keys, ", "))
		}
	}
	switch d.FailPolicy {
	case "":
		d.FailPolicy = FailKeepLast
	case FailKeepLast, FailSetEmpty:
	default:
		errs.add(d.At("fail_policy"), "invalid fail_policy %q (keep_last or set_empty)", d.FailPolicy)
	}
	if d.Interval == 0 {
		d.Interval = Duration(DefaultDiscoveryInterval)
	} else if d.Interval.D() < 100*time.Millisecond {
		errs.add(d.At("interval"), "discovery interval %s is below 100ms", d.Interval.D())
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(DefaultDiscoveryTimeout)
	}
	if d.MaxDrop == nil {
		f := Fraction(DefaultDiscoveryMaxDrop)
		d.MaxDrop = &f
	}
	if d.Confirm == 0 {
		d.Confirm = DefaultDiscoveryConfirm
	} else if d.Confirm < 1 {
		errs.add(d.At("confirm"), "confirm must be at least 1")
	}
	if d.ConfirmTime == 0 {
		d.ConfirmTime = Duration(DefaultDiscoveryConfirmTime)
	}
	if d.Settle == 0 {
		d.Settle = Duration(DefaultDiscoverySettle)
	}
	if d.Drain == 0 {
		d.Drain = grace
	}
	if d.Weight == nil {
		w := 1
		d.Weight = &w
	} else if *d.Weight < 0 || *d.Weight > 65535 {
		errs.add(d.At("weight"), "weight %d out of range (0..65535)", *d.Weight)
	}
	portRequired := false
	switch d.Type {
	case "docker":
		if d.Label == "" {
			errs.add(d.Pos, "discovery type docker needs label (KEY or KEY=VALUE): the containers it selects")
		}
		if d.Host != "" && !strings.HasPrefix(d.Host, "unix://") && !strings.HasPrefix(d.Host, "tcp://") {
			errs.add(d.At("host"), "invalid docker host %q: want unix:///PATH or tcp://HOST:PORT", d.Host)
		}
	case "dns":
		if d.Name == "" {
			errs.add(d.Pos, "discovery type dns needs name: an SRV name (_http._tcp.example.com) or a host name with port")
		} else if !strings.HasPrefix(d.Name, "_") {
			portRequired = true // a host name's A/AAAA records carry no port
		}
		if d.Server != "" {
			if _, p, err := net.SplitHostPort(d.Server); err != nil || p == "" {
				errs.add(d.At("server"), "invalid dns server %q: want HOST:PORT, for example 127.0.0.1:53", d.Server)
			}
		}
	case "etcd":
		if len(d.Endpoints) == 0 {
			errs.add(d.Pos, "discovery type etcd needs endpoints (http://HOST:PORT ...)")
		}
		for _, e := range d.Endpoints {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs.add(d.At("endpoints"), "invalid etcd endpoint %q: want http://HOST:PORT or https://HOST:PORT", e)
			}
		}
		if d.Prefix == "" {
			errs.add(d.Pos, "discovery type etcd needs prefix: the key prefix watched")
		}
	case "file":
		if d.Path == "" {
			errs.add(d.Pos, "discovery type file needs path: a JSON or YAML file, or a directory of them")
		}
	case "kubernetes":
		if d.Service == "" {
			errs.add(d.Pos, "discovery type kubernetes needs service: the name of the Service whose EndpointSlices are followed")
		} else if !validKubeName(d.Service, 63) {
			errs.add(d.At("service"), "invalid kubernetes service name %q: lowercase letters, digits and '-', at most 63", d.Service)
		}
		if d.Namespace != "" && !validKubeName(d.Namespace, 63) {
			errs.add(d.At("namespace"), "invalid kubernetes namespace %q: lowercase letters, digits and '-', at most 63", d.Namespace)
		}
		if d.Port != "" && !validKubePortName(d.Port) {
			if _, err := ParsePort(d.Port); err != nil {
				errs.add(d.At("port"), "invalid kubernetes port %q: a port name (as in the Service) or a number 1-65535", d.Port)
			}
		}
		return
	}
	if d.Port != "" {
		if _, err := ParsePort(d.Port); err != nil {
			errs.add(d.At("port"), "invalid discovery port %q (1-65535)", d.Port)
		}
	} else if portRequired {
		errs.add(d.At("name"), "dns name %q is a host name: give port, or use an SRV name (_service._proto.name)", d.Name)
	}
}

// validKubeName is an RFC 1123 label: what Service and namespace names are.
func validKubeName(s string, max int) bool {
	if s == "" || len(s) > max || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// validKubePortName is an IANA service name, what a Service's port names
// are: at most 15 lowercase letters, digits and '-', with a letter.
func validKubePortName(s string) bool {
	if !validKubeName(s, 15) || strings.Contains(s, "--") {
		return false
	}
	return strings.ContainsFunc(s, func(c rune) bool { return c >= 'a' && c <= 'z' })
}

// Origin returns the origin discovered real servers of this block carry:
// "TYPE:WHAT", for example dns:_http._tcp.example.test.
func (d *Discovery) Origin() string {
	switch d.Type {
	case "docker":
		return "docker:" + d.Label
	case "dns":
		return "dns:" + d.Name
	case "etcd":
		return "etcd:" + d.Prefix
	case "file":
		return "file:" + d.Path
	case "kubernetes":
		if d.Namespace == "" {
			return "kubernetes:" + d.Service
		}
		return "kubernetes:" + d.Namespace + "/" + d.Service
	}
	return d.Type
}
