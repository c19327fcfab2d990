package health

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The agent check speaks HAProxy's agent-check protocol: connect to the
// agent's port and read one line of words, separated by spaces, tabs or
// commas, in any order:
//
//	75%          weight = configured weight x 75%
//	maxconn:30   at most 30 connections to this real server
//	ready        cancel drain and maint
//	drain        take no new connections; established ones finish
//	maint        out of service
//	down         (or failed, fail, stopped) the service is down
//	up           the service is up again
//	# text       the rest is a description, shown with the state
//
// and two words of govs's own, for prequal's probes (internal/director's
// prober.go), which HAProxy takes as unknown words: it ignores them, only
// mentioning the first in the check's status ("agent reports an error"),
// so one agent can serve both:
//
//	inflight:12    requests in flight now (a whole number)
//	latency:25ms   recent request latency (a Go duration: 800us, 25ms, 1.5s)
//
// and the raw figures govs agent (internal/agent) computed its percentage
// from, shown by the director in the API, /metrics and govsadm -L --agent
// (none has a '%': HAProxy reads any word with one as the weight):
//
//	cpu:41       CPU busy, percent (smoothed)
//	mem:63       memory used (1 - MemAvailable/MemTotal), percent
//	load:0.52    1-minute load average per CPU
//	psi:3        highest PSI "some" stall share of cpu, memory, io, percent (smoothed)
//	io:0         busiest disk's share of time doing IO, percent (smoothed)
//
// docs/agent.md is the reference for all the words, both sides.
// Other unknown words are ignored, as HAProxy does. Words the agent does
// not send leave their setting as it was. As type agent, a failed
// connection counts as a failed check; as agent_port next to another check
// type it is ignored (HAProxy's rule: connectivity is the other check's
// business).

func init() {
	Register("agent", func(s Spec) (Checker, error) { return newAgent(s.Target), nil })
}

// AgentAdmin is an agent's administrative word.
type AgentAdmin uint8

// Administrative words.
const (
	AdminNone  AgentAdmin = iota
	AdminReady            // cancels drain and maint
	AdminDrain
	AdminMaint
)

// AgentOp is an agent's operational word.
type AgentOp uint8

// Operational words.
const (
	OpNone AgentOp = iota
	OpUp
	OpDown
)

// AgentReply is what an agent said. Fields it did not advertise are -1 or none.
type AgentReply struct {
	Percent int // weight percentage, -1: not said
	MaxConn int // connection limit, -1: not said
	Admin   AgentAdmin
	Op      AgentOp
	Desc    string // after '#'
	// govs's extensions (see above).
	InFlight int           // requests in flight, -1: not said
	Latency  time.Duration // recent request latency, -1: not said
	// govs agent's figures, -1: not said.
	CPU, Mem, PSI, IO int     // percent
	LoadPerCPU        float64 // 1-minute load average per CPU
}

// NoAgentReply is a reply that says nothing.
var NoAgentReply = AgentReply{Percent: -1, MaxConn: -1, InFlight: -1, Latency: -1, CPU: -1, Mem: -1, PSI: -1, IO: -1,
	LoadPerCPU: -1}

// HasFigures reports whether the reply carries any of govs agent's figures.
func (a AgentReply) HasFigures() bool {
	return a.CPU >= 0 || a.Mem >= 0 || a.PSI >= 0 || a.IO >= 0 || a.LoadPerCPU >= 0
}

// Load is the agent's percentage read as a load, for the adaptive
// schedulers' AgentLoad signal (0 idle, 1 saturated); ok is false when the
// agent sent no percentage. An HAProxy agent's percentage is the share of
// its configured weight the server should get: agents compute it from
// their spare capacity (idle CPU, free workers), 100% when idle. So
// Load = 1 - percent/100: 100% is 0 (idle), 25% is 0.75, 0% is 1
// (saturated). A percentage above 100 (an agent asking for more than its
// configured weight, which HAProxy allows) says the server has capacity to
// spare beyond its weight; a load below 0 would mean nothing to the
// schedulers, so it reads as idle: 0.
func (a AgentReply) Load() (load float64, ok bool) {
	if a.Percent < 0 {
		return 0, false
	}
	return max(1-float64(a.Percent)/100, 0), true
}

// maxAgentReply bounds what is read from an agent.
const maxAgentReply = 512

