package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// RunCommand runs command with /bin/sh -c in its own process group and
// waits for it. When ctx ends first, the whole group is killed (the shell
// and whatever it started in the group) and the shell reaped, so a hung
// script leaves neither processes nor zombies. It returns the exit code
// (-1 if killed) and the start of what the command wrote.
func RunCommand(ctx context.Context, command string, env []string) (code int, output string, err error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Background children that keep the output pipe open do not hold Wait
	// for longer than this.
	cmd.WaitDelay = time.Second
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	out := &headBuffer{max: 512}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	output = string(bytes.TrimSpace(out.bytes()))
	if ctx.Err() != nil {
		return -1, output, fmt.Errorf("timed out, process group killed")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, output, fmt.Errorf("killed by signal %v", ws.Signal())
		}
		return ee.ExitCode(), output, nil
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return -1, output, err
	}
	return cmd.ProcessState.ExitCode(), output, nil
}

// headBuffer keeps the first max bytes written to it and drops the rest,
// never blocking the writer.
type headBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *headBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
