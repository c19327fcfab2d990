package health

import (
	"context"

	"github.com/govs-lb/govs/internal/script"
)

// RunCommand runs command with /bin/sh -c as p says (script.Run: as the
// script user, its files checked first, in its own process group, which is
// killed when the command returns or ctx ends). It returns the exit code
// (-1 if killed or refused) and the start of what the command wrote.
func RunCommand(ctx context.Context, p script.Policy, command string, env []string) (code int, output string, err error) {
	return script.Run(ctx, p, script.Cmd{Line: command, Shell: true, Env: env, MaxOutput: 512})
}
