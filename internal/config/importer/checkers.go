package importer

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// checkScope holds the checker settings a virtual or real server passes down
// to its checkers: keepalived's virtual server settings are the real
// servers' defaults, and theirs the checkers'.
type checkScope struct {
	delayLoop, connectTimeout, delayBeforeRetry opt[config.Duration]
	retry                                       opt[int]
	virtualhost                                 opt[string]
}

// keep replaces *dst with v when v was read without error.
func keep[T any](dst *opt[T], v opt[T]) {
	if v.set {
		*dst = v
	}
}

// orDefault is v, or def at p when v was not written.
func orDefault[T any](v opt[T], def T, p config.Pos) opt[T] {
	if v.set {
		return v
	}
	return some(def, p)
}

var scopeOptions = block[*checkScope]{
	"delay_loop": func(im *importer, sc *checkScope, c *keepalived.Node) { keep(&sc.delayLoop, im.seconds(c, 0)) },
	"connect_timeout": func(im *importer, sc *checkScope, c *keepalived.Node) {
		d := im.seconds(c, 0)
		if d.set && d.v == 0 {
			d.v = config.Duration(time.Second) // as keepalived: no 0 timeout
		}
		keep(&sc.connectTimeout, d)
	},
	"delay_before_retry": func(im *importer, sc *checkScope, c *keepalived.Node) {
		keep(&sc.delayBeforeRetry, im.seconds(c, 0))
	},
	"retry":        func(im *importer, sc *checkScope, c *keepalived.Node) { keep(&sc.retry, im.integer(c, 0)) },
	"nb_get_retry": func(im *importer, sc *checkScope, c *keepalived.Node) { keep(&sc.retry, im.integer(c, 0)) },
	"virtualhost":  func(im *importer, sc *checkScope, c *keepalived.Node) { keep(&sc.virtualhost, im.str(c)) },
}

// scopeOption reads a checker default written on a virtual, real server or
// checker.
func (im *importer) scopeOption(sc *checkScope, c *keepalived.Node) { scopeOptions.apply(im, sc, c) }

// checkerTypes are keepalived's checkers and the govs check types.
var checkerTypes = map[string]string{
	"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "SMTP_CHECK": "smtp", "DNS_CHECK": "dns",
	"MISC_CHECK": "script", "UDP_CHECK": "udp", "PING_CHECK": "ping", "FILE_CHECK": "file",
}

// ckBlock is a checker block being read.
type ckBlock struct {
	hc          *config.HealthCheck
	sc          checkScope
	urls        []*keepalived.Node
	direct      []*keepalived.Node // SMTP_CHECK's connect_ip and bindto outside host blocks
	miscTimeout opt[config.Duration]
}

func scope(im *importer, b *ckBlock, c *keepalived.Node) { im.scopeOption(&b.sc, c) }

