package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root: this test needs it")
		}
		t.Skip("needs root (to own files as other users and run scripts as them)")
	}
}

// openDir is a test directory others may enter (t.TempDir makes 0700 ones),
// owned by root, with /tmp (sticky) above it.
func openDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func ids(t *testing.T, name string) (uint32, uint32) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s here: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid)
}

func identity(t *testing.T, name string) Identity {
	t.Helper()
	uid, gid := ids(t, name)
	return Identity{Name: name, UID: uid, GID: gid, Switch: true}
}

func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func problems(ps []*Problem) string {
	var b []string
	for _, p := range ps {
		b = append(b, fmt.Sprintf("%v (insecure %v)", p, p.Insecure))
	}
	return strings.Join(b, "; ")
}

// Files others can change are refused, as keepalived's
// enable_script_security does; files only root and the script user can
// change pass; what is missing or not executable is said so.
func TestCheckOwnershipAndModes(t *testing.T) {
	requireRoot(t)
	nobody, daemon := identity(t, "nobody"), identity(t, "daemon")
	root := Identity{Name: "root"}
	dir := openDir(t)
	ok := filepath.Join(dir, "ok.sh")
	writeScript(t, ok, "exit 0", 0o755)

	owned := filepath.Join(dir, "nobodys.sh")
	writeScript(t, owned, "exit 0", 0o755)
	os.Chown(owned, int(nobody.UID), int(nobody.GID))

	wwDir := filepath.Join(dir, "ww")
	os.Mkdir(wwDir, 0o755)
	os.Chmod(wwDir, 0o777)
	inWW := filepath.Join(wwDir, "s.sh")
	writeScript(t, inWW, "exit 0", 0o755)

	sticky := filepath.Join(dir, "sticky")
	os.Mkdir(sticky, 0o755)
	os.Chmod(sticky, os.ModeSticky|0o777)
	inSticky := filepath.Join(sticky, "s.sh")
	writeScript(t, inSticky, "exit 0", 0o755)

	groupW := filepath.Join(dir, "groupw.sh")
	writeScript(t, groupW, "exit 0", 0o775)
	os.Chown(groupW, 0, int(daemon.GID))

	worldW := filepath.Join(dir, "worldw.sh")
	writeScript(t, worldW, "exit 0", 0o757)

	link := filepath.Join(dir, "link.sh")
	os.Symlink(owned, link)

	noExec := filepath.Join(dir, "noexec.sh")
	writeScript(t, noExec, "exit 0", 0o644)

	closed := filepath.Join(dir, "closed")
	os.Mkdir(closed, 0o700)
	inClosed := filepath.Join(closed, "s.sh")
	writeScript(t, inClosed, "exit 0", 0o755)

	for _, tc := range []struct {
		path     string
		id       Identity
		want     string // "" no problem
		insecure bool
	}{
		{ok, nobody, "", false},
		{ok, root, "", false},
		{owned, nobody, "", false}, // the user's own file: changing it gains nothing
		{owned, daemon, "owned by uid " + strconv.Itoa(int(nobody.UID)), true},
		{owned, root, "not by root or the script user root", true},
		{inWW, nobody, "directory " + wwDir + " is writable by everyone (mode 0777)", true},
		{inSticky, nobody, "", false},
		{groupW, nobody, "writable by group gid " + strconv.Itoa(int(daemon.GID)), true},
		{worldW, nobody, "writable by everyone (mode 0757)", true},
		{link, daemon, "owned by uid", true},
		{filepath.Join(dir, "missing.sh"), nobody, "not found", false},
		{noExec, nobody, "user nobody may not execute it (mode 0644", false},
		{noExec, root, "user root may not execute it", false},
		{inClosed, nobody, "user nobody may not enter " + closed, false},
		{inClosed, root, "", false},
	} {
		ps := Check(tc.path+" arg", false, tc.id)
		got := problems(ps)
		if tc.want == "" {
			if len(ps) != 0 {
				t.Errorf("%s as %s: %s", tc.path, tc.id, got)
			}
			continue
		}
		if len(ps) == 0 || !strings.Contains(got, tc.want) || ps[0].Insecure != tc.insecure {
			t.Errorf("%s as %s: got %q, want %q (insecure %v)", tc.path, tc.id, got, tc.want, tc.insecure)
		}
	}
	// An interpreter's script is checked too; a shell line's program too.
	if got := problems(Check("/bin/sh "+owned, false, daemon)); !strings.Contains(got, "owned by") {
		t.Errorf("sh SCRIPT: %q", got)
	}
	if got := problems(Check(inWW+" --x && echo", true, nobody)); !strings.Contains(got, "writable by everyone") {
		t.Errorf("shell line: %q", got)
	}
}

