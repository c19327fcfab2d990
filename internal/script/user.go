package script

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// DefaultUser is who scripts run as when script_user is not set and
// script_security is on (keepalived's enable_script_security with no
// keepalived_script user falls back to root; govs does not).
const DefaultUser = "nobody"

// Policy is the configuration's say on scripts: script_user and
// script_security. The zero value is the safe default: scripts run as
// DefaultUser and are checked before every run. It holds settings only, not
// resolved ids, so that copies of a configuration compare and copy cheaply;
// Resolve looks the user up when a script runs.
type Policy struct {
	// User is "name", "name:group" or numeric ids; empty means DefaultUser,
	// or root when Insecure.
	User string
	// Insecure is script_security: false: no ownership or permission
	// checks, and scripts run as root unless User says otherwise.
	Insecure bool
}

// Identity is who a script runs as.
type Identity struct {
	Name     string
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	// Switch says the credentials must be set on the child: govs is root
	// and runs scripts as someone else.
	Switch bool
}

func (id Identity) String() string {
	if id.Name != "" {
		return id.Name
	}
	return "uid " + strconv.FormatUint(uint64(id.UID), 10)
}

// userName is the user a policy names, with the default applied.
func (p Policy) userName() string {
	switch {
	case p.User != "":
		return p.User
	case p.Insecure:
		return "root"
	}
	return DefaultUser
}

// Resolve looks up who scripts run as. A user that does not exist is an
// error even when govs is not root (a check by an unprivileged user then
// still reports it); when govs is not root, scripts run as govs itself,
// since only root may run a process as someone else.
func (p Policy) Resolve() (Identity, error) {
	id, err := lookup(p.userName())
	if err != nil {
		return Identity{}, err
	}
	if euid := os.Geteuid(); euid != 0 {
		self := Identity{UID: uint32(euid), GID: uint32(os.Getegid())}
		if u, err := user.LookupId(strconv.Itoa(euid)); err == nil {
			self.Name = u.Username
		}
		if gs, err := os.Getgroups(); err == nil {
			for _, g := range gs {
				self.Groups = append(self.Groups, uint32(g))
			}
		}
		return self, nil
	}
	id.Switch = id.UID != 0 || id.GID != 0
	return id, nil
}

// Self reports whether scripts would run as govs itself whatever the user
// (govs is not root), to warn that a configured script_user is not used.
func Self() bool { return os.Geteuid() != 0 }

// lookup resolves "user" or "user:group"; each may be a name or a number.
func lookup(spec string) (Identity, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || hasGroup && group == "" {
		return Identity{}, fmt.Errorf("invalid script_user %q: want USER or USER:GROUP", spec)
	}
	var id Identity
	u, err := user.Lookup(name)
	if err != nil {
		if n, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			// A bare number need not be in /etc/passwd (containers).
			u, err = user.LookupId(name)
			if err != nil {
				u = nil
				id = Identity{Name: name, UID: uint32(n), GID: uint32(n)}
			}
		} else {
			return Identity{}, fmt.Errorf("script_user: no user %q on this system", name)
		}
	}
	if u != nil {
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		id = Identity{Name: u.Username, UID: uint32(uid), GID: uint32(gid)}
		if gs, err := u.GroupIds(); err == nil {
			for _, g := range gs {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != id.GID {
					id.Groups = append(id.Groups, uint32(n))
				}
			}
		}
	}
	if hasGroup {
		g, err := user.LookupGroup(group)
		switch {
		case err == nil:
			n, _ := strconv.ParseUint(g.Gid, 10, 32)
			id.GID = uint32(n)
		default:
			n, nerr := strconv.ParseUint(group, 10, 32)
			if nerr != nil {
				return Identity{}, fmt.Errorf("script_user: no group %q on this system", group)
			}
			id.GID = uint32(n)
		}
	}
	return id, nil
}
