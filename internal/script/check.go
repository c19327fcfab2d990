package script

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Shell runs the commands given as shell lines (health check scripts and the
// director's notify commands).
const Shell = "/bin/sh"

// Problem is something wrong with a command's files.
type Problem struct {
	Path string
	Msg  string
	// Insecure problems (writable by someone else) are errors while
	// script_security is on, warnings when it is off; the others (missing,
	// not executable, cannot tell which program runs) are always errors.
	Insecure bool
}

func (p *Problem) Error() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Refused is the error of a script Run would not start.
type Refused struct{ Problem *Problem }

func (r *Refused) Error() string {
	if r.Problem.Insecure {
		return "refused: " + r.Problem.Error()
	}
	return "cannot run: " + r.Problem.Error()
}

// need is the access a script needs to a file.
type need uint32

const (
	needExec need = 1
	needRead need = 4
)

type target struct {
	path string
	need need
}

// shellWords are words a shell runs itself: a line that starts with one
// runs no program file but the shell.
var shellWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`if then else elif fi case esac for while until do done in function select
		time ! { } [[ ]] [ test : true false echo printf exit return break continue cd eval export read readonly
		set shift trap type ulimit umask unset wait local let kill pwd getopts hash alias unalias jobs fg bg times`) {
		shellWords[w] = true
	}
}

// interpreters read their first operand as the script they run: that file
// is checked too, since whoever can change it runs code as the script user.
var interpreters = map[string]bool{
	"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true,
	"python": true, "python2": true, "python3": true, "perl": true, "ruby": true, "php": true, "lua": true, "node": true,
	"tclsh": true,
}

// Check reports what would keep line from running as id: the program (and
// the script an interpreter reads) must exist, be a regular file the user
// may execute (read), and, with security, neither it nor any directory on
// its path may be writable by anyone but root and the user. shell says the
// line runs with /bin/sh -c; otherwise it is split into words and run
// directly (VRRP scripts, as keepalived does).
func Check(line string, shell bool, id Identity) []*Problem {
	targets, prob := targetsOf(line, shell)
	var probs []*Problem
	for _, t := range targets {
		probs = append(probs, checkFile(t.path, t.need, id)...)
	}
	if prob != nil {
		probs = append(probs, prob)
	}
	return probs
}

// Program returns the file a line runs (the shell for shell lines), for
// exec; "" when it cannot be told.
func Program(line string, shell bool) string {
	if shell {
		return Shell
	}
	targets, _ := targetsOf(line, false)
	if len(targets) == 0 {
		return ""
	}
	return targets[0].path
}

func targetsOf(line string, shell bool) ([]target, *Problem) {
	words, err := Split(line)
	if err != nil {
		return nil, &Problem{Msg: err.Error()}
	}
	var ts []target
	if shell {
		ts = append(ts, target{Shell, needExec})
		for len(words) > 0 && isAssignment(words[0]) {
			words = words[1:]
		}
	}
	for len(words) > 0 {
		w := words[0]
		if shell {
			w = strings.TrimRight(w, ";&|")
			switch {
			case w == "exec" || w == "command" || w == "nohup":
				words = skipOptions(words[1:])
				continue
			case w == "." || w == "source":
				if len(words) > 1 {
					ts = append(ts, target{absolute(words[1]), needRead})
				}
				return ts, nil
			case shellWords[w]:
				return ts, nil
			case strings.ContainsAny(w, "$`*?~(){}<>|&;[]\"'\\"):
				return ts, &Problem{Insecure: true, Msg: fmt.Sprintf("cannot tell which program %q runs (shell expansion), so it cannot be checked: write the program's path first", w)}
			}
		}
		prog, err := lookPath(w)
		if err != nil {
			return ts, &Problem{Path: w, Msg: err.Error()}
		}
		ts = append(ts, target{prog, needExec})
		base := filepath.Base(prog)
		if base == "env" {
			words = words[1:]
			for len(words) > 0 && (strings.HasPrefix(words[0], "-") || isAssignment(words[0])) {
				words = words[1:]
			}
			shell = false
			continue
		}
		if interpreters[strings.TrimRight(base, "0123456789.")] || interpreters[base] {
			for _, a := range words[1:] {
				if a == "-c" || a == "-e" || a == "-m" || a == "-" || a == "--" {
					break
				}
				if strings.HasPrefix(a, "-") {
					continue
				}
				ts = append(ts, target{absolute(a), needRead})
				break
			}
		}
		return ts, nil
	}
	return ts, nil
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func skipOptions(words []string) []string {
	for len(words) > 0 && strings.HasPrefix(words[0], "-") {
		words = words[1:]
	}
	return words
}

func absolute(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// lookPath finds a program as the shell or execve would: a word with a
// slash is a path, other words are looked up in PATH.
func lookPath(w string) (string, error) {
	if strings.Contains(w, "/") {
		return absolute(w), nil
	}
	p, err := exec.LookPath(w)
	if err != nil {
		return "", errors.New("not found in PATH")
	}
	return absolute(p), nil
}

// checkFile checks path, as written and with its symbolic links resolved.
func checkFile(path string, nd need, id Identity) []*Problem {
	var probs []*Problem
	if _, err := os.Lstat(path); err != nil {
		return []*Problem{missing(path, err)}
	}
	probs = append(probs, checkChain(path, path, id)...)
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return append(probs, missing(path, err))
	}
	if real != path {
		probs = append(probs, checkChain(path, real, id)...)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return append(probs, missing(path, err))
	}
	if !fi.Mode().IsRegular() {
		return append(probs, &Problem{Path: path, Msg: "not a regular file"})
	}
	// Access as the user: search on every directory, then the file.
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		if st, err := statT(dir); err == nil && !allowed(st, id, needExec, true) {
			probs = append(probs, &Problem{Path: path, Msg: fmt.Sprintf("user %s may not enter %s (mode %04o)", id, dir, st.Mode&07777)})
			break
		}
		if dir == "/" || dir == "." {
			break
		}
	}
	st, _ := statT(real)
	if st != nil {
		if nd&needExec != 0 && isScript(real) {
			nd |= needRead // the interpreter opens it
		}
		if !allowed(st, id, nd, false) {
			what := "read and execute"
			switch {
			case nd == needRead || allowed(st, id, needExec, false):
				what = "read"
			case nd == needExec || allowed(st, id, needRead, false):
				what = "execute"
			}
			probs = append(probs, &Problem{Path: path, Msg: fmt.Sprintf("user %s may not %s it (mode %04o, owner uid %d)", id, what, st.Mode&07777, st.Uid)})
		}
	}
	return probs
}