// checkerOptions are the keywords of a checker block: "KEYWORD" for every
// check type, "TYPE KEYWORD" for one (govs's type names: http, dns, ...).
var checkerOptions = block[*ckBlock]{
	"delay_loop":         scope,
	"retry":              scope,
	"nb_get_retry":       scope,
	"delay_before_retry": scope,
	"connect_timeout": func(im *importer, b *ckBlock, c *keepalived.Node) {
		if b.hc.Type == "script" {
			im.ignored(c)
			return
		}
		scope(im, b, c)
	},
	"connect_port": func(im *importer, b *ckBlock, c *keepalived.Node) {
		if b.hc.Type == "script" || b.hc.Type == "ping" {
			im.ignored(c)
			return
		}
		set(&b.hc.Meta, "port", &b.hc.Port, im.integer(c, 0))
	},
	"connect_ip": func(im *importer, b *ckBlock, c *keepalived.Node) {
		if b.hc.Type == "smtp" {
			b.direct = append(b.direct, c) // the check's own host, below
			return
		}
		im.ignoredWhy(c, "govs checks the real server's own address")
	},
	"smtp bindto": func(_ *importer, b *ckBlock, c *keepalived.Node) { b.direct = append(b.direct, c) },

	"http url":          func(_ *importer, b *ckBlock, c *keepalived.Node) { b.urls = append(b.urls, c) },
	"https url":         func(_ *importer, b *ckBlock, c *keepalived.Node) { b.urls = append(b.urls, c) },
	"http virtualhost":  scope,
	"https virtualhost": scope,
	"https sni_name":    func(im *importer, b *ckBlock, c *keepalived.Node) { set(&b.hc.Meta, "sni", &b.hc.SNI, im.str(c)) },
	"https enable_sni":  func(*importer, *ckBlock, *keepalived.Node) {}, // govs always sends the host (or sni) as SNI.
	"smtp host": func(im *importer, b *ckBlock, c *keepalived.Node) {
		h := &config.HealthHost{}
		h.Pos = here(c)
		smtpHostOptions.read(im, h, c)
		b.hc.Hosts = append(b.hc.Hosts, h)
		if !b.hc.Has("hosts") {
			b.hc.SetKey("hosts", here(c))
		}
	},
	"smtp helo_name": func(im *importer, b *ckBlock, c *keepalived.Node) {
		set(&b.hc.Meta, "helo_name", &b.hc.HeloName, im.str(c))
	},
	"dns type": func(im *importer, b *ckBlock, c *keepalived.Node) {
		s := im.str(c)
		s.v = strings.ToUpper(s.v)
		set(&b.hc.Meta, "query_type", &b.hc.QueryType, s)
	},
	"dns name": func(im *importer, b *ckBlock, c *keepalived.Node) {
		set(&b.hc.Meta, "query_name", &b.hc.QueryName, im.str(c))
	},
	"script misc_path": func(im *importer, b *ckBlock, c *keepalived.Node) {
		if _, ok := im.value(c, 0); !ok || !im.utf8Args(c, 0, len(c.Args)) {
			return
		}
		words := c.Args
		if len(words) == 1 {
			words = splitWords(words[0])
		}
		set(&b.hc.Meta, "command", &b.hc.Command, some(shellJoin(words), at(c, 0)))
	},
	"script misc_timeout": func(im *importer, b *ckBlock, c *keepalived.Node) { b.miscTimeout = im.seconds(c, 0) },
	"script misc_dynamic": func(_ *importer, b *ckBlock, c *keepalived.Node) {
		set(&b.hc.Meta, "dynamic", &b.hc.Dynamic, present(c))
	},
	"udp payload": func(im *importer, b *ckBlock, c *keepalived.Node) {
		if _, ok := im.value(c, 0); ok {
			set(&b.hc.Meta, "payload", &b.hc.Payload, some(strings.Join(c.Args, " "), at(c, 0)))
		}
	},
	"udp require_reply": func(_ *importer, b *ckBlock, c *keepalived.Node) {
		set(&b.hc.Meta, "require_reply", &b.hc.RequireReply, present(c))
		if len(c.Args) > 0 {
			set(&b.hc.Meta, "expect_reply", &b.hc.ExpectReply, some(strings.Join(c.Args, " "), at(c, 0)))
		}
	},
}

// smtpHostOptions are the keywords of an SMTP_CHECK host block.
var smtpHostOptions = block[*config.HealthHost]{
	"connect_ip": func(im *importer, h *config.HealthHost, c *keepalived.Node) {
		set(&h.Meta, "address", &h.Address, im.hostIP(c, c.Arg(0), c.ArgPosition(0)))
	},
	"connect_port": func(im *importer, h *config.HealthHost, c *keepalived.Node) {
		set(&h.Meta, "port", &h.Port, im.integer(c, 0))
	},
	"bindto": func(im *importer, h *config.HealthHost, c *keepalived.Node) {
		set(&h.Meta, "bind", &h.Bind, im.hostIP(c, c.Arg(0), c.ArgPosition(0)))
	},
}

