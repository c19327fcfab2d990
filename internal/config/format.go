package config

import (
	"regexp"
	"strings"
)

// Configuration formats: what --format names and DetectFormat returns.
const (
	FormatAuto       = "auto"
	FormatYAML       = "yaml"
	FormatKeepalived = "keepalived"
)

var yamlKeyLine = regexp.MustCompile(`^("[^"]*"|'[^']*'|[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*:([ \t]|$)`)

// DetectFormat tells a govs YAML file from a keepalived.conf by its first
// line that is neither blank nor a comment (# or !): the file is YAML when
// that line is a mapping key (KEY: or KEY: value), a document start (---), a
// directive (%), a flow mapping ({) or a list item (- ); it is keepalived
// otherwise, since keepalived lines are KEYWORD [ARGS] [{] and a keyword never
// ends with a colon. A file with no such line is YAML (and an error: empty).
// Deciding on the first line only, a YAML file with a syntax error further
// down is still reported as YAML.
//
// It lives here, not beside the keepalived importer, because it reads text
// only; internal/config/importer.Load uses it to choose a reader.
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
