package health

import (
	"context"
	"strings"

	"github.com/govs-lb/govs/internal/script"
)

// The script check is keepalived's MISC_CHECK: the command runs with
// /bin/sh -c; exit 0 means up and 1 down. With dynamic (misc_dynamic), an
// exit code of 2..255 means up with weight code-2; without it, any code but
// 0 means down. A script still running at the timeout fails and is killed
// with its process group. It runs as the configuration's script_user and
// is refused (the check fails, naming the file and why) when its program is
// missing or writable by someone else (internal/script).

func init() {
	Register("script", func(s Spec) (Checker, error) {
		return &scriptChecker{command: s.Command, dynamic: s.Dynamic, runAs: s.RunAs, env: []string{
			"GOVS_REAL_SERVER=" + s.Target.String(),
			"GOVS_REAL_SERVER_ADDRESS=" + s.Target.Addr().String(),
		}}, nil
	})
}

type scriptChecker struct {
	command string
	dynamic bool
	runAs   script.Policy
	env     []string
}

func (c *scriptChecker) Check(ctx context.Context) Result {
	code, out, err := RunCommand(ctx, c.runAs, c.command, c.env)
	if err != nil {
		return fail("script %s", withOutput(err.Error(), out))
	}
	switch {
	case code == 0:
		return pass("%s", withOutput("exit 0", out))
	case code >= 2 && c.dynamic:
		r := pass("%s", withOutput("exit "+itoa(code)+", weight "+itoa(code-2), out))
		r.WeightMode, r.Weight = WeightSet, code-2
		return r
	}
	return fail("%s", withOutput("exit "+itoa(code), out))
}

func withOutput(s, out string) string {
	if out == "" {
		return s
	}
	if i := strings.IndexByte(out, '\n'); i >= 0 {
		out = out[:i]
	}
	return s + ": " + out
}
