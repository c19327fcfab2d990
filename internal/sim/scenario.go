package sim

import (
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is a simulated virtual service: its real servers, its load and
// what happens to it. Times are in seconds.
type Scenario struct {
	Name        string
	Description string
	File        string  // where it was read from
	Utilisation float64 // offered load / nominal capacity
	Requests    int     // default number of requests
	RTT         float64 // director <-> real server round trip
	// ConnectTimeout is how long a connect to a failed real server takes
	// to fail; Retries how many other real servers are tried then, as the
	// proxy's retries.
	ConnectTimeout float64
	Retries        int
	// PassiveHealth takes a real server out at its first failed connect,
	// until a health check passes, as the proxy's passive health checking
	// does (director.VirtualService.ConnectFailed); without it only the
	// health checks do, as with the kernel dataplanes.
	PassiveHealth bool
	Arrivals      Arrivals
	Health        Health
	AgentInterval float64 // agent load reports; 0: none
	ProbeDelay    float64 // prequal probe round trip
	Servers       []Server
	Events        []Event
	// Directors is how many directors share the servers, each with its own
	// scheduler, connection counts and health checks; arrivals are split
	// among them at random. 0 or 1: one.
	Directors int
	// Timeout is how long a client waits for its response; a request not
	// complete by then counts as failed. 0: forever.
	Timeout     float64
	Load        LoadProfile
	Antagonists []Antagonist
	// Prewarm calls the standby servers in (prewarm.go); nil: none.
	Prewarm *Prewarm
	base    string // the name random streams are drawn for (streamName)
}

// Server is one real server.
type Server struct {
	Weight   int
	Capacity int     // parallel slots
	Slowdown float64 // service time multiplier (1: nominal)
	Service  Dist
	// Warmup is how long the server is slow after it starts or comes back:
	// WarmupSlowdown x at first, then less, linearly, to nominal. 0: none.
	Warmup         float64
	WarmupSlowdown float64
	// Standby: the server takes no connections until the pre-warming calls
	// it (prewarm.go).
	Standby bool
}

// Dist is a service-time distribution.
type Dist struct {
	Kind  DistKind
	Mean  float64 // seconds
	Sigma float64 // lognormal: standard deviation of the log
}

// DistKind names a distribution.
type DistKind uint8

// The service-time distributions.
const (
	Exponential DistKind = iota
	Lognormal
	Constant
)

var distNames = []string{"exponential", "lognormal", "constant"}

func (k DistKind) String() string { return distNames[k] }

// Arrivals is a Markov-modulated Poisson process: the rate of state k is
// Rate x the mean rate, for an exponential time of mean Mean, then the next
// state comes (cyclically). Rates are normalised so that the time-average
// rate is the scenario's. Poisson is one state.
type Arrivals struct {
	Process string // poisson, onoff, mmpp: as written
	States  []State
}

// State is one state of the arrival process.
type State struct {
	Rate float64 // relative to the mean rate
	Mean float64 // mean sojourn, seconds
}

// Health is the health checker: a check every Interval on each real server
// (a request of Cost x a normal one's service time, queued like one); a
// check that fails or takes longer than Timeout takes the server out
// (weight 0), the next good one puts it back.
type Health struct {
	Interval, Timeout, Cost float64
}

// Event changes a real server for a while: a slowdown (service times
// multiplied by Slowdown) or a failure.
type Event struct {
	At, For  When
	Servers  []int // indexes in the expanded server list
	Slowdown float64
	Fail     bool
}

// When is a time, absolute or as a fraction of the expected run length
// (requests / arrival rate), so that a scenario keeps its shape whatever
// the number of requests.
type When struct {
	Seconds  float64
	Fraction float64
	Relative bool
}

// In returns the time in seconds in a run of the given length.
func (w When) In(length float64) float64 {
	if w.Relative {
		return w.Fraction * length
	}
	return w.Seconds
}

// Capacity is the nominal capacity in requests per second: the sum of the
// servers' slots over their mean service times.
func (sc *Scenario) Capacity() float64 {
	var c float64
	for _, s := range sc.Servers {
		c += float64(s.Capacity) / (s.Service.Mean * s.Slowdown)
	}
	return c
}

// Rate is the mean arrival rate, per second.
func (sc *Scenario) Rate() float64 { return sc.Utilisation * sc.Capacity() }

//go:embed scenarios/*.yaml
var builtinFS embed.FS

// Builtins lists the built-in scenarios, in the order they are run.
func Builtins() []string {
	return []string{"homogeneous", "heterogeneous", "noisy-neighbour", "failure", "burst",
		"multi-director", "multi-director-antagonist", "ramp", "diurnal", "standby"}
}

// Load returns the built-in scenario called name, or else reads the file
// name.
func Load(name string) (*Scenario, error) {
	for _, b := range Builtins() {
		if name == b {
			file := "scenarios/" + b + ".yaml"
			src, err := builtinFS.ReadFile(file)
			if err != nil {
				return nil, err
			}
			return Parse(file, src)
		}
	}
	src, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(name, "./") {
			return nil, fmt.Errorf("unknown scenario %q (built-in: %s; or a YAML file)", name, strings.Join(Builtins(), ", "))
		}
		return nil, err
	}
	return Parse(name, src)
}

