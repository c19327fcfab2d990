package api

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultSocket(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	none := env(nil)
	xdg := env(map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"})
	if got := DefaultSocketFor(0, xdg); got != "/run/govs/govs.sock" {
		t.Errorf("root: %s", got)
	}
	if got := DefaultSocketFor(1000, xdg); got != "/run/user/1000/govs.sock" {
		t.Errorf("user with XDG_RUNTIME_DIR: %s", got)
	}
	if got := DefaultSocketFor(1000, env(map[string]string{"XDG_RUNTIME_DIR": "relative"})); got != filepath.Join(os.TempDir(), "govs-1000", "govs.sock") {
		t.Errorf("relative XDG_RUNTIME_DIR is ignored: %s", got)
	}
	if got := DefaultSocketFor(1000, none); got != filepath.Join(os.TempDir(), "govs-1000", "govs.sock") {
		t.Errorf("user without XDG_RUNTIME_DIR: %s", got)
	}

	// govsadm: the user's own director first, then the system's.
	has := func(paths ...string) func(string) bool {
		return func(p string) bool {
			for _, q := range paths {
				if p == q {
					return true
				}
			}
			return false
		}
	}
	if got := ClientSocket(1000, xdg, has(DefaultSocket)); got != DefaultSocket {
		t.Errorf("user, only the system director: %s", got)
	}
	if got := ClientSocket(1000, xdg, has(DefaultSocket, "/run/user/1000/govs.sock")); got != "/run/user/1000/govs.sock" {
		t.Errorf("user with a director of their own: %s", got)
	}
	if got := ClientSocket(1000, xdg, has()); got != "/run/user/1000/govs.sock" {
		t.Errorf("user, no director: %s", got)
	}
	if got := ClientSocket(0, xdg, has()); got != DefaultSocket {
		t.Errorf("root: %s", got)
	}
}