// What a line runs: the shell's builtins run no file, a path or a PATH
// name is the program, an interpreter's first operand is read.
func TestTargets(t *testing.T) {
	sh := target{Shell, needExec}
	test, _ := lookPath("test")
	for _, tc := range []struct {
		line  string
		shell bool
		want  []target
		prob  string
	}{
		{`test -e /x/up-$GOVS_REAL_SERVER_ADDRESS`, true, []target{sh}, ""},
		{`exit $(cat /x/code)`, true, []target{sh}, ""},
		{`echo up >> /x/log`, true, []target{sh}, ""},
		{`/usr/bin/test -e /x`, true, []target{sh, {"/usr/bin/test", needExec}}, ""},
		{`FOO=1 /opt/chk.sh a`, true, []target{sh, {"/opt/chk.sh", needExec}}, ""},
		{`exec /opt/chk.sh`, true, []target{sh, {"/opt/chk.sh", needExec}}, ""},
		{`. /opt/lib.sh`, true, []target{sh, {"/opt/lib.sh", needRead}}, ""},
		{`/bin/sh -x /opt/chk.sh`, false, []target{{"/bin/sh", needExec}, {"/opt/chk.sh", needRead}}, ""},
		{`/bin/sh -c 'exit 0'`, false, []target{{"/bin/sh", needExec}}, ""},
		{`/usr/bin/env A=1 /opt/p x`, false, []target{{"/usr/bin/env", needExec}, {"/opt/p", needExec}}, ""},
		{`test -e /x`, false, []target{{test, needExec}}, ""},
		{`$HOME/chk.sh`, true, []target{sh}, "cannot tell which program"},
		{`no-such-program-here`, false, nil, "not found in PATH"},
	} {
		got, prob := targetsOf(tc.line, tc.shell)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: targets %v, want %v", tc.line, got, tc.want)
		}
		if (prob == nil) != (tc.prob == "") || prob != nil && !strings.Contains(prob.Error(), tc.prob) {
			t.Errorf("%q: problem %v, want %q", tc.line, prob, tc.prob)
		}
	}
}

// Scripts run as the policy's user, not as root: nobody by default.
func TestRunAsUser(t *testing.T) {
	requireRoot(t)
	nobody := identity(t, "nobody")
	daemon := identity(t, "daemon")
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{}, fmt.Sprint(nobody.UID, " ", nobody.GID)},
		{Policy{User: "daemon"}, fmt.Sprint(daemon.UID, " ", daemon.GID)},
		{Policy{User: "daemon:" + strconv.Itoa(int(nobody.GID))}, fmt.Sprint(daemon.UID, " ", nobody.GID)},
		{Policy{User: "root"}, "0 0"},
		{Policy{Insecure: true}, "0 0"},
	} {
		code, out, err := Run(context.Background(), tc.p, Cmd{Line: `echo "$(id -u) $(id -g)"`, Shell: true, MaxOutput: 100})
		if err != nil || code != 0 || out != tc.want {
			t.Errorf("%+v: %d %q %v, want %q", tc.p, code, out, err, tc.want)
		}
	}
	if _, err := (Policy{User: "no-such-user-here"}).Resolve(); err == nil || !strings.Contains(err.Error(), `no user "no-such-user-here"`) {
		t.Errorf("missing user: %v", err)
	}
}

