package config

// The keepalived.conf importer: it maps the syntax tree of package keepalived
// onto the govs model, keeping every value's position in the keepalived file
// so that Validate's errors point there, and warns about every option it
// cannot map. docs/keepalived.md describes the mapping keyword by keyword.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/govs-lb/govs/internal/config/keepalived"
)

// Configuration formats for LoadAny.
const (
	FormatAuto       = "auto"
	FormatYAML       = "yaml"
	FormatKeepalived = "keepalived"
)

// LoadOptions say how LoadAny reads a file.
type LoadOptions struct {
	// Format is auto (or empty), yaml or keepalived. Auto decides with
	// DetectFormat.
	Format string
	// ConfigID is keepalived's -i/--config-id: the id that @ID lines of a
	// keepalived.conf are compared with. Empty: the host name up to its
	// first dot, as keepalived.
	ConfigID string

	fsys fs.FS // tests: where keepalived includes are read from
}

// A Warning is something a configuration says that govs reads but does not
// apply, such as a keepalived option with no govs equivalent.
type Warning struct {
	Pos Pos
	Msg string
}

// String returns "FILE:LINE:COL: warning: MESSAGE".
func (w Warning) String() string { return w.Pos.String() + ": warning: " + w.Msg }

// LoadAny reads a govs YAML file or a keepalived.conf, as opts.Format says,
// and validates it. The warnings are those of a keepalived.conf: options with
// no govs equivalent. Errors are an ErrorList naming FILE:LINE:COL, in the
// keepalived file for a keepalived.conf.
func LoadAny(path string, opts LoadOptions) (*Config, []Warning, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read configuration: %w", err)
	}
	format := opts.Format
	if format == "" || format == FormatAuto {
		format = DetectFormat(src)
	}
	switch format {
	case FormatYAML:
		c, err := Parse(path, src)
		return c, nil, err
	case FormatKeepalived:
		return ParseKeepalived(path, src, opts)
	}
	return nil, nil, fmt.Errorf("unknown configuration format %q (auto, yaml or keepalived)", opts.Format)
}

var yamlKeyLine = regexp.MustCompile(`^("[^"]*"|'[^']*'|[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*:([ \t]|$)`)

// DetectFormat tells a govs YAML file from a keepalived.conf by its first
// line that is neither blank nor a comment (# or !): the file is YAML when
// that line is a mapping key (KEY: or KEY: value), a document start (---), a
// directive (%), a flow mapping ({) or a list item (- ); it is keepalived
// otherwise, since keepalived lines are KEYWORD [ARGS] [{] and a keyword never
// ends with a colon. A file with no such line is YAML (and an error: empty).
// Deciding on the first line only, a YAML file with a syntax error further
// down is still reported as YAML.
func DetectFormat(src []byte) string {
	for _, line := range strings.Split(strings.TrimPrefix(string(src), "\ufeff"), "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "" || l[0] == '#' || l[0] == '!':
			continue
		case strings.HasPrefix(l, "---") || l[0] == '%' || l[0] == '{' || l == "-" || strings.HasPrefix(l, "- "),
			yamlKeyLine.MatchString(l):
			return FormatYAML
		}
		return FormatKeepalived
	}
	return FormatYAML
}

// ParseKeepalived reads src, the keepalived.conf named file (its includes are
// read relative to file's directory), maps it onto the model and validates
// it.
func ParseKeepalived(file string, src []byte, opts LoadOptions) (*Config, []Warning, error) {
	c, warns, errs := importSource(file, src, opts)
	if c == nil {
		return nil, warns, errs.err()
	}
	errs = appendErrs(errs, c.Validate())
	if len(errs) > 0 {
		return nil, warns, errs.err()
	}
	return c, warns, nil
}

// ConvertKeepalived is what govs convert prints: the govs YAML equivalent of
// the keepalived.conf src, or the errors that keep it from loading. The YAML
// holds what the keepalived file says, not govs's defaults, and loads back
// with Load to the same model as ParseKeepalived's.
func ConvertKeepalived(file string, src []byte, opts LoadOptions) ([]byte, []Warning, error) {
	c, warns, errs := importSource(file, src, opts)
	if c == nil {
		return nil, warns, errs.err()
	}
	out, err := EncodeYAML(c)
	if err != nil {
		return nil, warns, err
	}
	errs = appendErrs(errs, c.Validate())
	if len(errs) > 0 {
		return nil, warns, errs.err()
	}
	return out, warns, nil
}

// importSource parses and imports; the model is nil when the file could not
// be parsed.
func importSource(file string, src []byte, opts LoadOptions) (*Config, []Warning, ErrorList) {
	f, err := keepalived.Parse(file, src, keepalived.Options{ConfigID: opts.ConfigID, FS: opts.fsys})
	var warns []Warning
	for _, w := range f.Warnings {
		warns = append(warns, Warning{Pos: Pos(w.Pos), Msg: w.Msg})
	}
	if err != nil {
		var errs ErrorList
		var kl keepalived.ErrorList
		if errors.As(err, &kl) {
			for _, e := range kl {
				errs = append(errs, Error{Pos: Pos(e.Pos), Msg: e.Msg})
			}
		} else {
			errs.add(Pos{File: file}, "%v", err)
		}
		return nil, warns, errs
	}
	c, w, errs := ImportKeepalived(f)
	return c, append(warns, w...), errs
}

func appendErrs(errs ErrorList, err error) ErrorList {
	if err == nil {
		return errs
	}
	var l ErrorList
	if errors.As(err, &l) {
		return append(errs, l...)
	}
	return append(errs, Error{Msg: err.Error()})
}

// markKey records that key was written at p, as the YAML decoder does, so
// that a model built by the importer reports errors at the keepalived line.
func (m *Meta) markKey(key string, p Pos) {
	if m.keys == nil {
		m.keys = map[string]Pos{}
	}
	m.keys[key] = p
}

// opt is a value read from a keepalived line, with the place it was written.
type opt[T any] struct {
	v   T
	pos Pos
	set bool
}

func some[T any](v T, p Pos) opt[T] { return opt[T]{v: v, pos: p, set: true} }

// checkScope holds the checker settings a virtual or real server passes down
// to its checkers: keepalived's virtual server settings are the real
// servers' defaults, and theirs the checkers'.
type checkScope struct {
	delayLoop, connectTimeout, delayBeforeRetry opt[Duration]
	retry                                       opt[int]
	virtualhost                                 opt[string]
}

// globals are the global_defs that become defaults of other sections.
type globals struct {
	tcpTimeout, udpTimeout        opt[Duration]
	vrrpVersion                   opt[int]
	garpDelay, garpRefresh        opt[Duration]
	garpRepeat, garpRefreshRepeat opt[int]
	lowerPrioNoAdvert             opt[bool]
	defaultInterface              opt[string]
}

