package apiclient

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultSocket is the system director's control socket: where govs run by
// root (the systemd unit) serves the API, and where govsadm finds it.
const DefaultSocket = "/run/govs/govs.sock"

// SocketEnv names the environment variable that overrides the default
// socket, for govs and govsadm alike.
const SocketEnv = "GOVS_SOCKET"

// DefaultSocketFor is the socket a user's govs serves when neither
// --socket, GOVS_SOCKET nor api.socket names one: DefaultSocket for root;
// for anyone else, who cannot create /run/govs, $XDG_RUNTIME_DIR/govs.sock,
// or without it govs-UID/govs.sock in the temporary directory (a private
// directory govs creates and checks).
func DefaultSocketFor(uid int, getenv func(string) string) string {
	if uid == 0 {
		return DefaultSocket
	}
	if d := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "govs.sock")
	}
	return tmpSocket(uid)
}

func tmpSocket(uid int) string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("govs-%d", uid), "govs.sock")
}

// DefaultSocketPath is DefaultSocketFor this process's user.
func DefaultSocketPath() string { return DefaultSocketFor(os.Geteuid(), os.Getenv) }

// ClientSocket is where a client (govsadm) looks by default: the socket its
// user's govs would serve, if one is there; else the system director's, if
// that exists (a non-root operator in the socket's group administers it);
// else the user's, so that the error names the path govs would use.
func ClientSocket(uid int, getenv func(string) string, exists func(string) bool) string {
	own := DefaultSocketFor(uid, getenv)
	if own != DefaultSocket && !exists(own) && exists(DefaultSocket) {
		return DefaultSocket
	}
	return own
}

// ClientSocketPath is ClientSocket for this process.
func ClientSocketPath() string {
	return ClientSocket(os.Geteuid(), os.Getenv, func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode()&os.ModeSocket != 0
	})
}
