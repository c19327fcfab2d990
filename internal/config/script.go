package config

import (
	"fmt"
	"strings"

	"github.com/govs-lb/govs/internal/script"
)

// Scripts (docs/config.md, "Scripts and the user they run as"): every
// command govs runs (script health checks, notify_up/down, quorum_up/down,
// VRRP track scripts and notify scripts) runs as script_user, nobody by
// default, and only when its program, and every directory on the way to it,
// can be changed by no one but root and that user (keepalived's
// enable_script_security). script_security: false turns the ownership checks
// off and runs scripts as root unless script_user is set.

// ScriptPolicy is what the configuration says about running scripts.
func (c *Config) ScriptPolicy() script.Policy {
	return script.Policy{User: c.ScriptUser, Insecure: c.ScriptSecurity != nil && !*c.ScriptSecurity}
}

// validateScripts checks the script keys' syntax and hands the policy to
// each script health check (the checker runs with it). It reads nothing
// from the system: CheckScripts does.
func (c *Config) validateScripts(errs *ErrorList) {
	if c.ScriptUser != "" {
		name, group, hasGroup := strings.Cut(c.ScriptUser, ":")
		if name == "" || hasGroup && group == "" || strings.ContainsAny(c.ScriptUser, " \t") {
			errs.add(c.At("script_user"), "invalid script_user %q: want USER or USER:GROUP", c.ScriptUser)
		}
	}
	p := c.ScriptPolicy()
	for _, vs := range c.VirtualServers {
		if vs == nil {
			continue
		}
		for _, rs := range vs.RealServers {
			if rs != nil && rs.Check != nil {
				rs.Check.RunAs = p
			}
		}
	}
}

// scriptUse is one command of the configuration and where it is written.
type scriptUse struct {
	pos   Pos
	what  string // "health check command", "notify_up", "track script chk"
	line  string
	shell bool // run with /bin/sh -c (director) or split into words (VRRP)
}

// scripts lists every command the configuration runs.
func (c *Config) scripts() []scriptUse {
	var out []scriptUse
	seen := map[Pos]bool{} // a service-wide check is resolved into every real server
	add := func(pos Pos, what, line string, shell bool) {
		if strings.TrimSpace(line) == "" || seen[pos] && pos.Line != 0 {
			return
		}
		seen[pos] = true
		out = append(out, scriptUse{pos, what, line, shell})
	}
	for _, vs := range c.VirtualServers {
		if vs == nil {
			continue
		}
		add(vs.At("quorum_up"), "quorum_up", vs.QuorumUp, true)
		add(vs.At("quorum_down"), "quorum_down", vs.QuorumDown, true)
		for _, rs := range vs.RealServers {
			if rs == nil {
				continue
			}
			if hc := rs.Check; hc != nil && hc.Type == "script" {
				add(hc.At("command"), "health check command", hc.Command, true)
			}
			add(rs.At("notify_up"), "notify_up", rs.NotifyUp, true)
			add(rs.At("notify_down"), "notify_down", rs.NotifyDown, true)
		}
	}
	for _, vi := range c.VRRPInstances {
		if vi == nil {
			continue
		}
		for _, ts := range vi.TrackScripts {
			if ts != nil {
				add(ts.At("script"), "track script "+ts.Name, ts.Script, false)
			}
		}
		for key, s := range map[string]string{"notify_master": vi.NotifyMaster, "notify_backup": vi.NotifyBackup,
			"notify_fault": vi.NotifyFault, "notify_stop": vi.NotifyStop, "notify": vi.Notify} {
			add(vi.At(key), key+" of "+vi.Name, s, false)
		}
	}
	for _, g := range c.VRRPSyncGroups {
		if g == nil {
			continue
		}
		for key, s := range map[string]string{"notify_master": g.NotifyMaster, "notify_backup": g.NotifyBackup,
			"notify_fault": g.NotifyFault, "notify_stop": g.NotifyStop, "notify": g.Notify} {
			add(g.At(key), key+" of "+g.Name, s, false)
		}
	}
	return out
}

// CheckScripts checks, on this system, what the scripts of a validated
// configuration need at run time: that script_user exists, and that each
// command's program exists, may be run by that user and, with
// script_security, is writable by no one but root and that user. It reads
// the system, so it is not part of Validate: govs check, run and reload call
// it. Errors name FILE:LINE:COL; the warnings are script_security: false
// (and what it lets through) and a script_user that goes unused because
// govs is not root.
func (c *Config) CheckScripts() ([]Warning, error) {
	uses := c.scripts()
	var errs ErrorList
	var warns []Warning
	p := c.ScriptPolicy()
	if p.Insecure {
		warns = append(warns, Warning{c.At("script_security"), "script_security is off: scripts are not checked for who may change them" +
			" and run as " + map[bool]string{true: "root", false: c.ScriptUser}[c.ScriptUser == ""] +
			"; anyone who can write a script or a directory on its path can run code as that user"})
	}
	if len(uses) == 0 {
		if c.ScriptUser != "" {
			if _, err := p.Resolve(); err != nil {
				errs.add(c.At("script_user"), "%v", err)
			}
		}
		return warns, errs.err()
	}
	id, err := p.Resolve()
	if err != nil {
		if c.ScriptUser != "" {
			errs.add(c.At("script_user"), "%v", err)
		} else {
			errs.add(uses[0].pos, "scripts run as user %s by default, and %v: set script_user", script.DefaultUser, err)
		}
		return warns, errs.err()
	}
	if c.ScriptUser != "" && script.Self() {
		warns = append(warns, Warning{c.At("script_user"), fmt.Sprintf("govs is not root: scripts run as %s, not as script_user %s", id, c.ScriptUser)})
	}
	for _, u := range uses {
		for _, pr := range script.Check(u.line, u.shell, id) {
			if pr.Insecure && p.Insecure {
				warns = append(warns, Warning{u.pos, fmt.Sprintf("%s %s", u.what, pr.Error())})
				continue
			}
			msg := fmt.Sprintf("%s %s", u.what, pr.Error())
			if pr.Insecure {
				msg += fmt.Sprintf(": refused, whoever can change it could run code as %s (script_security, as keepalived's enable_script_security)", id)
			}
			errs.add(u.pos, "%s", msg)
		}
	}
	return warns, errs.err()
}