func missing(path string, err error) *Problem {
	if errors.Is(err, fs.ErrNotExist) {
		return &Problem{Path: path, Msg: "not found"}
	}
	return &Problem{Path: path, Msg: err.Error()}
}

// checkChain checks p and every directory above it: each must be owned by
// root or the user, and writable by no one else (group write is allowed to
// group root, as keepalived does; a directory with the sticky bit, /tmp,
// may be writable by all: no one can replace another's file in it).
func checkChain(path, p string, id Identity) []*Problem {
	for {
		st, err := lstatT(p)
		if err != nil {
			return []*Problem{missing(path, err)}
		}
		mode := st.Mode
		isLink := mode&syscall.S_IFMT == syscall.S_IFLNK
		isDir := mode&syscall.S_IFMT == syscall.S_IFDIR
		sticky := isDir && mode&syscall.S_ISVTX != 0
		subject := "" // the file itself
		if p != path {
			subject = "directory " + p + " is "
			if isLink {
				subject = "symbolic link " + p + " is "
			}
		}
		// Group write is allowed to group root only: another group may have
		// members besides the script user.
		switch {
		case st.Uid != 0 && st.Uid != id.UID:
			return []*Problem{{Path: path, Insecure: true, Msg: fmt.Sprintf("%sowned by %s, not by root or the script user %s", subject, uidName(st.Uid), id)}}
		case isLink || sticky:
		case mode&0o002 != 0:
			return []*Problem{{Path: path, Insecure: true, Msg: fmt.Sprintf("%swritable by everyone (mode %04o)", subject, mode&07777)}}
		case mode&0o020 != 0 && st.Gid != 0:
			return []*Problem{{Path: path, Insecure: true, Msg: fmt.Sprintf("%swritable by group %s (mode %04o)", subject, gidName(st.Gid), mode&07777)}}
		}
		if p == "/" || p == "." {
			return nil
		}
		p = filepath.Dir(p)
	}
}

func allowed(st *syscall.Stat_t, id Identity, nd need, isDir bool) bool {
	bits := uint32(nd)
	if id.UID == 0 {
		if isDir || nd&needExec == 0 {
			return true
		}
		return st.Mode&0o111 != 0
	}
	switch {
	case st.Uid == id.UID:
		return (st.Mode>>6)&bits == bits
	case st.Gid == id.GID || slices.Contains(id.Groups, st.Gid):
		return (st.Mode>>3)&bits == bits
	}
	return st.Mode&bits == bits
}

// isScript reports whether path starts with #!: the kernel then runs its
// interpreter, which must be able to read it.
func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [2]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "#!"
}

func statT(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return &st, nil
}

func lstatT(p string) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return &st, nil
}

func uidName(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(s); err == nil {
		return "uid " + s + " (" + u.Username + ")"
	}
	return "uid " + s
}

func gidName(gid uint32) string {
	s := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(s); err == nil {
		return "gid " + s + " (" + g.Name + ")"
	}
	return "gid " + s
}