type trackFile struct {
	file    opt[string]
	weight  opt[int]
	reverse bool
}

type groupMember struct {
	addr Endpoint
	pos  Pos
}

type orderedWarning struct {
	top int
	w   Warning
}

type importer struct {
	cfg    *Config
	warns  []orderedWarning
	errs   ErrorList
	quiet  bool // importing a group's second and later addresses: no messages
	top    int  // the top-level node being imported, to keep warnings in file order
	lvsTop int  // the global_defs of lvs_timeouts

	groups     map[string]*keepalived.Node
	members    map[string][]groupMember
	scripts    map[string]*TrackScript
	trackFiles map[string]*trackFile
	glob       globals
}

// Limits that keep a small file from expanding into a huge model.
const (
	maxGroupAddrs   = 4096 // addresses of one virtual_server_group
	maxStatusRanges = 500  // status codes of one status_code
)

// ImportKeepalived maps a parsed keepalived configuration onto the govs
// model. It does not validate the model: Validate does, and its errors point
// into the keepalived file. The warnings name every option that has no govs
// equivalent; the errors, what cannot be mapped at all (such as lb_kind DR).
func ImportKeepalived(f *keepalived.File) (*Config, []Warning, ErrorList) {
	im := &importer{
		cfg:        &Config{File: f.Name},
		groups:     map[string]*keepalived.Node{},
		members:    map[string][]groupMember{},
		scripts:    map[string]*TrackScript{},
		trackFiles: map[string]*trackFile{},
	}
	im.cfg.Pos = Pos{File: f.Name, Line: 1, Col: 1}
	// Definitions first: keepalived reads the whole file before it applies
	// global defaults, groups, scripts and tracked files.
	for i, n := range f.Nodes {
		im.top = i
		switch n.Keyword {
		case "global_defs":
			im.globalDefs(n)
		case "virtual_server_group":
			im.define(n, "virtual_server_group", func(name string) bool {
				if im.groups[name] != nil {
					return false
				}
				im.groups[name] = n
				return true
			})
		case "vrrp_script":
			im.vrrpScript(n)
		case "track_file", "vrrp_track_file":
			im.trackFile(n)
		}
	}
	for i, n := range f.Nodes {
		im.top = i
		switch n.Keyword {
		case "global_defs", "virtual_server_group", "vrrp_script", "track_file", "vrrp_track_file":
		case "virtual_server":
			im.virtualServer(n)
		case "vrrp_instance":
			im.vrrpInstance(n)
		case "vrrp_sync_group":
			im.syncGroup(n)
		default:
			im.ignored(n)
		}
	}
	im.lvsTimeouts()
	sort.SliceStable(im.warns, func(i, j int) bool { return im.warns[i].top < im.warns[j].top })
	warns := make([]Warning, len(im.warns))
	for i, w := range im.warns {
		warns[i] = w.w
	}
	return im.cfg, warns, im.errs
}

// Messages.

func (im *importer) warnf(p keepalived.Position, format string, args ...any) {
	if !im.quiet {
		im.warns = append(im.warns, orderedWarning{im.top, Warning{Pos: Pos(p), Msg: fmt.Sprintf(format, args...)}})
	}
}

func (im *importer) errorf(p keepalived.Position, format string, args ...any) {
	if !im.quiet {
		im.errs.add(Pos(p), format, args...)
	}
}

// ignored warns that n's keyword has no govs equivalent.
func (im *importer) ignored(n *keepalived.Node) {
	im.warnf(n.Pos, "%s has no govs equivalent (ignored)", n.Keyword)
}

// ignoredWhy warns likewise, saying why.
func (im *importer) ignoredWhy(n *keepalived.Node, why string) {
	im.warnf(n.Pos, "%s has no govs equivalent (ignored): %s", n.Keyword, why)
}

// Values.

func at(n *keepalived.Node, i int) Pos { return Pos(n.ArgPosition(i)) }

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
func (im *importer) seconds(n *keepalived.Node, i int) opt[Duration] {
	s, ok := im.value(n, i)
	if !ok {
		return opt[Duration]{}
	}
	d, err := time.ParseDuration(s + "s")
	if !secondsRe.MatchString(s) || err != nil {
		im.errorf(n.ArgPosition(i), "%s: %q is not a number of seconds", n.Keyword, s)
		return opt[Duration]{}
	}
	return some(Duration(d), at(n, i))
}

