package health

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// The smtp check is keepalived's SMTP_CHECK: read the server's greeting,
// send EHLO helo_name (default: this host's name), read the reply, QUIT.
// It passes when both are 2xx. With hosts (keepalived's host blocks) it
// asks each host in turn instead of the real server, each from its own
// bind address, and passes only when every one passes.

func init() {
	Register("smtp", func(s Spec) (Checker, error) {
		name := s.HeloName
		if name == "" {
			name, _ = os.Hostname()
		}
		if name == "" || strings.ContainsAny(name, "\r\n") {
			name = "govs"
		}
		if len(s.Hosts) == 0 {
			return &smtpChecker{addr: s.Target.String(), helo: name, dialer: dialer()}, nil
		}
		var m multiSMTP
		for _, h := range s.Hosts {
			d := dialer()
			if h.Bind.IsValid() {
				d.LocalAddr = &net.TCPAddr{IP: h.Bind.AsSlice()}
			}
			m = append(m, &smtpChecker{addr: h.Target.String(), helo: name, dialer: d})
		}
		return m, nil
	})
}

type smtpChecker struct {
	addr   string
	helo   string
	dialer net.Dialer
}

// multiSMTP checks several hosts: all must pass.
type multiSMTP []*smtpChecker

func (m multiSMTP) Check(ctx context.Context) Result {
	for _, c := range m {
		if r := c.Check(ctx); !r.OK {
			r.Msg = "host " + c.addr + ": " + r.Msg
			return r
		}
	}
	return pass("smtp: %d hosts answer", len(m))
}

func (c *smtpChecker) Check(ctx context.Context) Result {
	conn, err := c.dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return failErr(ctx, "connect", err)
	}
	defer closeNoLinger(conn)
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReaderSize(conn, 1024)
	code, text, err := smtpReply(r)
	if err != nil {
		return failErr(ctx, "smtp greeting", err)
	}
	if code/100 != 2 {
		return fail("smtp greeting %d %s", code, text)
	}
	if _, err := fmt.Fprintf(conn, "EHLO %s\r\n", c.helo); err != nil {
		return failErr(ctx, "smtp", err)
	}
	code, text, err = smtpReply(r)
	if err != nil {
		return failErr(ctx, "smtp EHLO", err)
	}
	fmt.Fprintf(conn, "QUIT\r\n")
	if code/100 != 2 {
		return fail("smtp EHLO: %d %s", code, text)
	}
	return pass("smtp %d", code)
}

// smtpReply reads one reply, multi-line ("250-...") or not.
func smtpReply(r *bufio.Reader) (int, string, error) {
	for i := 0; i < 100; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, "", fmt.Errorf("bad reply %q", line)
		}
		var code int
		if _, err := fmt.Sscanf(line[:3], "%d", &code); err != nil {
			return 0, "", fmt.Errorf("bad reply %q", line)
		}
		if len(line) == 3 || line[3] != '-' {
			return code, strings.TrimSpace(line[3:]), nil
		}
	}
	return 0, "", fmt.Errorf("reply too long")
}
