package keepalived

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// fileSystem is where configuration files are read: the operating system's or
// an fs.FS.
type fileSystem interface {
	readFile(name string) ([]byte, error)
	stat(name string) (fs.FileInfo, error)
	glob(pattern string) ([]string, error)
	join(dir, name string) string // name relative to dir, unless absolute
	dir(name string) string       // the directory of a file, for ${_PWD}
	key(name string) string       // the same for every spelling of one path
}

func newFileSystem(fsys fs.FS) fileSystem {
	if fsys == nil {
		return osFS{}
	}
	return ioFS{fsys}
}

type osFS struct{}

func (osFS) readFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFS) stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (osFS) glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }
func (osFS) join(dir, name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(filepath.Dir(dir), name)
}
func (o osFS) dir(name string) string { return filepath.Dir(o.key(name)) }
func (osFS) key(name string) string {
	if a, err := filepath.Abs(name); err == nil {
		return a
	}
	return filepath.Clean(name)
}

// ioFS reads from an fs.FS as from a file system rooted at "/".
type ioFS struct{ fsys fs.FS }

var errOutside = errors.New("the path leads outside the file system's root")

// fsPath turns a path into a name in the fs.FS.
func fsPath(name string) (string, error) {
	c := strings.TrimLeft(path.Clean("/"+name), "/")
	if strings.HasPrefix(path.Clean(name), "../") || path.Clean(name) == ".." {
		return "", errOutside
	}
	if c == "" {
		c = "."
	}
	return c, nil
}