// Error is a problem in a scenario file, at file:line:col.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in a file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

type parser struct {
	file string
	errs ErrorList
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads a scenario from src; file names it in errors. A scenario
// without a name takes the file's base name.
func Parse(file string, src []byte) (*Scenario, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return nil, ErrorList{{File: file, Line: line, Col: 1, Msg: msg}}
	}
	if len(doc.Content) == 0 {
		return nil, ErrorList{{File: file, Line: 1, Col: 1, Msg: "empty scenario"}}
	}
	sc := p.scenario(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(strings.TrimSuffix(path.Base(file), ".yaml"), ".yml")
	}
	sc.File = file
	return sc, nil
}

// fields returns the values of mapping n by key, reporting keys that are not
// among known, duplicates and a node that is not a mapping.
func (p *parser) fields(n *yaml.Node, what string, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !contains(known, k.Value):
			p.errorf(k, "unknown field %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.errorf(k, "duplicate field %q", k.Value)
		default:
			out[k.Value] = v
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a single value", what)
		return "", false
	}
	return n.Value, true
}

// number parses a float in [lo, hi].
func (p *parser) number(n *yaml.Node, what string, lo, hi float64) float64 {
	s, ok := p.scalar(n, what)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		p.errorf(n, "%s: %q is not a number", what, s)
		return 0
	}
	if v < lo || v > hi {
		p.errorf(n, "%s must be between %g and %g, not %g", what, lo, hi, v)
	}
	return v
}

func (p *parser) integer(n *yaml.Node, what string, lo, hi int) int {
	s, ok := p.scalar(n, what)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		p.errorf(n, "%s: %q is not an integer", what, s)
		return 0
	}
	if v < lo || v > hi {
		p.errorf(n, "%s must be between %d and %d, not %d", what, lo, hi, v)
	}
	return v
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	s, ok := p.scalar(n, what)
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.errorf(n, "%s: %q is not true or false", what, s)
	}
	return b
}

// duration parses a Go duration ("10ms") into seconds, at least lo.
func (p *parser) duration(n *yaml.Node, what string, lo time.Duration) float64 {
	s, ok := p.scalar(n, what)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(n, "%s: %q is not a duration (such as 10ms or 2s)", what, s)
		return 0
	}
	if d < lo {
		p.errorf(n, "%s must be at least %v", what, lo)
	}
	return d.Seconds()
}

// when parses a duration or a percentage of the run ("40%").
func (p *parser) when(n *yaml.Node, what string) When {
	s, ok := p.scalar(n, what)
	if !ok {
		return When{}
	}
	if f, found := strings.CutSuffix(s, "%"); found {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 0 || math.IsNaN(v) {
			p.errorf(n, "%s: %q is not a percentage of the run", what, s)
		}
		return When{Fraction: v / 100, Relative: true}
	}
	return When{Seconds: p.duration(n, what, 0)}
}

