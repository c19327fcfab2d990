package importer

import (
	"fmt"
	"sort"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

type orderedWarning struct {
	top int
	w   config.Warning
}

type groupMember struct {
	addr   config.Endpoint
	fwmark uint32 // a "fwmark N" member instead of an address
	pos    config.Pos
}

type importer struct {
	cfg    *config.Config
	warns  []orderedWarning
	errs   config.ErrorList
	quiet  bool // importing a group's second and later addresses: no messages
	top    int  // the top-level node being imported, to keep warnings in file order
	lvsTop int  // the global_defs of lvs_timeouts

	groups     map[string]*keepalived.Node
	members    map[string][]groupMember
	scripts    map[string]*config.TrackScript
	trackFiles map[string]*trackFile
	glob       globals
	rulePref   int // the preference keepalived gives the next rule without one
}

// Limits that keep a small file from expanding into a huge model.
const (
	maxGroupAddrs   = 4096 // addresses of one virtual_server_group
	maxStatusRanges = 500  // status codes of one status_code
)

// Import maps a parsed keepalived configuration onto the govs model. It does
// not validate the model: Validate does, and its errors point into the
// keepalived file. The warnings name every option that has no govs
// equivalent; the errors, what cannot be mapped at all (such as lb_kind DR).
func Import(f *keepalived.File) (*config.Config, []config.Warning, config.ErrorList) {
	im := &importer{
		cfg:        &config.Config{File: f.Name},
		groups:     map[string]*keepalived.Node{},
		members:    map[string][]groupMember{},
		scripts:    map[string]*config.TrackScript{},
		trackFiles: map[string]*trackFile{},
	}
	im.cfg.Pos = config.Pos{File: f.Name, Line: 1, Col: 1}
	// Definitions first: keepalived reads the whole file before it applies
	// global defaults, groups, scripts and tracked files.
	for i, n := range f.Nodes {
		im.top = i
		switch n.Keyword {
		case "global_defs":
			im.globalDefs(n)
		case "virtual_server_group":
			define(im, n, "virtual_server_group", im.groups, n)
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
		case "static_routes":
			im.staticRoutes(n)
		case "static_ipaddress":
			im.staticAddrs(n)
		case "static_rules":
			im.cfg.StaticRules = im.rules(n)
			im.cfg.SetKey("static_rules", here(n))
		default:
			im.ignored(n)
		}
	}
	im.lvsTimeouts()
	im.alerts() // alerts.go
	im.errs = append(im.errs, invalidUTF8(im.cfg)...)
	sort.SliceStable(im.warns, func(i, j int) bool { return im.warns[i].top < im.warns[j].top })
	warns := make([]config.Warning, len(im.warns))
	for i, w := range im.warns {
		warns[i] = w.w
	}
	return im.cfg, warns, im.errs
}

// Messages.

func (im *importer) warnf(p keepalived.Position, format string, args ...any) {
	im.warnAt(config.Pos(p), im.top, format, args...)
}

func (im *importer) warnAt(p config.Pos, top int, format string, args ...any) {
	if !im.quiet {
		im.warns = append(im.warns, orderedWarning{top, config.Warning{Pos: p, Msg: fmt.Sprintf(format, args...)}})
	}
}

func (im *importer) errorf(p keepalived.Position, format string, args ...any) {
	if !im.quiet {
		im.errs.Add(config.Pos(p), format, args...)
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

// define registers v, the definition n of a what, under n's name,
// reporting a missing or duplicate name.
func define[T any](im *importer, n *keepalived.Node, what string, defs map[string]T, v T) {
	name, ok := im.value(n, 0)
	if !ok {
		return
	}
	if _, dup := defs[name]; dup {
		im.errorf(n.ArgPosition(0), "duplicate %s %q", what, name)
		return
	}
	defs[name] = v
}
