package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cmd is one run of a configured command.
type Cmd struct {
	// Line is the command as configured. With Shell it runs as
	// /bin/sh -c LINE; otherwise it is split into words (Split) and run
	// directly, with Args appended.
	Line  string
	Shell bool
	Args  []string
	// Env is added to govs's environment.
	Env []string
	// MaxOutput bounds the output kept (stdout and stderr together).
	MaxOutput int
}

// ErrTimeout is a script killed because its context ended first.
var ErrTimeout = errors.New("timed out, process group killed")

// Run checks c's files as p says (a *Refused error when they fail) and runs
// it as p's user, in a process group of its own, until it exits or ctx
// ends. Either way the whole group is killed before Run returns, so a
// background child (`sleep 300 &`) does not outlive the script, and the
// script gets SIGKILL if govs dies first (only a child that leaves the
// group with setsid escapes). It returns the exit code (-1 when killed),
// the start of the output, and an error when the script could not run,
// timed out (ErrTimeout) or was killed by a signal.
func Run(ctx context.Context, p Policy, c Cmd) (code int, output string, err error) {
	id, err := p.Resolve()
	if err != nil {
		return -1, "", &Refused{&Problem{Msg: err.Error()}}
	}
	for _, pr := range Check(c.Line, c.Shell, id) {
		if !pr.Insecure || !p.Insecure {
			return -1, "", &Refused{pr}
		}
	}
	var argv []string
	if c.Shell {
		argv = []string{Shell, "-c", c.Line}
	} else {
		words, err := Split(c.Line)
		if err != nil {
			return -1, "", err
		}
		argv = append(words, c.Args...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if prog := Program(c.Line, c.Shell); prog != "" {
		cmd.Path, cmd.Err = prog, nil // the file checked, not another one found in PATH later
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if id.Switch {
		attr.Credential = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: id.Groups}
	}
	cmd.SysProcAttr = attr
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	out := &headBuffer{max: max(c.MaxOutput, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	// A child that left the group (setsid) and keeps the output open does
	// not hold Wait for longer than this.
	cmd.WaitDelay = time.Second

	// Pdeathsig fires when the thread that started the child ends, not the
	// process: keep this goroutine on its thread until the script is
	// reaped, so that no other goroutine's thread exit kills it early.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return -1, "", err
	}
	pid := cmd.Process.Pid
	stop := make(chan struct{})
	killed := make(chan bool, 1)
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-pid, syscall.SIGKILL)
			killed <- true
		case <-stop:
			killed <- false
		}
	}()
	// Wait for the script without reaping it: while it is a zombie its pid,
	// which is the group's id, cannot be reused, so killing the group
	// after it exited cannot hit anyone else.
	waitExited(pid)
	close(stop)
	timedOut := <-killed
	syscall.Kill(-pid, syscall.SIGKILL) // what it left behind in its group
	err = cmd.Wait()
	output = string(bytes.TrimSpace(out.bytes()))
	if timedOut {
		return -1, output, ErrTimeout
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, output, fmt.Errorf("killed by signal %v", ws.Signal())
		}
		// A file removed (or made unusable) between the check and the
		// exec fails in the shell with its own words ("cannot open"):
		// checked again, the failure reads as the check before a run
		// would have put it, the same on every run.
		for _, pr := range Check(c.Line, c.Shell, id) {
			if !pr.Insecure {
				return -1, output, &Refused{pr}
			}
		}
		return ee.ExitCode(), output, nil
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return -1, output, err
	}
	return cmd.ProcessState.ExitCode(), output, nil
}

// waitExited blocks until process pid has exited, leaving it waitable.
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
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