func (p *parser) scenario(n *yaml.Node) *Scenario {
	sc := &Scenario{
		Utilisation:    0.85,
		Requests:       200000,
		ConnectTimeout: 1,
		Retries:        1,
		Arrivals:       Arrivals{Process: "poisson", States: []State{{Rate: 1, Mean: 1}}},
		Health:         Health{Interval: 1, Timeout: 1, Cost: 0.1},
		AgentInterval:  1,
		ProbeDelay:     0.0005,
	}
	f := p.fields(n, "the scenario", "name", "description", "utilisation", "requests", "rtt", "connect_timeout",
		"retries", "passive_health", "service", "capacity", "weight", "arrivals", "health", "agent_interval", "probe_delay", "servers", "events",
		"directors", "timeout", "load", "antagonists", "prewarm")
	if v := f["name"]; v != nil {
		sc.Name, _ = p.scalar(v, "name")
	}
	if v := f["description"]; v != nil {
		sc.Description, _ = p.scalar(v, "description")
	}
	if v := f["utilisation"]; v != nil {
		sc.Utilisation = p.number(v, "utilisation", 0.001, 2)
	}
	if v := f["requests"]; v != nil {
		sc.Requests = p.integer(v, "requests", 1, 1e9)
	}
	if v := f["rtt"]; v != nil {
		sc.RTT = p.duration(v, "rtt", 0)
	}
	if v := f["connect_timeout"]; v != nil {
		sc.ConnectTimeout = p.duration(v, "connect_timeout", time.Microsecond)
	}
	if v := f["retries"]; v != nil {
		sc.Retries = p.integer(v, "retries", 0, 7)
	}
	if v := f["passive_health"]; v != nil {
		sc.PassiveHealth = p.boolean(v, "passive_health")
	}
	if v := f["agent_interval"]; v != nil {
		sc.AgentInterval = p.duration(v, "agent_interval", 0)
	}
	if v := f["probe_delay"]; v != nil {
		sc.ProbeDelay = p.duration(v, "probe_delay", 0)
	}
	if v := f["arrivals"]; v != nil {
		sc.Arrivals = p.arrivals(v)
	}
	if v := f["health"]; v != nil {
		sc.Health = p.health(v, sc.Health)
	}
	// Defaults for the server groups.
	def := Server{Weight: 1, Capacity: 1, Slowdown: 1, Service: Dist{Kind: Exponential, Mean: 0.01, Sigma: 1}}
	if v := f["service"]; v != nil {
		def.Service = p.dist(v, def.Service)
	}
	if v := f["capacity"]; v != nil {
		def.Capacity = p.integer(v, "capacity", 1, 1<<20)
	}
	if v := f["weight"]; v != nil {
		def.Weight = p.integer(v, "weight", 0, 1<<16)
	}
	if v := f["servers"]; v != nil {
		sc.Servers = p.servers(v, def)
	} else {
		p.errorf(n, "the scenario has no servers")
	}
	if v := f["events"]; v != nil {
		sc.Events = p.events(v, len(sc.Servers))
	}
	if v := f["directors"]; v != nil {
		sc.Directors = p.integer(v, "directors", 1, 255)
	}
	if v := f["timeout"]; v != nil {
		sc.Timeout = p.duration(v, "timeout", time.Microsecond)
	}
	if v := f["load"]; v != nil {
		sc.Load = p.load(v)
	}
	if v := f["antagonists"]; v != nil {
		sc.Antagonists = p.antagonists(v, len(sc.Servers))
	}
	if v := f["prewarm"]; v != nil {
		sc.Prewarm = p.prewarm(v)
	}
	standby := false
	for _, s := range sc.Servers {
		standby = standby || s.Standby
	}
	if standby && sc.Prewarm == nil {
		p.errorf(n, "standby servers need a prewarm block (what calls them)")
	}
	return sc
}

