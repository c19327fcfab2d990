package importer

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// mailGlobals are the global_defs of keepalived's alert mails.
type mailGlobals struct {
	to                          opt[[]string]
	from, server, routerID      opt[string]
	timeout                     opt[config.Duration]
	alert, alertVRRP, alertChkr opt[bool]
	nodes                       []*keepalived.Node // the lines, for the warning when there is no mail
	top                         int                // their global_defs
}

func mailOption(im *importer, g *globals, c *keepalived.Node) {
	m := &g.mail
	m.nodes, m.top = append(m.nodes, c), im.top
	switch c.Keyword {
	case "notification_email":
		m.to = some(c.BlockWords(), here(c))
	case "notification_email_from":
		m.from = im.str(c)
	case "smtp_server":
		m.server = im.smtpServer(c)
	case "smtp_connect_timeout":
		m.timeout = im.seconds(c, 0)
	case "router_id":
		m.routerID = im.str(c)
	case "smtp_alert":
		m.alert = im.boolean(c)
	case "smtp_alert_vrrp":
		m.alertVRRP = im.boolean(c)
	case "smtp_alert_checker":
		m.alertChkr = im.boolean(c)
	}
}

// smtpServer reads smtp_server IP|NAME [PORT] as HOST:PORT.
func (im *importer) smtpServer(c *keepalived.Node) opt[string] {
	s := im.str(c)
	if !s.set {
		return s
	}
	port := 25
	if len(c.Args) > 1 {
		p, err := strconv.ParseUint(c.Args[1], 10, 16)
		if err != nil || p == 0 {
			im.errorf(c.ArgPosition(1), "smtp_server: invalid port %q", c.Args[1])
			return opt[string]{}
		}
		port = int(p)
	}
	host := s.v
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	s.v = net.JoinHostPort(host, strconv.Itoa(port))
	return s
}

// alerts maps keepalived's mail settings onto alerts: email, and the
// smtp_alert switches onto each object's alert. keepalived mails only when
// it has both recipients and a server; its defaults are alerts for real
// servers, none for virtual servers and VRRP instances, unless smtp_alert
// (or smtp_alert_checker, smtp_alert_vrrp) in global_defs says otherwise.
func (im *importer) alerts() {
	m := im.glob.mail
	if !m.to.set || len(m.to.v) == 0 || !m.server.set {
		for _, c := range m.nodes {
			im.warnAt(here(c), m.top, "%s has no govs equivalent (ignored): keepalived sends no alert mail without both notification_email and smtp_server", c.Keyword)
		}
		return
	}
	a := &config.Alerts{}
	a.Pos = m.to.pos
	im.cfg.Alerts = a
	im.cfg.SetKey("alerts", m.to.pos)
	set(&a.Meta, "router_id", &a.RouterID, m.routerID)
	e := &config.AlertEmail{}
	e.Pos = m.to.pos
	set(&a.Meta, "email", &a.Email, some(e, m.to.pos))
	set(&e.Meta, "to", &e.To, m.to)
	set(&e.Meta, "from", &e.From, m.from)
	set(&e.Meta, "smtp_server", &e.SMTPServer, m.server)
	// keepalived's default smtp_connect_timeout is 30s, govs's too.
	set(&e.Meta, "timeout", &e.Timeout, m.timeout)

	pick := func(first, second opt[bool], def bool) bool {
		switch {
		case first.set:
			return first.v
		case second.set:
			return second.v
		}
		return def
	}
	off := func(m *config.Meta, key string, dst **bool, on bool) {
		if *dst == nil && !on {
			setPtr(m, key, dst, some(false, m.Pos))
		}
	}
	vsOn, rsOn := pick(m.alertChkr, m.alert, false), pick(m.alertChkr, m.alert, true)
	for _, vs := range im.cfg.VirtualServers {
		off(&vs.Meta, "alert", &vs.Alert, vsOn)
		for _, rs := range vs.RealServers {
			off(&rs.Meta, "alert", &rs.Alert, rsOn)
		}
	}
	viOn := pick(m.alertVRRP, m.alert, false)
	for _, vi := range im.cfg.VRRPInstances {
		off(&vi.Meta, "alert", &vi.Alert, viOn)
	}
	for _, g := range im.cfg.VRRPSyncGroups {
		off(&g.Meta, "alert", &g.Alert, viOn)
	}
}
