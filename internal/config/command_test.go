package config

import (
	"slices"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"/bin/true", []string{"/bin/true"}},
		{"  /usr/bin/test  -e /tmp/x ", []string{"/usr/bin/test", "-e", "/tmp/x"}},
		{`/bin/sh -c 'echo "$1" a\b' "two words" x\ y`, []string{"/bin/sh", "-c", `echo "$1" a\b`, "two words", "x y"}},
		{`a ""`, []string{"a", ""}},
	} {
		got, err := SplitCommand(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "   ", `a "b`, `a\`} {
		if _, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q): no error", bad)
		}
	}
}