func (p *parser) dist(n *yaml.Node, d Dist) Dist {
	f := p.fields(n, "service", "distribution", "mean", "sigma")
	if v := f["distribution"]; v != nil {
		s, _ := p.scalar(v, "distribution")
		i := indexOf(distNames, s)
		if i < 0 {
			p.errorf(v, "unknown distribution %q (known: %s)", s, strings.Join(distNames, ", "))
		} else {
			d.Kind = DistKind(i)
		}
	}
	if v := f["mean"]; v != nil {
		d.Mean = p.duration(v, "mean", time.Microsecond)
	}
	if v := f["sigma"]; v != nil {
		d.Sigma = p.number(v, "sigma", 0, 4)
	}
	return d
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func (p *parser) arrivals(n *yaml.Node) Arrivals {
	f := p.fields(n, "arrivals", "process", "on", "off", "off_rate", "states")
	a := Arrivals{Process: "poisson"}
	if v := f["process"]; v != nil {
		a.Process, _ = p.scalar(v, "process")
	}
	only := func(allowed string, keys ...string) {
		for _, k := range keys {
			if v := f[k]; v != nil && a.Process != allowed {
				p.errorf(v, "%s applies to process %s only", k, allowed)
			}
		}
	}
	only("onoff", "on", "off", "off_rate")
	only("mmpp", "states")
	switch a.Process {
	case "poisson":
		a.States = []State{{Rate: 1, Mean: 1}}
	case "onoff":
		on, off, low := 1.0, 1.0, 0.0
		if v := f["on"]; v != nil {
			on = p.duration(v, "on", time.Millisecond)
		}
		if v := f["off"]; v != nil {
			off = p.duration(v, "off", time.Millisecond)
		}
		if v := f["off_rate"]; v != nil {
			low = p.number(v, "off_rate", 0, 1)
		}
		a.States = []State{{Rate: 1, Mean: on}, {Rate: low, Mean: off}}
	case "mmpp":
		v := f["states"]
		if v == nil || v.Kind != yaml.SequenceNode || len(v.Content) < 2 {
			p.errorf(orNode(v, n), "process mmpp needs a list of at least two states")
			break
		}
		for _, s := range v.Content {
			sf := p.fields(s, "a state", "rate", "mean")
			st := State{Rate: 1, Mean: 1}
			if r := sf["rate"]; r != nil {
				st.Rate = p.number(r, "rate", 0, 1e6)
			}
			if m := sf["mean"]; m != nil {
				st.Mean = p.duration(m, "mean", time.Millisecond)
			}
			a.States = append(a.States, st)
		}
	default:
		p.errorf(f["process"], "unknown arrival process %q (known: poisson, onoff, mmpp)", a.Process)
		return a
	}
	var num, den float64
	for _, s := range a.States {
		num += s.Rate * s.Mean
		den += s.Mean
	}
	if num <= 0 {
		p.errorf(n, "the arrival rate is 0 in every state")
		return a
	}
	for i := range a.States {
		a.States[i].Rate *= den / num
	}
	return a
}

func orNode(a, b *yaml.Node) *yaml.Node {
	if a != nil {
		return a
	}
	return b
}

func (p *parser) health(n *yaml.Node, h Health) Health {
	f := p.fields(n, "health", "interval", "timeout", "cost")
	if v := f["interval"]; v != nil {
		h.Interval = p.duration(v, "interval", time.Millisecond)
	}
	if v := f["timeout"]; v != nil {
		h.Timeout = p.duration(v, "timeout", time.Millisecond)
	}
	if v := f["cost"]; v != nil {
		h.Cost = p.number(v, "cost", 0, 100)
	}
	return h
}

func (p *parser) servers(n *yaml.Node, def Server) []Server {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "servers must be a list of server groups")
		return nil
	}
	var out []Server
	for _, g := range n.Content {
		f := p.fields(g, "a server group", "count", "weight", "capacity", "slowdown", "service", "warmup", "warmup_slowdown", "standby")
		s, count := def, 1
		if v := f["count"]; v != nil {
			count = p.integer(v, "count", 1, 100000)
		}
		if v := f["weight"]; v != nil {
			s.Weight = p.integer(v, "weight", 0, 1<<16)
		}
		if v := f["capacity"]; v != nil {
			s.Capacity = p.integer(v, "capacity", 1, 1<<20)
		}
		if v := f["slowdown"]; v != nil {
			s.Slowdown = p.number(v, "slowdown", 0.01, 1000)
		}
		if v := f["service"]; v != nil {
			s.Service = p.dist(v, def.Service)
		}
		if v := f["warmup"]; v != nil {
			s.Warmup = p.duration(v, "warmup", 0)
			s.WarmupSlowdown = 3
		}
		if v := f["warmup_slowdown"]; v != nil {
			s.WarmupSlowdown = p.number(v, "warmup_slowdown", 1, 1000)
			if f["warmup"] == nil {
				p.errorf(v, "warmup_slowdown needs warmup (how long)")
			}
		}
		if v := f["standby"]; v != nil {
			s.Standby = p.boolean(v, "standby")
		}
		for range count {
			out = append(out, s)
		}
	}
	if len(out) > 100000 {
		p.errorf(n, "too many servers (%d, at most 100000)", len(out))
	}
	return out
}

func (p *parser) events(n *yaml.Node, servers int) []Event {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "events must be a list")
		return nil
	}
	var out []Event
	for _, en := range n.Content {
		f := p.fields(en, "an event", "at", "for", "server", "servers", "slowdown", "fail")
		e := Event{Slowdown: 1}
		if v := f["at"]; v != nil {
			e.At = p.when(v, "at")
		} else {
			p.errorf(en, "an event needs at")
		}
		if v := f["for"]; v != nil {
			e.For = p.when(v, "for")
		} else {
			p.errorf(en, "an event needs for (how long it lasts)")
		}
		idx := func(v *yaml.Node) {
			i := p.integer(v, "server", 0, servers-1)
			e.Servers = append(e.Servers, i)
		}
		if v := f["server"]; v != nil {
			idx(v)
		}
		if v := f["servers"]; v != nil {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "servers must be a list of server indexes")
			} else {
				for _, s := range v.Content {
					idx(s)
				}
			}
		}
		if len(e.Servers) == 0 {
			p.errorf(en, "an event needs server or servers (indexes from 0)")
		}
		if v := f["slowdown"]; v != nil {
			e.Slowdown = p.number(v, "slowdown", 0.01, 1000)
		}
		if v := f["fail"]; v != nil {
			e.Fail = p.boolean(v, "fail")
		}
		if !e.Fail && e.Slowdown == 1 {
			p.errorf(en, "an event needs slowdown or fail: true")
		}
		out = append(out, e)
	}
	return out
}