// ParseAgent parses an agent's reply. Unknown words are ignored, as HAProxy
// does; of conflicting words the last one counts.
func ParseAgent(s string) AgentReply {
	a := NoAgentReply
	if len(s) > maxAgentReply {
		s = s[:maxAgentReply]
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		a.Desc = strings.TrimSpace(strings.Map(printable, s[i+1:]))
		s = s[:i]
	}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		lw := strings.ToLower(w)
		switch {
		case strings.HasSuffix(lw, "%"):
			if n, err := strconv.ParseUint(lw[:len(lw)-1], 10, 16); err == nil {
				a.Percent = int(n)
			}
		case strings.HasPrefix(lw, "maxconn:"):
			if n, err := strconv.ParseUint(lw[len("maxconn:"):], 10, 31); err == nil {
				a.MaxConn = int(n)
			}
		case strings.HasPrefix(lw, "inflight:"):
			if n, err := strconv.ParseUint(lw[len("inflight:"):], 10, 31); err == nil {
				a.InFlight = int(n)
			}
		case strings.HasPrefix(lw, "latency:"):
			if d, err := time.ParseDuration(lw[len("latency:"):]); err == nil && d >= 0 {
				a.Latency = d
			}
		case strings.HasPrefix(lw, "cpu:"):
			a.CPU = percentWord(lw[len("cpu:"):], a.CPU)
		case strings.HasPrefix(lw, "mem:"):
			a.Mem = percentWord(lw[len("mem:"):], a.Mem)
		case strings.HasPrefix(lw, "psi:"):
			a.PSI = percentWord(lw[len("psi:"):], a.PSI)
		case strings.HasPrefix(lw, "io:"):
			a.IO = percentWord(lw[len("io:"):], a.IO)
		case strings.HasPrefix(lw, "load:"):
			if v, err := strconv.ParseFloat(lw[len("load:"):], 64); err == nil && v >= 0 && v < 1e6 {
				a.LoadPerCPU = v
			}
		case lw == "ready":
			a.Admin = AdminReady
		case lw == "drain":
			a.Admin = AdminDrain
		case lw == "maint":
			a.Admin = AdminMaint
		case lw == "up":
			a.Op = OpUp
		case lw == "down" || lw == "failed" || lw == "fail" || lw == "stopped":
			a.Op = OpDown
		}
	}
	return a
}

// percentWord reads a figure from 0 to 100, or keeps old.
func percentWord(s string, old int) int {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil && n <= 100 {
		return int(n)
	}
	return old
}

func printable(r rune) rune {
	if r < ' ' || r == 0x7f {
		return -1
	}
	return r
}

// String writes the reply back in the agent protocol.
func (a AgentReply) String() string {
	var words []string
	if a.Percent >= 0 {
		words = append(words, strconv.Itoa(a.Percent)+"%")
	}
	if a.MaxConn >= 0 {
		words = append(words, "maxconn:"+strconv.Itoa(a.MaxConn))
	}
	if a.InFlight >= 0 {
		words = append(words, "inflight:"+strconv.Itoa(a.InFlight))
	}
	if a.Latency >= 0 {
		words = append(words, "latency:"+a.Latency.String())
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"cpu:", a.CPU}, {"mem:", a.Mem}} {
		if f.v >= 0 {
			words = append(words, f.name+strconv.Itoa(f.v))
		}
	}
	if a.LoadPerCPU >= 0 {
		words = append(words, "load:"+strconv.FormatFloat(a.LoadPerCPU, 'f', -1, 64))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"psi:", a.PSI}, {"io:", a.IO}} {
		if f.v >= 0 {
			words = append(words, f.name+strconv.Itoa(f.v))
		}
	}
	switch a.Admin {
	case AdminReady:
		words = append(words, "ready")
	case AdminDrain:
		words = append(words, "drain")
	case AdminMaint:
		words = append(words, "maint")
	}
	switch a.Op {
	case OpUp:
		words = append(words, "up")
	case OpDown:
		words = append(words, "down")
	}
	s := strings.Join(words, " ")
	if a.Desc != "" {
		s += " #" + a.Desc
	}
	return s
}

type agentChecker struct {
	addr   string
	dialer net.Dialer
}

func newAgent(addr netip.AddrPort) *agentChecker {
	return &agentChecker{addr: addr.String(), dialer: dialer()}
}

func (c *agentChecker) Check(ctx context.Context) Result {
	reply, err := c.ask(ctx)
	if err != nil {
		return failErr(ctx, "agent", err)
	}
	a := ParseAgent(reply)
	r := pass("agent: %s", strings.TrimSpace(strings.Map(printable, reply)))
	r.HasAgent, r.Agent = true, a
	return r
}

// AskAgent connects to the agent at addr and returns what it said, read as
// the agent check reads it: one line, within ctx. It is how prequal's probes
// ask an agent (internal/director's prober.go).
func AskAgent(ctx context.Context, addr netip.AddrPort) (AgentReply, error) {
	c := agentChecker{addr: addr.String(), dialer: dialer()}
	line, err := c.ask(ctx)
	if err != nil {
		return NoAgentReply, err
	}
	return ParseAgent(line), nil
}

// ask reads the agent's line: up to a newline, the end of the stream or
// the timeout, whichever comes first; a partial line at the timeout counts.
func (c *agentChecker) ask(ctx context.Context) (string, error) {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return "", err
	}
	defer closeNoLinger(conn)
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var buf [maxAgentReply]byte
	n := 0
	for n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if strings.ContainsRune(string(buf[n-m:n]), '\n') {
			break
		}
		if err != nil {
			if err == io.EOF || n > 0 {
				break
			}
			return "", err
		}
	}
	return string(buf[:n]), nil
}

// withAgent asks an agent after the main check; the agent's connection
// failures are ignored.
type withAgent struct {
	main  Checker
	agent *agentChecker
}

func (c *withAgent) Check(ctx context.Context) Result {
	r := c.main.Check(ctx)
	if ctx.Err() != nil {
		return r
	}
	if reply, err := c.agent.ask(ctx); err == nil {
		r.HasAgent, r.Agent = true, ParseAgent(reply)
		r.Msg += "; agent: " + strings.TrimSpace(strings.Map(printable, reply))
	}
	return r
}

// closeNoLinger closes a check's connection with a reset, as HAProxy does
// with its checks: no TIME_WAIT left behind by thousands of checks.
func closeNoLinger(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