// checker maps one checker block. keepalived has no rise and fall: a checker
// takes a server down at its first failed check (after its retries) and up at
// its first passing one, so the check gets rise 1 and fall 1. keepalived's
// defaults that differ from govs's are written out: delay_loop 60s,
// connect_timeout 5s, retry 1 (DNS_CHECK 3, MISC_CHECK 0), delay_before_retry
// 3s for HTTP_GET and SSL_GET and the delay_loop for DNS_CHECK.
func (im *importer) checker(n *keepalived.Node, sc checkScope) *config.HealthCheck {
	typ := checkerTypes[n.Keyword]
	pos := here(n)
	hc := &config.HealthCheck{Type: typ}
	hc.Pos = pos
	hc.SetKey("type", pos)
	set(&hc.Meta, "rise", &hc.Rise, some(1, pos))
	set(&hc.Meta, "fall", &hc.Fall, some(1, pos))
	if typ == "file" {
		im.fileCheck(hc, n)
		return hc
	}
	b := &ckBlock{hc: hc, sc: sc}
	for _, c := range n.Children {
		if !checkerOptions.apply(im, b, c) && !checkerOptions.applyAs(im, b, typ+" "+c.Keyword, c) {
			im.ignored(c)
		}
	}
	sc = b.sc
	if len(b.direct) > 0 {
		// keepalived's SMTP_CHECK with connect_ip or bindto checks that
		// host, and each host block as a further checker (check_smtp.c):
		// the check's own host comes first.
		h := &config.HealthHost{}
		h.Pos = here(b.direct[0])
		for _, c := range b.direct {
			smtpHostOptions.apply(im, h, c)
		}
		set(&hc.Meta, "hosts", &hc.Hosts, some(append([]*config.HealthHost{h}, hc.Hosts...), h.Pos))
	}

	interval := orDefault(sc.delayLoop, config.Duration(60*time.Second), pos)
	set(&hc.Meta, "interval", &hc.Interval, interval)
	if typ == "script" {
		set(&hc.Meta, "timeout", &hc.Timeout, b.miscTimeout) // else the interval, in keepalived as in govs
	} else {
		set(&hc.Meta, "timeout", &hc.Timeout, orDefault(sc.connectTimeout, config.Duration(5*time.Second), pos))
	}
	retry := sc.retry
	switch {
	case retry.set, typ == "script":
	case typ == "dns":
		retry = some(3, pos)
	default:
		retry = some(1, pos)
	}
	setPtr(&hc.Meta, "retry", &hc.Retry, retry)
	delay := sc.delayBeforeRetry
	switch {
	case delay.set:
	case typ == "http" || typ == "https":
		delay = some(config.Duration(3*time.Second), pos)
	case typ == "dns":
		delay = some(interval.v, pos)
	}
	set(&hc.Meta, "delay_before_retry", &hc.DelayBeforeRetry, delay)
	if typ == "http" || typ == "https" {
		host := sc.virtualhost
		if len(b.urls) == 1 {
			if h := im.url(hc, b.urls[0]); h.set {
				host = h
			}
		} else if len(b.urls) > 1 {
			// keepalived checks every url: the check's urls.
			var urls []*config.HealthURL
			for _, u := range b.urls {
				urls = append(urls, im.healthURL(u))
			}
			set(&hc.Meta, "urls", &hc.URLs, some(urls, here(b.urls[0])))
		}
		set(&hc.Meta, "host", &hc.Host, host)
	}
	return hc
}

// url maps the one url block of a check onto its path, expect_status and
// expect_digest; it returns the url's virtualhost.
func (im *importer) url(hc *config.HealthCheck, u *keepalived.Node) opt[string] {
	hu := im.healthURL(u)
	set(&hc.Meta, "path", &hc.Path, some(hu.Path, hu.At("path")))
	if hu.Has("expect_digest") {
		set(&hc.Meta, "expect_digest", &hc.ExpectDigest, some(hu.ExpectDigest, hu.At("expect_digest")))
	}
	if hu.ExpectStatus != nil {
		set(&hc.Meta, "expect_status", &hc.ExpectStatus, some(hu.ExpectStatus, hu.At("expect_status")))
	}
	if hu.Has("host") {
		return some(hu.Host, hu.At("host"))
	}
	return opt[string]{}
}

