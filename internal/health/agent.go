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
// Words the agent does not send leave their setting as it was. As type
// agent, a failed connection counts as a failed check; as agent_port next
// to another check type it is ignored (HAProxy's rule: connectivity is the
// other check's business).

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
}

// maxAgentReply bounds what is read from an agent.
const maxAgentReply = 512

// ParseAgent parses an agent's reply. Unknown words are ignored, as HAProxy
// does; of conflicting words the last one counts.
func ParseAgent(s string) AgentReply {
	a := AgentReply{Percent: -1, MaxConn: -1}
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
