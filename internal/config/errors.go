package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in a configuration file. Line and Col count from 1.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a configuration file.
type Error struct {
	Pos Pos
	Msg string
}

func (e Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found in a file, in file order.
type ErrorList []Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (l *ErrorList) add(p Pos, format string, args ...any) {
	*l = append(*l, Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		return a.File < b.File || a.File == b.File && (a.Line < b.Line || a.Line == b.Line && a.Col < b.Col)
	})
}

// err returns the list as an error, or nil when it is empty.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}

// A Warning is something a configuration says that govs reads but does not
// apply, such as a keepalived option with no govs equivalent.
type Warning struct {
	Pos Pos
	Msg string
}

// String returns "FILE:LINE:COL: warning: MESSAGE".
func (w Warning) String() string { return w.Pos.String() + ": warning: " + w.Msg }
