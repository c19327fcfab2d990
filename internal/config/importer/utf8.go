package importer

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/config/keepalived"
)

var metaType = reflect.TypeOf(config.Meta{})

// invalidUTF8 reports every string of the model that is not UTF-8, at the
// place its key was written. keepalived takes any bytes, but a govs
// configuration is text: YAML cannot hold such a string as text (it writes
// it as !!binary, which loads back as the base64 text, not the bytes), so
// govs run and govs convert refuse it alike rather than run another command
// than the one written.
func invalidUTF8(c *config.Config) config.ErrorList {
	w := utf8Walk{seen: map[config.Error]bool{}}
	w.walk(reflect.ValueOf(c), config.Meta{}, "")
	return w.errs
}

type utf8Walk struct {
	errs config.ErrorList
	seen map[config.Error]bool // the members of a group share their lines: one error each
}

// walk checks v, the value of key in the mapping whose Meta is meta.
func (w *utf8Walk) walk(v reflect.Value, meta config.Meta, key string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			w.walk(v.Elem(), meta, key)
		}
	case reflect.String:
		if s := v.String(); !utf8.ValidString(s) {
			e := config.Error{Pos: meta.At(key), Msg: key + ": " + strconv.Quote(s) + " is not UTF-8 text, which a govs configuration must be"}
			if !w.seen[e] {
				w.seen[e] = true
				w.errs = append(w.errs, e)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			w.walk(v.Index(i), meta, key)
		}
	case reflect.Struct:
		t := v.Type()
		mapping := false
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Type == metaType {
				meta, mapping = v.Field(i).Interface().(config.Meta), true
			}
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || f.Type == metaType || name == "-" {
				continue // File and the resolved Check are not written
			}
			k := key
			if mapping && name != "" {
				k = name
			}
			w.walk(v.Field(i), meta, k)
		}
	}
}

// utf8Args reports, as an error at its place, the first of c's arguments
// from..to-1 that is not UTF-8; it returns false then. The importer checks the
// arguments it splits and quotes into a command itself: splitting would turn
// the bytes into U+FFFD, a valid string invalidUTF8 cannot tell from the
// one written.
func (im *importer) utf8Args(c *keepalived.Node, from, to int) bool {
	for i := from; i < to && i < len(c.Args); i++ {
		if !utf8.ValidString(c.Args[i]) {
			im.errorf(c.ArgPosition(i), "%s: %s is not UTF-8 text, which a govs configuration must be", c.Keyword, strconv.Quote(c.Args[i]))
			return false
		}
	}
	return true
}
