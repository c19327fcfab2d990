package alert

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/config"
)

// sendMail sends ev as keepalived does: one SMTP session (HELO, MAIL FROM,
// RCPT TO each recipient, DATA), not retried; the session is bounded by the
// email timeout.
func (s *Sender) sendMail(ev Event) {
	st := s.state.Load()
	e := st.email
	if e == nil {
		return
	}
	if err := Mail(context.Background(), e, ev); err != nil {
		s.log.Warn("alert mail not sent", "smtp_server", e.SMTPServer, "subject", ev.Subject, "err", err)
	}
}

// Mail sends ev to e's recipients through e's SMTP server.
func Mail(ctx context.Context, e *config.AlertEmail, ev Event) error {
	timeout := e.Timeout.D()
	if timeout <= 0 {
		timeout = config.DefaultAlertTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, port, err := config.SplitSMTPServer(e.SMTPServer)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	from := e.From
	if from == "" {
		h, _ := os.Hostname()
		from = "govs@" + h
	}
	r := bufio.NewReader(conn)
	step := func(cmd string, want int) error {
		if cmd != "" {
			if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
				return err
			}
		}
		code, text, err := reply(r)
		if err != nil {
			return fmt.Errorf("%s: %w", what(cmd), err)
		}
		if code != want {
			return fmt.Errorf("%s: %d %s", what(cmd), code, text)
		}
		return nil
	}
	helo, _ := os.Hostname()
	if helo == "" {
		helo = "localhost"
	}
	if err := step("", 220); err != nil {
		return err
	}
	if err := step("HELO "+helo, 250); err != nil {
		return err
	}
	if err := step("MAIL FROM:<"+from+">", 250); err != nil {
		return err
	}
	for _, to := range e.To {
		if err := step("RCPT TO:<"+to+">", 250); err != nil {
			return err
		}
	}
	if err := step("DATA", 354); err != nil {
		return err
	}
	if err := step(Message(from, e.To, ev)+"\r\n.", 250); err != nil {
		return err
	}
	step("QUIT", 221)
	return nil
}

func what(cmd string) string {
	if cmd == "" {
		return "greeting"
	}
	if strings.Contains(cmd, "\r\n") {
		return "message"
	}
	w, _, _ := strings.Cut(cmd, " ")
	return w
}

// Message is the mail's header and body as keepalived writes them
// (smtp.c body_cmd), dot-stuffed, without the final ".".
func Message(from string, to []string, ev Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Date: %s\r\nFrom: %s\r\nSubject: %s\r\nX-Mailer: govs\r\nTo:",
		ev.Time.Format("Mon, 02 Jan 2006 15:04:05 -0700"), from, oneLine(ev.Subject))
	for i, t := range to {
		sep := ""
		if i > 0 {
			sep = ",\r\n"
		}
		fmt.Fprintf(&b, "%s %s", sep, t)
	}
	fmt.Fprintf(&b, "\r\n\r\n%s\r\n", dotStuff(ev.Body))
	return b.String()
}

func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func dotStuff(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "\r\n")
}

// reply reads one SMTP reply, multi-line or not.
func reply(r *bufio.Reader) (int, string, error) {
	for i := 0; i < 100; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, "", fmt.Errorf("bad reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, "", fmt.Errorf("bad reply %q", line)
		}
		if len(line) == 3 || line[3] != '-' {
			return code, strings.TrimSpace(line[3:]), nil
		}
	}
	return 0, "", fmt.Errorf("reply too long")
}