// healthURL maps a url block: path, digest, status_code, virtualhost.
func (im *importer) healthURL(u *keepalived.Node) *config.HealthURL {
	hu := &config.HealthURL{}
	hu.Pos = here(u)
	for _, c := range u.Children {
		switch c.Keyword {
		case "path":
			set(&hu.Meta, "path", &hu.Path, im.str(c))
		case "digest":
			s := im.str(c)
			s.v = strings.ToLower(s.v)
			set(&hu.Meta, "expect_digest", &hu.ExpectDigest, s)
		case "status_code":
			if codes, ok := im.statusCodes(c); ok && codes != nil {
				set(&hu.Meta, "expect_status", &hu.ExpectStatus, some(codes, at(c, 0)))
			}
		case "virtualhost":
			set(&hu.Meta, "host", &hu.Host, im.str(c))
		default:
			im.ignored(c)
		}
	}
	return hu
}

// statusCodes reads status_code CODE|FIRST-LAST ...; exactly 200-299, which
// is keepalived's and govs's default, gives nil.
func (im *importer) statusCodes(c *keepalived.Node) ([]int, bool) {
	if _, ok := im.value(c, 0); !ok {
		return nil, false
	}
	seen := map[int]bool{}
	for i, a := range c.Args {
		lo, hi, isRange := strings.Cut(a, "-")
		first, err1 := strconv.Atoi(lo)
		last, err2 := first, error(nil)
		if isRange {
			last, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || first < 0 || last < first || last-first > maxStatusRanges {
			im.errorf(c.ArgPosition(i), "status_code: invalid status or range %q", a)
			return nil, false
		}
		for code := first; code <= last; code++ {
			seen[code] = true
		}
	}
	if len(seen) > maxStatusRanges {
		im.errorf(c.ArgPosition(0), "status_code: more than %d status codes", maxStatusRanges)
		return nil, false
	}
	codes := make([]int, 0, len(seen))
	for code := range seen {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	if len(codes) == 100 && codes[0] == 200 && codes[99] == 299 {
		return nil, true
	}
	return codes, true
}

type trackFile struct {
	file    opt[string]
	weight  opt[int]
	reverse bool
}

// fileCheck maps FILE_CHECK { track_file NAME; weight N [reverse]; dynamic }.
func (im *importer) fileCheck(hc *config.HealthCheck, n *keepalived.Node) {
	var weight opt[int]
	reverse := false
	for _, c := range n.Children {
		switch c.Keyword {
		case "track_file":
			name, ok := im.value(c, 0)
			if !ok {
				continue
			}
			tf := im.trackFiles[name]
			if tf == nil {
				im.errorf(c.ArgPosition(0), "FILE_CHECK: no track_file %q is defined", name)
				continue
			}
			set(&hc.Meta, "file", &hc.File, tf.file)
			if tf.weight.set && !weight.set {
				weight, reverse = tf.weight, tf.reverse
			}
		case "weight":
			if weight = im.integer(c, 0); weight.set {
				reverse = c.Arg(1) == "reverse"
			}
		case "dynamic":
			set(&hc.Meta, "dynamic", &hc.Dynamic, present(c))
		default:
			im.ignored(c)
		}
	}
	if reverse {
		weight.v = -weight.v
	}
	setPtr(&hc.Meta, "file_weight", &hc.FileWeight, weight)
}

// trackFile reads a top-level track_file NAME { file PATH; weight N [reverse]; init_file }.
func (im *importer) trackFile(n *keepalived.Node) {
	tf := &trackFile{}
	for _, c := range n.Children {
		switch c.Keyword {
		case "file":
			tf.file = im.str(c)
		case "weight":
			if tf.weight = im.integer(c, 0); tf.weight.set {
				tf.reverse = c.Arg(1) == "reverse"
			}
		default:
			im.ignored(c)
		}
	}
	define(im, n, "track_file", im.trackFiles, tf)
}
