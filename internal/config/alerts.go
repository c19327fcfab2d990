package config

import (
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Alerts configures the alerts sent on transitions: a real server going up
// or down, a virtual service gaining or losing its quorum, a VRRP instance
// changing state. They go by mail, as keepalived's (global_defs
// notification_email, notification_email_from, smtp_server,
// smtp_connect_timeout), and to webhooks (a JSON POST each). Each virtual
// server, real server and VRRP instance may turn its own off with
// alert: false (keepalived's smtp_alert).
type Alerts struct {
	Meta `yaml:"-"`

	// RouterID names this director in alerts (keepalived's router_id);
	// default the host name.
	RouterID string      `yaml:"router_id,omitempty"`
	Email    *AlertEmail `yaml:"email,omitempty"`
	Webhooks []string    `yaml:"webhooks,omitempty"`
}

// AlertEmail is where alert mails go.
type AlertEmail struct {
	Meta `yaml:"-"`

	To   []string `yaml:"to"`
	From string   `yaml:"from,omitempty"` // default govs@HOSTNAME
	// SMTPServer is HOST[:PORT] (port 25 by default).
	SMTPServer string `yaml:"smtp_server"`
	// Timeout bounds each mail's SMTP session (default 30s, keepalived's
	// smtp_connect_timeout).
	Timeout Duration `yaml:"timeout,omitempty"`
}

// DefaultAlertTimeout is keepalived's default smtp_connect_timeout.
const DefaultAlertTimeout = 30 * time.Second

// maxAlertTargets bounds recipients and webhooks.
const maxAlertTargets = 64

func (a *Alerts) validate(errs *ErrorList) {
	if strings.ContainsAny(a.RouterID, "\r\n") {
		errs.add(a.At("router_id"), "router_id must be one line")
	}
	if a.Email == nil && len(a.Webhooks) == 0 {
		errs.add(a.Pos, "alerts needs email or webhooks")
	}
	if len(a.Webhooks) > maxAlertTargets {
		errs.add(a.At("webhooks"), "%d webhooks: at most %d", len(a.Webhooks), maxAlertTargets)
	}
	for _, w := range a.Webhooks {
		u, err := url.Parse(w)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.add(a.At("webhooks"), "webhook %q is not an http:// or https:// URL", w)
		}
	}
	if e := a.Email; e != nil {
		e.validate(errs)
	}
}

func (e *AlertEmail) validate(errs *ErrorList) {
	if len(e.To) == 0 {
		errs.add(e.At("to"), "email needs to: the addresses alerts are sent to")
	}
	if len(e.To) > maxAlertTargets {
		errs.add(e.At("to"), "%d recipients: at most %d", len(e.To), maxAlertTargets)
	}
	for _, to := range e.To {
		if !mailAddress(to) {
			errs.add(e.At("to"), "%q is not a mail address", to)
		}
	}
	if e.From != "" && !mailAddress(e.From) {
		errs.add(e.At("from"), "from %q is not a mail address", e.From)
	}
	if e.SMTPServer == "" {
		errs.add(e.At("smtp_server"), "email needs smtp_server (HOST[:PORT])")
	} else if _, _, err := SplitSMTPServer(e.SMTPServer); err != nil {
		errs.add(e.At("smtp_server"), "smtp_server: %v", err)
	}
	if e.Timeout < 0 || (e.Timeout == 0 && e.Has("timeout")) {
		errs.add(e.At("timeout"), "timeout must be positive")
	}
	if e.Timeout == 0 {
		e.Timeout = Duration(DefaultAlertTimeout)
	}
}

// mailAddress accepts a bare address (user@host), or a local name alone as
// keepalived does (notification_email { acassen }): the MTA completes it.
func mailAddress(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n<>,") {
		return false
	}
	if !strings.Contains(s, "@") {
		return true
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s
}

// SplitSMTPServer reads HOST[:PORT] (an IPv6 address in brackets with a
// port), port 25 by default.
func SplitSMTPServer(s string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Count(s, ":") > 1 || !strings.Contains(s, ":") {
			return strings.Trim(s, "[]"), 25, nil // a host, or a bare IPv6 address
		}
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, &net.AddrError{Err: "invalid port", Addr: s}
	}
	return host, port, nil
}
