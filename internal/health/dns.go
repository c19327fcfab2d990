package health

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The dns check is keepalived's DNS_CHECK: it asks the real server, over
// UDP, for query_name (default ".") of query_type (default SOA) and passes
// when the answer has the query's ID, no error code and at least one
// answer record.

func init() {
	Register("dns", func(s Spec) (Checker, error) {
		name := s.QueryName
		if !strings.HasSuffix(name, ".") {
			name += "."
		}
		n, err := dnsmessage.NewName(name)
		if err != nil {
			return nil, err
		}
		t, ok := dnsTypes[s.QueryType]
		if !ok {
			return nil, errors.New("unknown query type " + s.QueryType)
		}
		return &dnsChecker{addr: s.Target.String(), dialer: dialer(), q: dnsmessage.Question{Name: n, Type: t, Class: dnsmessage.ClassINET}}, nil
	})
}

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME, "SOA": dnsmessage.TypeSOA,
	"PTR": dnsmessage.TypePTR, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT, "AAAA": dnsmessage.TypeAAAA,
	"SRV": dnsmessage.TypeSRV,
}

type dnsChecker struct {
	addr   string
	q      dnsmessage.Question
	dialer net.Dialer
}

func (c *dnsChecker) Check(ctx context.Context) Result {
	id := uint16(rand.Uint32())
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{c.q},
	}
	query, err := msg.Pack()
	if err != nil {
		return fail("dns: %v", err)
	}
	conn, err := c.dialer.DialContext(ctx, "udp", c.addr)
	if err != nil {
		return failErr(ctx, "dns", err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(query); err != nil {
		return failErr(ctx, "dns send", err)
	}
	var buf [1500]byte
	for i := 0; i < 8; i++ { // a few stray datagrams at most
		n, err := conn.Read(buf[:])
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return fail("dns: port unreachable")
			}
			return failErr(ctx, "dns", err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil || h.ID != id || !h.Response {
			continue
		}
		if h.RCode != dnsmessage.RCodeSuccess {
			return fail("dns: %s %s: %s", c.q.Name, c.q.Type, strings.TrimPrefix(h.RCode.String(), "RCode"))
		}
		if err := p.SkipAllQuestions(); err != nil {
			return fail("dns: bad answer: %v", err)
		}
		answers := 0
		for {
			if _, err := p.AnswerHeader(); err != nil {
				break
			}
			answers++
			if err := p.SkipAnswer(); err != nil {
				break
			}
		}
		if answers == 0 {
			return fail("dns: %s %s: no answer", c.q.Name, c.q.Type)
		}
		return pass("dns: %s %s: %d answers", c.q.Name, c.q.Type, answers)
	}
	return fail("dns: no matching answer")
}
