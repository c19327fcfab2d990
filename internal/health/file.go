package health

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
)

// The file check follows keepalived's FILE_CHECK: the file holds a whole
// number. With file_weight 0, 0 means up and anything else down. Otherwise
// the check passes, and with dynamic the real server's weight becomes its
// configured weight plus value x file_weight (a result below 0 fails the
// check; above 65535 is 65535). A missing, unreadable or non-numeric file
// fails the check.

func init() {
	Register("file", func(s Spec) (Checker, error) {
		return &fileChecker{path: s.File, mult: s.FileWeight, dynamic: s.Dynamic}, nil
	})
}

type fileChecker struct {
	path    string
	mult    int
	dynamic bool
}

func (c *fileChecker) Check(ctx context.Context) Result {
	b, err := readHead(c.path, 64)
	if err != nil {
		return fail("file: %v", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return fail("file %s: not a whole number: %q", c.path, strings.TrimSpace(string(b)))
	}
	if c.mult == 0 {
		if v != 0 {
			return fail("file %s: %d", c.path, v)
		}
		return pass("file %s: 0", c.path)
	}
	r := pass("file %s: %d", c.path, v)
	if c.dynamic {
		r.WeightMode, r.Weight = WeightAdd, int(v)*c.mult
	}
	return r
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := f.Read(buf)
	if m == 0 && err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:m], nil
}

func itoa(n int) string { return strconv.Itoa(n) }