func (f ioFS) readFile(name string) ([]byte, error) {
	n, err := fsPath(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fs.ReadFile(f.fsys, n)
}

func (f ioFS) stat(name string) (fs.FileInfo, error) {
	n, err := fsPath(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fs.Stat(f.fsys, n)
}

func (f ioFS) glob(pattern string) ([]string, error) {
	n, err := fsPath(pattern)
	if err != nil {
		return nil, err
	}
	m, err := fs.Glob(f.fsys, n)
	if err != nil {
		return nil, err
	}
	if path.IsAbs(pattern) {
		for i := range m {
			m[i] = "/" + m[i]
		}
	}
	return m, nil
}

func (ioFS) join(dir, name string) string {
	if path.IsAbs(name) {
		return path.Clean(name)
	}
	return path.Join(path.Dir(dir), name)
}

func (f ioFS) dir(name string) string { return path.Dir(f.key(name)) }
func (ioFS) key(name string) string   { return path.Clean("/" + name) }

// hasMeta reports whether a glob pattern has wildcards.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[`) }

const maxBraceAlternatives = 1024

// expandBraces expands csh braces as glob(GLOB_BRACE) does: "a{b,c{d,e}}f" is
// abf, acdf, acef. A '{' with no matching '}' is an ordinary character.
func expandBraces(p string) ([]string, error) {
	out := []string{}
	var expand func(s string) error
	expand = func(s string) error {
		if len(out) > maxBraceAlternatives {
			return fmt.Errorf("more than %d alternatives in braces", maxBraceAlternatives)
		}
		open := -1
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '{' {
				open = i
				break
			}
		}
		if open < 0 {
			out = append(out, s)
			return nil
		}
		depth, close := 0, -1
		var commas []int
		for i := open + 1; i < len(s) && close < 0; i++ {
			switch s[i] {
			case '\\':
				i++
			case '{':
				depth++
			case '}':
				if depth == 0 {
					close = i
				} else {
					depth--
				}
			case ',':
				if depth == 0 {
					commas = append(commas, i)
				}
			}
		}
		if close < 0 {
			out = append(out, s)
			return nil
		}
		prefix, suffix := s[:open], s[close+1:]
		from := open + 1
		for _, c := range append(commas, close) {
			if err := expand(prefix + s[from:c] + suffix); err != nil {
				return err
			}
			from = c + 1
		}
		return nil
	}
	err := expand(p)
	return out, err
}

// include reads the files an include line names. keepalived's variants add
// checks: includer that each match is a readable file, includew that a
// wildcard matches something, includeb that each alternative of braces does,
// includem that a plain name exists (always checked here), includea all of
// them.
func (p *parser) include(kw, pattern string, pos Position) {
	readable := kw != "include"
	wildcard := kw == "includew" || kw == "includea"
	brace := kw == "includeb" || kw == "includea"
	if len(pattern) >= 2 && pattern[0] == '"' && pattern[len(pattern)-1] == '"' {
		// keepalived 2.2 takes the quotes as part of the name, 2.0
		// removes them; a file name hardly starts with a quote.
		pattern = pattern[1 : len(pattern)-1]
	}
	if pattern == "" {
		p.errorf(pos, "%s needs a file name or pattern", kw)
		return
	}
	alts, err := expandBraces(pattern)
	if err != nil {
		p.errorf(pos, "%s %s: %v", kw, pattern, err)
		return
	}
	braces := len(alts) > 1 || alts[0] != pattern
	cur := p.stack[len(p.stack)-1].name
	var files []string
	for _, alt := range alts {
		full := p.fs.join(cur, alt)
		meta := hasMeta(alt)
		var matches []string
		if meta {
			matches, err = p.fs.glob(full)
			if err != nil {
				p.errorf(pos, "%s %s: bad pattern: %v", kw, pattern, err)
				continue
			}
			if len(matches) == 0 {
				switch {
				case wildcard:
					p.errorf(pos, "%s %s: no file matches %s", kw, pattern, full)
				case braces && brace:
					p.errorf(pos, "%s %s: no file matches %s", kw, pattern, full)
				default:
					p.warnf(pos, "%s %s: no file matches %s", kw, pattern, full)
				}
				continue
			}
		} else {
			if _, err := p.fs.stat(full); err != nil {
				switch {
				case !errors.Is(err, fs.ErrNotExist):
					p.errorf(pos, "%s %s: %s", kw, full, errText(err))
				case braces && !brace:
					p.warnf(pos, "%s %s: no file %s", kw, pattern, full)
				default:
					p.errorf(pos, "%s: file %s not found", kw, full)
				}
				continue
			}
			matches = []string{full}
		}
		for _, m := range matches {
			fi, err := p.fs.stat(m)
			if err != nil {
				p.errorf(pos, "%s %s: %s", kw, m, errText(err))
				continue
			}
			switch {
			case fi.IsDir() && meta:
				// keepalived skips directories a wildcard matches.
			case fi.IsDir():
				p.errorf(pos, "%s %s: is a directory (to read the files in it, include %s)", kw, m, path.Join(alt, "*.conf"))
			case !fi.Mode().IsRegular() || fi.Mode()&0o111 != 0:
				if readable {
					p.errorf(pos, "%s %s: not a regular, non-executable file", kw, m)
				} else {
					p.warnf(pos, "%s %s: skipped, as keepalived skips files that are not regular or are executable", kw, m)
				}
			default:
				files = append(files, m)
			}
		}
	}
	for _, f := range files {
		if p.stop {
			return
		}
		p.readInclude(f, pos)
	}
}

func (p *parser) readInclude(name string, pos Position) {
	if len(p.stack) > maxIncludeDepth {
		p.errorf(pos, "includes nested more than %d deep", maxIncludeDepth)
		return
	}
	key := p.fs.key(name)
	for i, s := range p.stack {
		if s.key == key {
			chain := make([]string, 0, len(p.stack)-i+1)
			for _, s := range p.stack[i:] {
				chain = append(chain, s.name)
			}
			chain = append(chain, name)
			p.errorf(pos, "include loop: %s", strings.Join(chain, " includes "))
			return
		}
	}
	src, err := p.fs.readFile(name)
	if err != nil {
		p.errorf(pos, "include %s: %s", name, errText(err))
		return
	}
	p.file.Files = append(p.file.Files, name)
	p.parseSource(name, key, src)
}