// A refused script does not run; with script_security off, it does.
func TestRunRefuses(t *testing.T) {
	requireRoot(t)
	nobody := identity(t, "nobody")
	dir := openDir(t)
	marker := filepath.Join(dir, "ran")
	s := filepath.Join(dir, "s.sh")
	writeScript(t, s, "touch "+marker, 0o755)
	os.Chown(s, int(nobody.UID), int(nobody.GID))
	_, _, err := Run(context.Background(), Policy{User: "root"}, Cmd{Line: s})
	var ref *Refused
	if !errors.As(err, &ref) || !ref.Problem.Insecure {
		t.Fatalf("run of a file nobody owns as root: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the refused script ran")
	}
	code, _, err := Run(context.Background(), Policy{Insecure: true}, Cmd{Line: s})
	if err != nil || code != 0 {
		t.Fatalf("script_security off: %d %v", code, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("script_security off: the script did not run")
	}
	_, _, err = Run(context.Background(), Policy{}, Cmd{Line: filepath.Join(dir, "missing.sh")})
	if !errors.As(err, &ref) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing script: %v", err)
	}
}

// A script that fails because its file went away after the check (removed
// by an operator mid-run: the shell then says "cannot open") reads as not
// found, the same as when the check sees it gone; a script that fails with
// its file in place keeps its exit code.
func TestRunFileGoneMeanwhile(t *testing.T) {
	requireRoot(t)
	dir := openDir(t)
	s := filepath.Join(dir, "gone.sh")
	writeScript(t, s, `rm -f "$0"; exit 3`, 0o755)
	code, _, err := Run(context.Background(), Policy{User: "root"}, Cmd{Line: s, Shell: true})
	var ref *Refused
	if !errors.As(err, &ref) || ref.Problem.Msg != "not found" || code != -1 {
		t.Fatalf("script gone during its run: %d %v, want not found", code, err)
	}
	stay := filepath.Join(dir, "stay.sh")
	writeScript(t, stay, "exit 3", 0o755)
	if code, _, err := Run(context.Background(), Policy{User: "root"}, Cmd{Line: stay, Shell: true}); code != 3 || err != nil {
		t.Fatalf("failing script: %d %v, want exit 3", code, err)
	}
}

// processesWith lists the processes whose command line has marker.
func processesWith(marker string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), marker) {
			found = append(found, e.Name())
		}
	}
	return found
}

// `sleep 300 & exit 0`: the background child dies with the script's group
// as soon as the script returns, and Run does not wait for it.
func TestRunKillsBackgroundChildren(t *testing.T) {
	marker := fmt.Sprintf("300.%d%d", os.Getpid(), time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		for _, pid := range processesWith(marker) {
			if n, err := strconv.Atoi(pid); err == nil {
				// Only our marked sleeps: started by this test.
				p, _ := os.FindProcess(n)
				p.Kill()
			}
		}
	})
	p := Policy{}
	if os.Geteuid() != 0 {
		p = Policy{User: strconv.Itoa(os.Geteuid())}
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		code, _, err := Run(context.Background(), p, Cmd{Line: "sleep " + marker + " & exit 0", Shell: true})
		if err != nil || code != 0 {
			t.Fatalf("run %d: %d %v", i, code, err)
		}
		if el := time.Since(start); el > 20*time.Second {
			t.Fatalf("run %d took %v: it waited for the background child", i, el)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(processesWith(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("background children still run: %v", processesWith(marker))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A timeout kills the group too.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := Run(ctx, p, Cmd{Line: "sleep " + marker + " & sleep " + marker, Shell: true}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	for len(processesWith(marker)) > 0 {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("children of a timed out script still run: %v", processesWith(marker))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSplit(t *testing.T) {
	got, err := Split(`/bin/sh -c 'echo "$1" a\b' "two words" x\ y`)
	if err != nil || !slices.Equal(got, []string{"/bin/sh", "-c", `echo "$1" a\b`, "two words", "x y"}) {
		t.Fatalf("Split = %q, %v", got, err)
	}
}
