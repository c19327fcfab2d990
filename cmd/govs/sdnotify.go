package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// notifier tells systemd how `govs run` is doing, for a Type=notify unit
// (packaging/systemd/govs.service): READY=1 once it serves, RELOADING=1
// while a SIGHUP is applied, STOPPING=1 when it shuts down. Without
// $NOTIFY_SOCKET (not started by systemd) it does nothing.
//
// The protocol is one datagram per message to a unix socket (sd_notify(3));
// written here in a few lines rather than taking go-systemd, which has no
// MONOTONIC_USEC helper either.
type notifier struct {
	log  *slog.Logger
	addr *net.UnixAddr
}

// newNotifier reads $NOTIFY_SOCKET and takes it out of the environment, so
// that the scripts govs runs do not inherit it (sd_notify's
// unset_environment).
func newNotifier(log *slog.Logger) *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &notifier{log: log}
	}
	os.Unsetenv("NOTIFY_SOCKET")
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		// vsock and other forms are for VMs and containers, not services.
		log.Warn("NOTIFY_SOCKET is not a unix socket path: systemd will not hear from govs", "notify_socket", path)
		return &notifier{log: log}
	}
	// Go's net package maps a leading '@' to Linux's abstract namespace.
	return &notifier{log: log, addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// send writes one notification; failures are logged, never fatal: the
// director serves whether or not systemd listens.
func (n *notifier) send(lines ...string) {
	if n == nil || n.addr == nil {
		return
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err == nil {
		_, err = c.Write([]byte(strings.Join(lines, "\n") + "\n"))
		c.Close()
	}
	if err != nil {
		n.log.Warn("cannot notify systemd", "notify_socket", n.addr.Name, "err", err)
	}
}

func (n *notifier) ready(services int) {
	n.send("READY=1", fmt.Sprintf("STATUS=serving %d virtual services", services))
}

// reloading carries MONOTONIC_USEC, which systemd 253+ requires with
// RELOADING=1 to tell this reload from an earlier one.
func (n *notifier) reloading() {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000), "STATUS=reloading")
}

func (n *notifier) stopping() { n.send("STOPPING=1", "STATUS=stopping: connections finishing") }