// boolean reads keepalived's optional <BOOL>: none means true.
func (im *importer) boolean(n *keepalived.Node) opt[bool] {
	if len(n.Args) == 0 {
		return some(true, Pos(n.Pos))
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

// endpoint reads IP [PORT] at argument i; a port of 0 or none is no port.
func (im *importer) endpoint(n *keepalived.Node, i int, zeroPort bool) (Endpoint, bool) {
	s, ok := im.value(n, i)
	if !ok {
		return Endpoint{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		im.errorf(n.ArgPosition(i), "%s: invalid IP address %q", n.Keyword, s)
		return Endpoint{}, false
	}
	ep := Endpoint{Addr: a.Unmap()}
	if i+1 < len(n.Args) {
		p, err := strconv.ParseUint(n.Args[i+1], 10, 16)
		if err != nil {
			im.errorf(n.ArgPosition(i+1), "%s: invalid port %q (0-65535)", n.Keyword, n.Args[i+1])
			return Endpoint{}, false
		}
		if p != 0 || zeroPort {
			ep.Port, ep.HasPort = uint16(p), true
		}
	}
	return ep, true
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
	words, err := SplitCommand(s)
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
	s, ok := im.value(n, 0)
	if !ok {
		return opt[string]{}
	}
	im.scriptUser(n)
	return some(shellJoin(splitWords(s)), at(n, 0))
}

// vrrpCommand reads a VRRP notify script: SCRIPT [username [:][groupname]].
func (im *importer) vrrpCommand(n *keepalived.Node) opt[string] {
	s, ok := im.value(n, 0)
	if !ok {
		return opt[string]{}
	}
	im.scriptUser(n)
	return some(s, at(n, 0))
}

func (im *importer) scriptUser(n *keepalived.Node) {
	if len(n.Args) > 1 {
		im.warnf(n.ArgPosition(1), "%s's user %s has no govs equivalent (ignored): govs runs scripts as its own user",
			n.Keyword, strings.Join(n.Args[1:], " "))
	}
}

// global_defs

func (im *importer) globalDefs(n *keepalived.Node) {
	g := &im.glob
	for _, c := range n.Children {
		switch c.Keyword {
		case "vrrp_version":
			g.vrrpVersion = im.integer(c, 0)
		case "vrrp_garp_master_delay":
			g.garpDelay = im.seconds(c, 0)
		case "vrrp_garp_master_repeat":
			g.garpRepeat = im.integer(c, 0)
		case "vrrp_garp_master_refresh":
			g.garpRefresh = im.seconds(c, 0)
		case "vrrp_garp_master_refresh_repeat":
			g.garpRefreshRepeat = im.integer(c, 0)
		case "vrrp_lower_prio_no_advert":
			g.lowerPrioNoAdvert = im.boolean(c)
		case "vrrp_min_garp":
			// One gratuitous ARP, no second burst 5 s later.
			if b := im.boolean(c); b.set && b.v {
				g.garpRepeat, g.garpDelay = some(1, b.pos), some(Duration(0), b.pos)
			}
		case "default_interface":
			g.defaultInterface = im.str(c)
		case "lvs_timeouts":
			im.lvsTimeoutsLine(c)
		default:
			im.ignored(c)
		}
	}
}

// lvsTimeoutsLine reads lvs_timeouts [tcp N] [tcpfin N] [udp N].
func (im *importer) lvsTimeoutsLine(n *keepalived.Node) {
	im.lvsTop = im.top
	for i := 0; i < len(n.Args); i += 2 {
		if i+1 >= len(n.Args) {
			im.errorf(n.ArgPosition(i+1), "lvs_timeouts %s needs a value", n.Args[i])
			return
		}
		switch n.Args[i] {
		case "tcp":
			im.glob.tcpTimeout = im.seconds(n, i+1)
		case "udp":
			im.glob.udpTimeout = im.seconds(n, i+1)
		case "tcpfin":
			im.warnf(n.ArgPosition(i), "lvs_timeouts tcpfin has no govs equivalent (ignored)")
		default:
			im.errorf(n.ArgPosition(i), "lvs_timeouts: unknown timeout %q (tcp, tcpfin or udp)", n.Args[i])
		}
	}
}

// lvsTimeouts applies lvs_timeouts tcp and udp as the idle_timeout of every
// virtual server of that protocol.
// Forwarding nat leaves idle flows to conntrack's timeouts, so the value
// only matters once a service is switched to proxy: a warning says so.
func (im *importer) lvsTimeouts() {
	warned := map[Pos]bool{}
	for _, vs := range im.cfg.VirtualServers {
		t, proto := im.glob.tcpTimeout, "tcp"
		if vs.Protocol == UDP {
			t, proto = im.glob.udpTimeout, "udp"
		}
		if !t.set {
			continue
		}
		vs.IdleTimeout = t.v
		vs.markKey("idle_timeout", t.pos)
		if vs.Forwarding == NAT && !warned[t.pos] {
			warned[t.pos] = true
			im.warns = append(im.warns, orderedWarning{im.lvsTop, Warning{Pos: t.pos, Msg: fmt.Sprintf(
				"lvs_timeouts %s has no effect with forwarding nat, where the kernel's conntrack timeouts apply "+
					"(kept as idle_timeout, used by forwarding proxy)", proto)}})
		}
	}
}

// define registers the named definition n, reporting a missing or
// duplicate name.
func (im *importer) define(n *keepalived.Node, what string, add func(name string) bool) {
	name, ok := im.value(n, 0)
	if !ok {
		return
	}
	if !add(name) {
		im.errorf(n.ArgPosition(0), "duplicate %s %q", what, name)
	}
}

// virtual_server

func (im *importer) virtualServer(n *keepalived.Node) {
	switch n.Arg(0) {
	case "fwmark":
		im.warnf(n.Pos, "virtual_server fwmark has no govs equivalent (ignored): govs has no firewall-mark services; "+
			"write one virtual server per address and port")
		return
	case "group":
		name, ok := im.value(n, 1)
		if !ok {
			return
		}
		g := im.groups[name]
		if g == nil {
			im.errorf(n.ArgPosition(1), "virtual_server group %s: no virtual_server_group %q is defined", name, name)
			return
		}
		members := im.groupMembers(name, g)
		for i, m := range members {
			im.quiet = i > 0
			im.virtualServerBody(n, m.addr, m.pos, name)
		}
		im.quiet = false
		return
	}
	ep, ok := im.endpoint(n, 0, true)
	if !ok {
		return
	}
	im.virtualServerBody(n, ep, at(n, 0), "")
}

// groupMembers expands a virtual_server_group into its addresses, once.
func (im *importer) groupMembers(name string, g *keepalived.Node) []groupMember {
	if m, ok := im.members[name]; ok {
		return m
	}
	var out []groupMember
	for _, e := range g.Children {
		if e.Keyword == "fwmark" {
			im.ignoredWhy(e, "govs has no firewall-mark services")
			continue
		}
		addrs, err := expandRange(e.Keyword)
		if err != nil {
			im.errorf(e.Pos, "virtual_server_group %s: %v", name, err)
			continue
		}
		var ep Endpoint
		if len(e.Args) > 0 {
			p, err := strconv.ParseUint(e.Args[0], 10, 16)
			if err != nil {
				im.errorf(e.ArgPosition(0), "virtual_server_group %s: invalid port %q (0-65535)", name, e.Args[0])
				continue
			}
			ep.Port, ep.HasPort = uint16(p), true
		}
		if len(out)+len(addrs) > maxGroupAddrs {
			im.errorf(e.Pos, "virtual_server_group %s expands to more than %d addresses (govs makes a virtual server of each)", name, maxGroupAddrs)
			break
		}
		for _, a := range addrs {
			ep.Addr = a
			out = append(out, groupMember{ep, Pos(e.Pos)})
		}
	}
	if len(out) == 0 {
		im.warnf(g.Pos, "virtual_server_group %s has no address and port govs can serve", name)
	}
	im.members[name] = out
	return out
}

// expandRange reads a virtual_server_group address: IP, IP-LAST (the last
// byte, or for IPv6 the last 16 bits in hex), IP-IP, or IP/LEN.
func expandRange(s string) ([]netip.Addr, error) {
	bad := fmt.Errorf("invalid address %q: want IP, IP-LAST, IP-IP or IP/LEN", s)
	var first, last netip.Addr
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		if p.Addr().BitLen()-p.Bits() > 12 {
			return nil, fmt.Errorf("%s holds more than %d addresses", s, maxGroupAddrs)
		}
		first = p.Addr()
		for last = first; p.Contains(last.Next()); last = last.Next() {
		}
	} else if a, b, isRange := strings.Cut(s, "-"); isRange {
		var err error
		if first, err = netip.ParseAddr(a); err != nil {
			return nil, bad
		}
		if last, err = netip.ParseAddr(b); err != nil {
			base, limit := 10, uint64(255)
			if first.Is6() {
				base, limit = 16, 0xffff
			}
			v, err := strconv.ParseUint(b, base, 32)
			if err != nil || v > limit {
				return nil, bad
			}
			if first.Is4() {
				a4 := first.As4()
				a4[3] = byte(v)
				last = netip.AddrFrom4(a4)
			} else {
				a16 := first.As16()
				a16[14], a16[15] = byte(v>>8), byte(v)
				last = netip.AddrFrom16(a16).WithZone(first.Zone())
			}
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, bad
		}
		first, last = a, a
	}
	first, last = first.Unmap(), last.Unmap()
	if first.Is4() != last.Is4() || last.Less(first) {
		return nil, fmt.Errorf("invalid range %q: want FIRST-LAST of one family, FIRST <= LAST", s)
	}
	var out []netip.Addr
	for a := first; ; a = a.Next() {
		if len(out) == maxGroupAddrs {
			return nil, fmt.Errorf("%s holds more than %d addresses", s, maxGroupAddrs)
		}
		out = append(out, a)
		if a == last {
			return out, nil
		}
	}
}

// scheduler flags keepalived writes as keywords.
var schedFlagKeywords = map[string]bool{
	"flag-1": true, "flag-2": true, "flag-3": true,
	"sh-port": true, "sh-fallback": true, "mh-port": true, "mh-fallback": true,
}

func (im *importer) virtualServerBody(n *keepalived.Node, addr Endpoint, addrPos Pos, group string) {
	vs := &VirtualServer{Address: addr, Forwarding: NAT}
	vs.Pos = Pos(n.Pos)
	vs.markKey("address", addrPos)
	// keepalived's default lb_kind is NAT.
	vs.markKey("forwarding", Pos(n.Pos))
	var sc checkScope
	var realServers, flags []*keepalived.Node
	var granularity opt[string]
	persistence := false
	for _, c := range n.Children {
		switch c.Keyword {
		case "lb_algo", "lvs_sched":
			im.setStr(&vs.Meta, "scheduler", &vs.Scheduler, c)
		case "lb_kind", "lvs_method":
			if im.forwarding(c) {
				vs.markKey("forwarding", at(c, 0))
			}
		case "protocol":
			if p, ok := im.protocol(c); ok {
				vs.Protocol = p
				vs.markKey("protocol", at(c, 0))
			}
		case "persistence_timeout":
			t := some(Duration(360*time.Second), Pos(c.Pos)) // keepalived's default
			if len(c.Args) > 0 {
				secs := im.integer(c, 0)
				if !secs.set {
					continue
				}
				if secs.v < 1 {
					im.errorf(c.ArgPosition(0), "persistence_timeout must be at least 1 second")
					continue
				}
				t = some(Duration(time.Duration(secs.v)*time.Second), secs.pos)
			}
			vs.PersistenceTimeout = t.v
			vs.markKey("persistence_timeout", t.pos)
			persistence = true
		case "persistence_granularity":
			if granularity = im.str(c); granularity.set {
				vs.PersistenceNetmask = granularity.v
				vs.markKey("persistence_netmask", granularity.pos)
			}
		case "ops":
			vs.OnePacket = true
			vs.markKey("ops", Pos(c.Pos))
		case "quorum":
			if q := im.integer(c, 0); q.set {
				vs.Quorum = &q.v
				vs.markKey("quorum", q.pos)
			}
		case "hysteresis":
			if h := im.integer(c, 0); h.set {
				vs.QuorumHysteresis = h.v
				vs.markKey("quorum_hysteresis", h.pos)
			}
		case "quorum_up", "quorum_down":
			if s := im.shellScript(c); s.set {
				if c.Keyword == "quorum_up" {
					vs.QuorumUp = s.v
				} else {
					vs.QuorumDown = s.v
				}
				vs.markKey(c.Keyword, s.pos)
			}
		case "sorry_server":
			if ep, ok := im.endpoint(c, 0, false); ok {
				vs.SorryServer = ep
				vs.markKey("sorry_server", at(c, 0))
			}
		case "sorry_server_lvs_method":
			if m := strings.ToUpper(c.Arg(0)); m != "NAT" {
				im.ignoredWhy(c, "govs reaches the sorry server as it reaches the real servers")
			}
		case "inhibit_on_failure", "alpha", "omega":
			if b := im.boolean(c); b.set {
				switch c.Keyword {
				case "inhibit_on_failure":
					vs.InhibitOnFailure = b.v
				case "alpha":
					vs.Alpha = b.v
				default:
					vs.Omega = b.v
				}
				vs.markKey(c.Keyword, b.pos)
			}
		case "delay_loop", "connect_timeout", "retry", "delay_before_retry", "virtualhost":
			im.scopeOption(&sc, c)
		case "real_server":
			realServers = append(realServers, c)
		default:
			if schedFlagKeywords[c.Keyword] {
				flags = append(flags, c)
				continue
			}
			im.ignored(c)
		}
	}
	if granularity.set && !persistence {
		// As keepalived: a granularity makes the service persistent.
		vs.PersistenceTimeout = Duration(360 * time.Second)
		vs.markKey("persistence_timeout", granularity.pos)
	}
	im.schedulerFlags(vs, flags)
	for _, c := range realServers {
		if rs := im.realServer(c, sc); rs != nil {
			vs.RealServers = append(vs.RealServers, rs)
		}
	}
	if group != "" {
		proto := vs.Protocol
		if proto == "" {
			proto = TCP
		}
		vs.Name = group + "/" + string(proto) + "/" + addr.String()
		vs.markKey("name", at(n, 1))
	}
	im.cfg.VirtualServers = append(im.cfg.VirtualServers, vs)
}

// schedulerFlags maps keepalived's flag-1, flag-2 (the scheduler's fallback
// and port flags) and sh-port, sh-fallback, mh-port, mh-fallback.
func (im *importer) schedulerFlags(vs *VirtualServer, flags []*keepalived.Node) {
	sched := strings.ToLower(vs.Scheduler)
	for _, c := range flags {
		f := c.Keyword
		switch {
		case f == "flag-1" && (sched == "sh" || sched == "mh"):
			f = sched + "-fallback"
		case f == "flag-2" && (sched == "sh" || sched == "mh"):
			f = sched + "-port"
		case strings.HasPrefix(f, "flag-"):
			im.ignoredWhy(c, "govs knows the scheduler flags of sh and mh only")
			continue
		}
		if !slices.Contains(vs.SchedulerFlags, f) {
			vs.SchedulerFlags = append(vs.SchedulerFlags, f)
		}
		if !vs.Has("scheduler_flags") {
			vs.markKey("scheduler_flags", Pos(c.Pos))
		}
	}
}

const noDR = ", replies pass through the director: write NAT if the real servers route back through it, " +
	"else write NAT, convert, and set forwarding: fullnat or proxy (see docs/keepalived.md)"

// forwarding reads lb_kind / lvs_method: NAT maps to nat; govs has no direct
// routing or tunnelling, and proxying instead would change the network
// path, so DR and TUN are errors.
func (im *importer) forwarding(c *keepalived.Node) bool {
	s, ok := im.value(c, 0)
	if !ok {
		return false
	}
	switch strings.ToUpper(s) {
	case "NAT":
		return true
	case "DR":
		im.errorf(c.ArgPosition(0), "%s DR: govs has no direct routing%s", c.Keyword, noDR)
	case "TUN":
		im.errorf(c.ArgPosition(0), "%s TUN: govs has no IP tunnelling%s", c.Keyword, noDR)
	default:
		im.errorf(c.ArgPosition(0), "%s: unknown forwarding method %q (NAT, DR or TUN)", c.Keyword, s)
	}
	return false
}

func (im *importer) protocol(c *keepalived.Node) (Protocol, bool) {
	s, ok := im.value(c, 0)
	if !ok {
		return "", false
	}
	switch strings.ToUpper(s) {
	case "TCP":
		return TCP, true
	case "UDP":
		return UDP, true
	case "SCTP":
		im.errorf(c.ArgPosition(0), "protocol SCTP: govs serves TCP and UDP only")
	default:
		im.errorf(c.ArgPosition(0), "unknown protocol %q (TCP or UDP)", s)
	}
	return "", false
}

// scopeOption reads a checker default written on a virtual, real server or
// checker.
func (im *importer) scopeOption(sc *checkScope, c *keepalived.Node) {
	switch c.Keyword {
	case "delay_loop":
		if d := im.seconds(c, 0); d.set {
			sc.delayLoop = d
		}
	case "connect_timeout":
		if d := im.seconds(c, 0); d.set {
			if d.v == 0 {
				d.v = Duration(time.Second) // as keepalived: no 0 timeout
			}
			sc.connectTimeout = d
		}
	case "delay_before_retry":
		if d := im.seconds(c, 0); d.set {
			sc.delayBeforeRetry = d
		}
	case "retry", "nb_get_retry":
		if r := im.integer(c, 0); r.set {
			sc.retry = r
		}
	case "virtualhost":
		if s := im.str(c); s.set {
			sc.virtualhost = s
		}
	}
}

// checkerTypes are keepalived's checkers and the govs check types.
var checkerTypes = map[string]string{
	"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "SMTP_CHECK": "smtp", "DNS_CHECK": "dns",
	"MISC_CHECK": "script", "UDP_CHECK": "udp", "PING_CHECK": "ping", "FILE_CHECK": "file",
}

func (im *importer) realServer(n *keepalived.Node, sc checkScope) *RealServer {
	ep, ok := im.endpoint(n, 0, false)
	if !ok {
		return nil
	}
	rs := &RealServer{Address: ep}
	rs.Pos = Pos(n.Pos)
	rs.markKey("address", at(n, 0))
	var checkers []*keepalived.Node
	for _, c := range n.Children {
		switch c.Keyword {
		case "weight":
			if w := im.integer(c, 0); w.set {
				rs.Weight = &w.v
				rs.markKey("weight", w.pos)
			}
		case "lvs_method", "lb_kind":
			im.forwarding(c) // NAT, as the virtual server; others are errors
		case "uthreshold", "lthreshold":
			if t := im.integer(c, 0); t.set {
				if c.Keyword == "uthreshold" {
					rs.UpperThreshold = t.v
					rs.markKey("upper_threshold", t.pos)
				} else {
					rs.LowerThreshold = t.v
					rs.markKey("lower_threshold", t.pos)
				}
			}
		case "inhibit_on_failure", "alpha":
			if b := im.boolean(c); b.set {
				if c.Keyword == "alpha" {
					rs.Alpha = &b.v
				} else {
					rs.InhibitOnFailure = &b.v
				}
				rs.markKey(c.Keyword, b.pos)
			}
		case "notify_up", "notify_down":
			if s := im.shellScript(c); s.set {
				if c.Keyword == "notify_up" {
					rs.NotifyUp = s.v
				} else {
					rs.NotifyDown = s.v
				}
				rs.markKey(c.Keyword, s.pos)
			}
		case "delay_loop", "connect_timeout", "retry", "delay_before_retry", "virtualhost":
			im.scopeOption(&sc, c)
		case "BFD_CHECK":
			im.ignoredWhy(c, "govs has no BFD")
		default:
			if checkerTypes[c.Keyword] != "" {
				checkers = append(checkers, c)
				continue
			}
			im.ignored(c)
		}
	}
	for i, c := range checkers {
		if i == 0 {
			rs.HealthCheck = im.checker(c, sc)
			rs.markKey("health_check", Pos(c.Pos))
			continue
		}
		im.warnf(c.Pos, "%s has no govs equivalent (ignored): govs runs one checker per real server, here the %s at line %d",
			c.Keyword, checkers[0].Keyword, checkers[0].Pos.Line)
	}
	return rs
}

// checker maps one checker block. keepalived has no rise and fall: a checker
// takes a server down at its first failed check (after its retries) and up at
// its first passing one, so the check gets rise 1 and fall 1. keepalived's
// defaults that differ from govs's are written out: delay_loop 60s,
// connect_timeout 5s, retry 1 (DNS_CHECK 3, MISC_CHECK 0), delay_before_retry
// 3s for HTTP_GET and SSL_GET and the delay_loop for DNS_CHECK.
func (im *importer) checker(n *keepalived.Node, sc checkScope) *HealthCheck {
	typ := checkerTypes[n.Keyword]
	here := Pos(n.Pos)
	hc := &HealthCheck{Type: typ}
	hc.Pos = here
	hc.markKey("type", here)
	hc.Rise, hc.Fall = 1, 1
	hc.markKey("rise", here)
	hc.markKey("fall", here)
	if typ == "file" {
		im.fileCheck(hc, n)
		return hc
	}
	connects := typ != "script"
	var urls []*keepalived.Node
	var miscTimeout opt[Duration]
	for _, c := range n.Children {
		switch c.Keyword {
		case "delay_loop", "retry", "nb_get_retry", "delay_before_retry":
			im.scopeOption(&sc, c)
			continue
		case "connect_timeout":
			if connects {
				im.scopeOption(&sc, c)
				continue
			}
		case "connect_port":
			if connects && typ != "ping" {
				if p := im.integer(c, 0); p.set {
					hc.Port = p.v
					hc.markKey("port", p.pos)
				}
				continue
			}
		case "connect_ip":
			im.ignoredWhy(c, "govs checks the real server's own address")
			continue
		}
		switch typ + " " + c.Keyword {
		case "http url", "https url":
			urls = append(urls, c)
		case "http virtualhost", "https virtualhost":
			im.scopeOption(&sc, c)
		case "https sni_name":
			im.setStr(&hc.Meta, "sni", &hc.SNI, c)
		case "https enable_sni":
			// govs always sends the host (or sni) as SNI.
		case "smtp helo_name":
			im.setStr(&hc.Meta, "helo_name", &hc.HeloName, c)
		case "dns type":
			if s := im.str(c); s.set {
				hc.QueryType = strings.ToUpper(s.v)
				hc.markKey("query_type", s.pos)
			}
		case "dns name":
			im.setStr(&hc.Meta, "query_name", &hc.QueryName, c)
		case "script misc_path":
			if len(c.Args) == 0 {
				im.value(c, 0)
				continue
			}
			words := c.Args
			if len(words) == 1 {
				words = splitWords(words[0])
			}
			hc.Command = shellJoin(words)
			hc.markKey("command", at(c, 0))
		case "script misc_timeout":
			miscTimeout = im.seconds(c, 0)
		case "script misc_dynamic":
			hc.Dynamic = true
			hc.markKey("dynamic", Pos(c.Pos))
		case "udp payload":
			if _, ok := im.value(c, 0); ok {
				hc.Payload = strings.Join(c.Args, " ")
				hc.markKey("payload", at(c, 0))
			}
		case "udp require_reply":
			hc.RequireReply = true
			hc.markKey("require_reply", Pos(c.Pos))
			if len(c.Args) > 0 {
				hc.ExpectReply = strings.Join(c.Args, " ")
				hc.markKey("expect_reply", at(c, 0))
			}
		default:
			im.ignored(c)
		}
	}

	interval := sc.delayLoop
	if !interval.set {
		interval = some(Duration(60*time.Second), here)
	}
	hc.Interval = interval.v
	hc.markKey("interval", interval.pos)
	if typ == "script" {
		if miscTimeout.set { // else the interval, in keepalived as in govs
			hc.Timeout = miscTimeout.v
			hc.markKey("timeout", miscTimeout.pos)
		}
	} else {
		t := sc.connectTimeout
		if !t.set {
			t = some(Duration(5*time.Second), here)
		}
		hc.Timeout = t.v
		hc.markKey("timeout", t.pos)
	}
	retry := sc.retry
	if !retry.set {
		switch typ {
		case "script":
		case "dns":
			retry = some(3, here)
		default:
			retry = some(1, here)
		}
	}
	if retry.set {
		hc.Retry = &retry.v
		hc.markKey("retry", retry.pos)
	}
	delay := sc.delayBeforeRetry
	if !delay.set {
		switch typ {
		case "http", "https":
			delay = some(Duration(3*time.Second), here)
		case "dns":
			delay = some(interval.v, here)
		}
	}
	if delay.set {
		hc.DelayBeforeRetry = delay.v
		hc.markKey("delay_before_retry", delay.pos)
	}
	if typ == "http" || typ == "https" {
		host := sc.virtualhost
		for i, u := range urls {
			if i > 0 {
				im.warnf(u.Pos, "url has no govs equivalent (ignored): govs checks one url per real server, here the one at line %d",
					urls[0].Pos.Line)
			} else if h := im.url(hc, u); h.set {
				host = h
			}
		}
		if host.set {
			hc.Host = host.v
			hc.markKey("host", host.pos)
		}
	}
	return hc
}

// url maps a url block; it returns the url's virtualhost.
func (im *importer) url(hc *HealthCheck, u *keepalived.Node) opt[string] {
	var host opt[string]
	for _, c := range u.Children {
		switch c.Keyword {
		case "path":
			im.setStr(&hc.Meta, "path", &hc.Path, c)
		case "digest":
			if s := im.str(c); s.set {
				hc.ExpectDigest = strings.ToLower(s.v)
				hc.markKey("expect_digest", s.pos)
			}
		case "status_code":
			if codes, ok := im.statusCodes(c); ok && codes != nil {
				hc.ExpectStatus = codes
				hc.markKey("expect_status", at(c, 0))
			}
		case "virtualhost":
			host = im.str(c)
		default:
			im.ignored(c)
		}
	}
	return host
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

// fileCheck maps FILE_CHECK { track_file NAME; weight N [reverse]; dynamic }.
func (im *importer) fileCheck(hc *HealthCheck, n *keepalived.Node) {
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
			if tf.file.set {
				hc.File = tf.file.v
				hc.markKey("file", tf.file.pos)
			}
			if tf.weight.set && !weight.set {
				weight, reverse = tf.weight, tf.reverse
			}
		case "weight":
			if weight = im.integer(c, 0); weight.set {
				reverse = c.Arg(1) == "reverse"
			}
		case "dynamic":
			hc.Dynamic = true
			hc.markKey("dynamic", Pos(c.Pos))
		default:
			im.ignored(c)
		}
	}
	if weight.set {
		w := weight.v
		if reverse {
			w = -w
		}
		hc.FileWeight = &w
		hc.markKey("file_weight", weight.pos)
	}
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
	im.define(n, "track_file", func(name string) bool {
		if im.trackFiles[name] != nil {
			return false
		}
		im.trackFiles[name] = tf
		return true
	})
}

// VRRP

// vrrpScript reads vrrp_script NAME { ... } into the template of the track
// scripts of the instances that track it.
func (im *importer) vrrpScript(n *keepalived.Node) {
	ts := &TrackScript{Name: n.Arg(0)}
	ts.Pos = Pos(n.Pos)
	ts.markKey("name", at(n, 0))
	for _, c := range n.Children {
		switch c.Keyword {
		case "script":
			if len(c.Args) == 0 {
				im.value(c, 0)
				continue
			}
			ts.Script = c.Args[0]
			if len(c.Args) > 1 {
				ts.Script = commandJoin(c.Args)
			}
			ts.markKey("script", at(c, 0))
		case "interval", "timeout":
			if d := im.seconds(c, 0); d.set {
				if c.Keyword == "interval" {
					ts.Interval = d.v
				} else {
					ts.Timeout = d.v
				}
				ts.markKey(c.Keyword, d.pos)
			}
		case "weight":
			if w := im.integer(c, 0); w.set {
				ts.Weight = w.v
				ts.markKey("weight", w.pos)
				im.reverse(c, 1)
			}
		case "rise", "fall":
			if v := im.integer(c, 0); v.set {
				if c.Keyword == "rise" {
					ts.Rise = v.v
				} else {
					ts.Fall = v.v
				}
				ts.markKey(c.Keyword, v.pos)
			}
		default:
			im.ignored(c)
		}
	}
	im.define(n, "vrrp_script", func(name string) bool {
		if im.scripts[name] != nil {
			return false
		}
		im.scripts[name] = ts
		return true
	})
}

// reverse warns about a weight's reverse (argument i), which govs lacks.
func (im *importer) reverse(c *keepalived.Node, i int) {
	switch c.Arg(i) {
	case "":
	case "noreverse":
	case "reverse":
		im.warnf(c.ArgPosition(i), "weight reverse has no govs equivalent (ignored)")
	default:
		im.warnf(c.ArgPosition(i), "%s has no govs equivalent (ignored)", c.Args[i])
	}
}

func (im *importer) vrrpInstance(n *keepalived.Node) {
	vi := &VRRPInstance{Name: n.Arg(0)}
	vi.Pos = Pos(n.Pos)
	if len(n.Args) > 0 {
		vi.markKey("name", at(n, 0))
	}
	g := im.glob
	if g.defaultInterface.set {
		vi.Interface = g.defaultInterface.v
		vi.markKey("interface", g.defaultInterface.pos)
	}
	if g.vrrpVersion.set {
		vi.Version = g.vrrpVersion.v
		vi.markKey("version", g.vrrpVersion.pos)
	}
	if g.garpDelay.set {
		d := g.garpDelay.v
		vi.GARPMasterDelay = &d
		vi.markKey("garp_master_delay", g.garpDelay.pos)
	}
	if g.garpRefresh.set {
		d := g.garpRefresh.v
		vi.GARPMasterRefresh = &d
		vi.markKey("garp_master_refresh", g.garpRefresh.pos)
	}
	if g.garpRepeat.set {
		vi.GARPMasterRepeat = g.garpRepeat.v
		vi.markKey("garp_master_repeat", g.garpRepeat.pos)
	}
	if g.garpRefreshRepeat.set {
		vi.GARPMasterRefreshRepeat = g.garpRefreshRepeat.v
		vi.markKey("garp_master_refresh_repeat", g.garpRefreshRepeat.pos)
	}
	if g.lowerPrioNoAdvert.set {
		vi.LowerPrioNoAdvert = g.lowerPrioNoAdvert.v
		vi.markKey("lower_prio_no_advert", g.lowerPrioNoAdvert.pos)
	}
	for _, c := range n.Children {
		switch c.Keyword {
		case "state", "interface":
			if s := im.str(c); s.set {
				if c.Keyword == "state" {
					vi.State = s.v
				} else {
					vi.Interface = s.v
				}
				vi.markKey(c.Keyword, s.pos)
			}
		case "virtual_router_id", "priority", "version", "garp_master_repeat", "garp_master_refresh_repeat":
			v := im.integer(c, 0)
			if !v.set {
				continue
			}
			switch c.Keyword {
			case "virtual_router_id":
				vi.VirtualRouterID = v.v
			case "priority":
				vi.Priority = v.v
			case "version":
				vi.Version = v.v
			case "garp_master_repeat":
				vi.GARPMasterRepeat = v.v
			default:
				vi.GARPMasterRefreshRepeat = v.v
			}
			vi.markKey(c.Keyword, v.pos)
		case "advert_int", "preempt_delay", "garp_master_delay", "garp_master_refresh":
			d := im.seconds(c, 0)
			if !d.set {
				continue
			}
			switch c.Keyword {
			case "advert_int":
				vi.AdvertInt = d.v
			case "preempt_delay":
				vi.PreemptDelay = d.v
			case "garp_master_delay":
				vi.GARPMasterDelay = &d.v
			default:
				vi.GARPMasterRefresh = &d.v
			}
			vi.markKey(c.Keyword, d.pos)
		case "nopreempt", "preempt":
			vi.NoPreempt = c.Keyword == "nopreempt"
			vi.markKey("nopreempt", Pos(c.Pos))
		case "accept":
			vi.Accept = true
			vi.markKey("accept", Pos(c.Pos))
		case "no_accept":
			im.ignoredWhy(c, "govs always accepts the traffic for its VIPs")
		case "lower_prio_no_advert":
			if b := im.boolean(c); b.set {
				vi.LowerPrioNoAdvert = b.v
				vi.markKey(c.Keyword, b.pos)
			}
		case "virtual_ipaddress":
			vi.VirtualIPAddresses = nil
			for _, line := range c.Children {
				if v, ok := im.vip(line); ok {
					vi.VirtualIPAddresses = append(vi.VirtualIPAddresses, v)
				}
			}
			vi.markKey("virtual_ipaddresses", Pos(c.Pos))
		case "unicast_src_ip", "mcast_src_ip":
			if ip, ok := im.hostIP(c, c.Arg(0), c.ArgPosition(0)); ok {
				vi.UnicastSrcIP = ip
				vi.markKey("unicast_src_ip", at(c, 0))
			}
		case "unicast_peer":
			vi.UnicastPeers = nil
			for _, line := range c.Children {
				if ip, ok := im.hostIP(line, line.Keyword, line.Pos); ok {
					vi.UnicastPeers = append(vi.UnicastPeers, ip)
				}
				if len(line.Args) > 0 {
					im.warnf(line.ArgPosition(0), "unicast_peer %s has no govs equivalent (ignored)", strings.Join(line.Args, " "))
				}
			}
			vi.markKey("unicast_peers", Pos(c.Pos))
		case "authentication":
			vi.Authentication = im.authentication(c)
			vi.markKey("authentication", Pos(c.Pos))
		case "track_interface":
			vi.TrackInterfaces = nil
			for _, line := range c.Children {
				ti := TrackInterface{Name: line.Keyword}
				if len(line.Args) > 0 {
					if line.Args[0] != "weight" {
						im.errorf(line.ArgPosition(0), "track_interface %s: want IFACE [weight N]", line.Keyword)
						continue
					}
					w := im.integer(line, 1)
					if !w.set {
						continue
					}
					ti.Weight = w.v
					im.reverse(line, 2)
				}
				vi.TrackInterfaces = append(vi.TrackInterfaces, ti)
			}
			vi.markKey("track_interfaces", Pos(c.Pos))
		case "track_script":
			im.trackScripts(vi, c)
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			if s := im.vrrpCommand(c); s.set {
				im.setNotify(c.Keyword, s.v, &vi.NotifyMaster, &vi.NotifyBackup, &vi.NotifyFault, &vi.NotifyStop, &vi.Notify)
				vi.markKey(c.Keyword, s.pos)
			}
		default:
			im.ignored(c)
		}
	}
	im.cfg.VRRPInstances = append(im.cfg.VRRPInstances, vi)
}

func (im *importer) setNotify(kw, v string, master, backup, fault, stop, all *string) {
	switch kw {
	case "notify_master":
		*master = v
	case "notify_backup":
		*backup = v
	case "notify_fault":
		*fault = v
	case "notify_stop":
		*stop = v
	default:
		*all = v
	}
}

// vip maps a virtual_ipaddress line: ADDR[/LEN] [dev IFACE] [label LABEL]
// and ip address options govs does not set (warned about).
func (im *importer) vip(line *keepalived.Node) (VirtualIP, bool) {
	w := line.Words()
	wordPos := func(i int) keepalived.Position {
		if i == 0 {
			return line.Pos
		}
		return line.ArgPosition(i - 1)
	}
	s := w[0]
	for i := 1; i < len(w); i++ {
		switch w[i] {
		case "dev", "label":
			if i+1 >= len(w) {
				im.errorf(wordPos(i), "virtual_ipaddress %s: %s needs a value", w[0], w[i])
				return VirtualIP{}, false
			}
			s += " " + w[i] + " " + w[i+1]
			i++
		case "brd", "broadcast", "scope", "peer", "preferred_lft", "track_group", "metric":
			val := ""
			if i+1 < len(w) {
				val = " " + w[i+1]
			}
			im.warnf(wordPos(i), "virtual_ipaddress %s%s has no govs equivalent (ignored)", w[i], val)
			i++
		default:
			im.warnf(wordPos(i), "virtual_ipaddress %s has no govs equivalent (ignored)", w[i])
		}
	}
	var v VirtualIP
	if err := v.decodeScalar(s); err != nil {
		im.errorf(line.Pos, "virtual_ipaddress: %v", err)
		return VirtualIP{}, false
	}
	return v, true
}

func (im *importer) hostIP(n *keepalived.Node, s string, p keepalived.Position) (HostIP, bool) {
	if s == "" {
		im.value(n, 0)
		return HostIP{}, false
	}
	var ip HostIP
	if err := ip.decodeScalar(s); err != nil {
		im.errorf(p, "%s: %v", n.Keyword, err)
		return HostIP{}, false
	}
	return ip, true
}

func (im *importer) authentication(n *keepalived.Node) *VRRPAuth {
	a := &VRRPAuth{}
	a.Pos = Pos(n.Pos)
	for _, c := range n.Children {
		switch c.Keyword {
		case "auth_type":
			im.setStr(&a.Meta, "auth_type", &a.AuthType, c)
		case "auth_pass":
			if s := im.str(c); s.set {
				if len(s.v) > 8 {
					// keepalived uses the first 8 characters (VRRP carries 8).
					im.warnf(c.ArgPosition(0), "auth_pass is longer than 8 characters: keepalived sends the first 8, so does govs (converted to %q)", s.v[:8])
					s.v = s.v[:8]
				}
				a.AuthPass = s.v
				a.markKey("auth_pass", s.pos)
			}
		default:
			im.ignored(c)
		}
	}
	return a
}

// trackScripts maps track_script { NAME [weight N [reverse]] } onto copies
// of the vrrp_script NAME.
func (im *importer) trackScripts(vi *VRRPInstance, c *keepalived.Node) {
	for _, line := range c.Children {
		tmpl := im.scripts[line.Keyword]
		if tmpl == nil {
			im.errorf(line.Pos, "track_script: no vrrp_script %q is defined", line.Keyword)
			continue
		}
		ts := *tmpl
		ts.keys = copyKeys(tmpl.keys)
		ts.markKey("name", Pos(line.Pos))
		if len(line.Args) > 0 {
			if line.Args[0] != "weight" {
				im.errorf(line.ArgPosition(0), "track_script %s: want NAME [weight N]", line.Keyword)
				continue
			}
			w := im.integer(line, 1)
			if !w.set {
				continue
			}
			ts.Weight = w.v
			ts.markKey("weight", w.pos)
			im.reverse(line, 2)
		}
		vi.TrackScripts = append(vi.TrackScripts, &ts)
	}
	vi.markKey("track_scripts", Pos(c.Pos))
}

func copyKeys(m map[string]Pos) map[string]Pos {
	out := make(map[string]Pos, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (im *importer) syncGroup(n *keepalived.Node) {
	g := &VRRPSyncGroup{Name: n.Arg(0)}
	g.Pos = Pos(n.Pos)
	if len(n.Args) > 0 {
		g.markKey("name", at(n, 0))
	}
	for _, c := range n.Children {
		switch c.Keyword {
		case "group":
			g.Instances = c.BlockWords()
			g.markKey("instances", Pos(c.Pos))
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			if s := im.vrrpCommand(c); s.set {
				im.setNotify(c.Keyword, s.v, &g.NotifyMaster, &g.NotifyBackup, &g.NotifyFault, &g.NotifyStop, &g.Notify)
				g.markKey(c.Keyword, s.pos)
			}
		default:
			im.ignored(c)
		}
	}
	im.cfg.VRRPSyncGroups = append(im.cfg.VRRPSyncGroups, g)
}

// EncodeYAML writes c as govs YAML, as govs convert prints it. Beyond what the
// model's YAML tags write, it keeps the keys that were set to a zero value
// (delay_before_retry 0, ...), whose absence would mean the default, and
// writes short lists of single words on one line.
func EncodeYAML(c *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	keepSetKeys(reflect.ValueOf(c), &n)
	flowShortLists(&n)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// keepSetKeys adds to the mapping n the keys that v's Meta records as
// written but that omitempty left out.
func keepSetKeys(v reflect.Value, n *yaml.Node) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Type() == durationType && n.Kind == yaml.ScalarNode {
		n.Value = compactDuration(time.Duration(v.Int()))
		return
	}
	switch v.Kind() {
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i := 0; i < v.Len() && i < len(n.Content); i++ {
				keepSetKeys(v.Index(i), n.Content[i])
			}
		}
		return
	case reflect.Struct:
	default:
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	t := v.Type()
	var meta Meta
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Type == metaType {
			meta = v.Field(i).Interface().(Meta)
		}
	}
	insert := 0
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		fv := v.Field(i)
		found := -1
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == name {
				found = j
				break
			}
		}
		if found >= 0 {
			keepSetKeys(fv, n.Content[found+1])
			insert = found + 2
			continue
		}
		if !meta.Has(name) || ((fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) && fv.IsNil()) {
			continue
		}
		var val yaml.Node
		if err := val.Encode(fv.Interface()); err != nil {
			continue
		}
		keepSetKeys(fv, &val)
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
		n.Content = slices.Insert(n.Content, insert, key, &val)
		insert += 2
	}
}

var durationType = reflect.TypeOf(Duration(0))

// compactDuration writes 5m and 1h rather than time.Duration's 5m0s and
// 1h0m0s.
func compactDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// flowShortLists writes lists of a few single words as [a, b].
func flowShortLists(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
		size, flat := 0, true
		for _, c := range n.Content {
			flat = flat && c.Kind == yaml.ScalarNode && !strings.ContainsAny(c.Value, " \t\n")
			size += len(c.Value) + 2
		}
		if flat && size <= 60 {
			n.Style = yaml.FlowStyle
		}
	}
	for _, c := range n.Content {
		flowShortLists(c)
	}
}

// setStr sets *dst to c's string argument, if it has one, and records its
// position as key's, so validation errors point into the keepalived file.
func (im *importer) setStr(m *Meta, key string, dst *string, c *keepalived.Node) {
	if s := im.str(c); s.set {
		*dst = s.v
		m.markKey(key, s.pos)
	}
}
