package importer

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

// opt is a value read from a keepalived line, with the place it was written.
type opt[T any] struct {
	v   T
	pos config.Pos
	set bool
}

func some[T any](v T, p config.Pos) opt[T] { return opt[T]{v: v, pos: p, set: true} }

// set is the one setter behind every mapped option: when v was read without
// error, it stores it in *dst and records its place as the YAML key's, as
// the YAML decoder does, so that Validate's errors point at the keepalived
// line. It reports whether it set anything.
func set[T any](m *config.Meta, key string, dst *T, v opt[T]) bool {
	if !v.set {
		return false
	}
	*dst = v.v
	m.SetKey(key, v.pos)
	return true
}

// setPtr is set for the optional fields the model holds as pointers; each
// gets its own copy of the value.
func setPtr[T any](m *config.Meta, key string, dst **T, v opt[T]) bool {
	if !v.set {
		return false
	}
	*dst = &v.v
	m.SetKey(key, v.pos)
	return true
}

// A block maps the keywords of one kind of keepalived block onto T, the
// model value (or the importer's state) the block fills: keyword to setter.
type block[T any] map[string]func(im *importer, t T, c *keepalived.Node)

// apply runs c's setter, reporting whether the block knows c's keyword.
func (b block[T]) apply(im *importer, t T, c *keepalived.Node) bool {
	return b.applyAs(im, t, c.Keyword, c)
}

// read applies the block's setters to n's children; a keyword it does not
// know has no govs equivalent, and a warning says so.
func (b block[T]) read(im *importer, t T, n *keepalived.Node) {
	for _, c := range n.Children {
		if !b.apply(im, t, c) {
			im.ignored(c)
		}
	}
}

// named gives the model value of a NAME { ... } block its place, and its
// name's.
func named(m *config.Meta, n *keepalived.Node) {
	m.Pos = here(n)
	if len(n.Args) > 0 {
		m.SetKey("name", at(n, 0))
	}
}

// applyAs runs the setter of key on c, reporting whether there is one.
func (b block[T]) applyAs(im *importer, t T, key string, c *keepalived.Node) bool {
	f, ok := b[key]
	if ok {
		f(im, t, c)
	}
	return ok
}

// Values.

func at(n *keepalived.Node, i int) config.Pos { return config.Pos(n.ArgPosition(i)) }

// here is the place of n's keyword.
func here(n *keepalived.Node) config.Pos { return config.Pos(n.Pos) }

// value returns argument i of n, or reports that it is missing.
func (im *importer) value(n *keepalived.Node, i int) (string, bool) {
	if i < len(n.Args) {
		return n.Args[i], true
	}
	im.errorf(n.ArgPosition(i), "%s needs a value", n.Keyword)
	return "", false
}

func (im *importer) str(n *keepalived.Node) opt[string] {
	s, ok := im.value(n, 0)
	if !ok {
		return opt[string]{}
	}
	return some(s, at(n, 0))
}

func (im *importer) integer(n *keepalived.Node, i int) opt[int] {
	s, ok := im.value(n, i)
	if !ok {
		return opt[int]{}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		im.errorf(n.ArgPosition(i), "%s: %q is not a whole number", n.Keyword, s)
		return opt[int]{}
	}
	return some(v, at(n, i))
}

var secondsRe = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)

// seconds reads keepalived's timers: seconds, with decimals.
func (im *importer) seconds(n *keepalived.Node, i int) opt[config.Duration] {
	s, ok := im.value(n, i)
	if !ok {
		return opt[config.Duration]{}
	}
	d, err := time.ParseDuration(s + "s")
	if !secondsRe.MatchString(s) || err != nil {
		im.errorf(n.ArgPosition(i), "%s: %q is not a number of seconds", n.Keyword, s)
		return opt[config.Duration]{}
	}
	return some(config.Duration(d), at(n, i))
}

// boolean reads keepalived's optional <BOOL>: none means true.
func (im *importer) boolean(n *keepalived.Node) opt[bool] {
	if len(n.Args) == 0 {
		return some(true, here(n))
	}
	switch strings.ToLower(n.Args[0]) {
	case "true", "on", "yes":
		return some(true, at(n, 0))
	case "false", "off", "no":
		return some(false, at(n, 0))
	}
	im.errorf(n.ArgPosition(0), "%s: %q is not true or false", n.Keyword, n.Args[0])
	return opt[bool]{}
}

// present is for a keyword whose presence means true.
func present(n *keepalived.Node) opt[bool] { return some(true, here(n)) }

// endpoint reads IP [PORT] at argument i; a port of 0 or none is no port.
func (im *importer) endpoint(n *keepalived.Node, i int, zeroPort bool) opt[config.Endpoint] {
	s, ok := im.value(n, i)
	if !ok {
		return opt[config.Endpoint]{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		im.errorf(n.ArgPosition(i), "%s: invalid IP address %q", n.Keyword, s)
		return opt[config.Endpoint]{}
	}
	ep := config.Endpoint{Addr: a.Unmap()}
	if i+1 < len(n.Args) {
		p, err := strconv.ParseUint(n.Args[i+1], 10, 16)
		if err != nil {
			im.errorf(n.ArgPosition(i+1), "%s: invalid port %q (0-65535)", n.Keyword, n.Args[i+1])
			return opt[config.Endpoint]{}
		}
		if p != 0 || zeroPort {
			ep.Port, ep.HasPort = uint16(p), true
		}
	}
	return some(ep, at(n, i))
}

// Scripts. Health check commands (notify_up, quorum_up, misc_path, ...) run
// with /bin/sh -c in govs, while keepalived splits them into words itself and
// runs them directly: the importer splits them as keepalived does and quotes
// each word for the shell, so that the same program gets the same arguments.
// VRRP scripts run directly in govs too, with keepalived's splitting, and are
// kept as written.

// splitWords splits a command as keepalived does (SplitCommand); a line
// with an unterminated quote falls back to blank-separated words, as the
// importer maps what it can and the checker's own run reports the rest.
func splitWords(s string) []string {
	words, err := config.SplitCommand(s)
	if err != nil {
		return strings.Fields(s)
	}
	return words
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellJoin quotes words for /bin/sh.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if shellSafe.MatchString(w) {
			q[i] = w
		} else {
			q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// commandJoin quotes words for keepalived's (and govs's VRRP) splitting.
func commandJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		switch {
		case w != "" && !strings.ContainsAny(w, " \t\n'\"\\"):
			q[i] = w
		case !strings.Contains(w, "'"):
			q[i] = "'" + w + "'"
		default:
			q[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
		}
	}
	return strings.Join(q, " ")
}

// shellScript reads a checker notify or quorum script:
// SCRIPT [username [:][groupname]].
func (im *importer) shellScript(n *keepalived.Node) opt[string] {
	s := im.vrrpCommand(n)
	if !s.set || !im.utf8Args(n, 0, 1) {
		return opt[string]{}
	}
	s.v = shellJoin(splitWords(s.v))
	return s
}

// vrrpCommand reads a VRRP notify script: SCRIPT [username [:][groupname]].
func (im *importer) vrrpCommand(n *keepalived.Node) opt[string] {
	s := im.str(n)
	if s.set && len(n.Args) > 1 {
		im.warnf(n.ArgPosition(1), "%s's user %s has no govs equivalent (ignored): every script runs as script_user",
			n.Keyword, strings.Join(n.Args[1:], " "))
	}
	return s
}
