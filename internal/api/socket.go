package api

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/govs-lb/govs/internal/apiclient"
)

// prepareSocketDir creates the socket's directory. The temporary-directory
// fallback is shared with other users, so its directory must be a real
// directory of ours, mode 0700: anyone else's could hand govsadm a socket
// of theirs.
func prepareSocketDir(path string) error {
	dir := filepath.Dir(path)
	uid := os.Geteuid()
	if uid == 0 || path != apiclient.DefaultSocketFor(uid, noEnv) {
		return os.MkdirAll(dir, 0o755)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s must be a directory owned by uid %d with mode 0700; remove it, or set XDG_RUNTIME_DIR or --socket", dir, uid)
	}
	return nil
}

// noEnv is an empty environment: DefaultSocketFor a non-root uid in it is
// the temporary-directory fallback.
func noEnv(string) string { return "" }
