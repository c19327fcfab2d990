package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// Abuse campaign, scripts and addresses (issue 21 items 6, 9, 10, 11; issue
// 20's missing scripts): what a careless operator or a non-root user on the
// director could do with the scripts govs runs and the addresses it
// listens on, each against the real binary.

func requireRootFor(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs as root: %s", why)
		}
		t.Skipf("needs root: %s", why)
	}
}

// scriptDir is a test directory the script user may enter (t.TempDir makes
// 0700 ones), owned by root and writable by root only.
func scriptDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// outDir is a directory where scripts running as any user can write.
func outDir(t *testing.T, parent string) string {
	t.Helper()
	d := filepath.Join(parent, "out")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

func script(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func lookupUser(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s on this machine", name)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// govsCheck runs govs check -c file and returns its exit code and output.
func govsCheck(t *testing.T, file string) (int, string) {
	t.Helper()
	out, err := exec.Command(govsBin, "check", "-c", file).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatal(err)
	return -1, ""
}

// govsRunFails runs govs run -c file, which must exit 1 at once (bounded),
// and returns its output.
func govsRunFails(t *testing.T, file string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "govs.sock")
	d := runDaemon(t, "govs", exec.Command(govsBin, "--socket", sock, "run", "-c", file), 0)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("govs run of a refused configuration still runs:\n%s", d.log())
	}
	var ee *exec.ExitError
	if !errors.As(d.err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("govs run: %v, want exit 1:\n%s", d.err, d.log())
	}
	return d.log()
}

func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: no %q in:\n%s", what, w, out)
		}
	}
}

// A script a non-root user can change is refused by check (at its line),
// by run and by reload, wherever it is used: a health check (MISC_CHECK),
// a notify command, a VRRP track or notify script. Old govs ran them as
// root and said "configuration OK".
func TestAbuseScriptWritableByOthersRefused(t *testing.T) {
	requireRootFor(t, "files owned by nobody, scripts run as another user")
	nobodyUID, nobodyGID := lookupUser(t, "nobody")
	dir := scriptDir(t)
	out := outDir(t, dir)
	marker := filepath.Join(out, "ran")
	owned := filepath.Join(dir, "owned-by-nobody.sh")
	script(t, owned, "echo ran >> "+marker)
	if err := os.Chown(owned, nobodyUID, nobodyGID); err != nil {
		t.Fatal(err)
	}
	ww := filepath.Join(dir, "world-writable")
	os.Mkdir(ww, 0o755)
	os.Chmod(ww, 0o777)
	inWW := filepath.Join(ww, "check.sh")
	script(t, inWW, "echo ran >> "+marker)
	wwNotify := filepath.Join(dir, "notify-world-writable.sh")
	script(t, wwNotify, "echo ran >> "+marker)
	os.Chmod(wwNotify, 0o777)

	rs := loopback.LineServer(t, "a")
	vip := loopback.Addr(t, "tcp")
	// script_user root: the case, a nobody-owned script run as root.
	file := filepath.Join(dir, "govs.yaml")
	writeFile(t, file, fmt.Sprintf(`script_user: root
virtual_servers:
  - address: %s
    health_check: {type: script, command: %s, interval: 100ms}
    real_servers:
      - address: %s
        notify_down: %s
vrrp_instances:
  - name: VI_1
    interface: lo
    virtual_router_id: 51
    virtual_ipaddresses: [192.0.2.10/32]
    notify_master: %s
    track_scripts:
      - {name: chk, script: %s}
`, vip, owned, rs, wwNotify, inWW, owned))
	code, msg := govsCheck(t, file)
	if code != 1 {
		t.Fatalf("check: exit %d, want 1:\n%s", code, msg)
	}
	wantLines(t, "check", msg,
		file+":4:43: health check command "+owned+": owned by uid "+strconv.Itoa(nobodyUID),
		file+":7:22: notify_down "+wwNotify+": writable by everyone (mode 0777): refused",
		file+":13:20: notify_master of VI_1 "+inWW+": directory "+ww+" is writable by everyone (mode 0777): refused",
		file+":15:29: track script chk "+owned+": owned by uid "+strconv.Itoa(nobodyUID))
	wantLines(t, "run", govsRunFails(t, file), file+":4:43: health check command "+owned)

	// Default user (nobody): the world-writable directory is still refused.
	writeFile(t, file, fmt.Sprintf(`virtual_servers:
  - address: %s
    health_check: {type: script, command: %s, interval: 100ms}
    real_servers: [{address: %s}]
`, vip, inWW, rs))
	code, msg = govsCheck(t, file)
	if code != 1 || !strings.Contains(msg, file+":3:43: health check command "+inWW+": directory "+ww+" is writable by everyone") {
		t.Fatalf("check, default user: exit %d:\n%s", code, msg)
	}
	govsRunFails(t, file)

	// A reload to it is refused and the running configuration kept.
	good := fmt.Sprintf("virtual_servers:\n  - address: %s\n    real_servers: [{address: %s}]\n", vip, rs)
	writeFile(t, file, good)
	d := startGovs(t, file)
	writeFile(t, file, fmt.Sprintf(`script_user: root
virtual_servers:
  - address: %s
    health_check: {type: script, command: %s, interval: 100ms}
    real_servers: [{address: %s}]
`, vip, owned, rs))
	d.signal(t, syscall.SIGHUP)
	loopback.WaitFor(t, "the reload to be rejected", func() bool {
		return strings.Contains(d.log(), "reload rejected") && strings.Contains(d.log(), owned)
	})
	if name, err := ask(vip); err != nil || name != "a" {
		t.Fatalf("after a refused reload: %q %v", name, err)
	}
	time.Sleep(300 * time.Millisecond) // three intervals of the refused check
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a refused script ran")
	}
}

// Scripts run as script_user, nobody by default, not as root: the health
// check and the notify command write their uid.
func TestAbuseScriptRunsAsScriptUser(t *testing.T) {
	requireRootFor(t, "scripts run as another user only when govs is root")
	nobodyUID, _ := lookupUser(t, "nobody")
	daemonUID, _ := lookupUser(t, "daemon")
	for _, tc := range []struct {
		top  string
		want int
	}{
		{"", nobodyUID},
		{"script_user: daemon\n", daemonUID},
	} {
		dir := scriptDir(t)
		out := outDir(t, dir)
		check := filepath.Join(dir, "check.sh")
		script(t, check, "echo \"check $(id -u)\" >> "+out+"/ids; exit 1")
		notify := filepath.Join(dir, "notify.sh")
		script(t, notify, "echo \"notify $(id -u)\" >> "+out+"/ids")
		file := filepath.Join(dir, "govs.yaml")
		writeFile(t, file, fmt.Sprintf(`%svirtual_servers:
  - address: %s
    health_check: {type: script, command: %s, interval: 100ms, rise: 1, fall: 1}
    real_servers:
      - address: %s
        notify_down: %s
`, tc.top, loopback.Addr(t, "tcp"), check, loopback.LineServer(t, "a"), notify))
		if code, msg := govsCheck(t, file); code != 0 {
			t.Fatalf("check: %d %s", code, msg)
		}
		d := startGovs(t, file)
		ids := filepath.Join(out, "ids")
		loopback.WaitFor(t, "the check and the notify command", func() bool {
			b, _ := os.ReadFile(ids)
			return strings.Contains(string(b), "check ") && strings.Contains(string(b), "notify ")
		})
		d.signal(t, syscall.SIGTERM)
		<-d.done
		b, _ := os.ReadFile(ids)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			_, uid, _ := strings.Cut(line, " ")
			if uid != strconv.Itoa(tc.want) {
				t.Errorf("%q: a script ran as uid %s, want %d:\n%s", tc.top, uid, tc.want, b)
			}
		}
	}
}

// markedProcesses lists the processes whose command line holds marker.
func markedProcesses(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// `sleep 300 & exit 0` as a health check: old govs left one sleep per
// interval, still running after it exited. Each script runs in a process
// group that is killed when it returns.
func TestAbuseScriptBackgroundChildrenDie(t *testing.T) {
	// A marker of our own: only processes this test started carry it.
	marker := fmt.Sprintf("300.%d%06d", os.Getpid(), time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		for _, pid := range markedProcesses(marker) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	dir := scriptDir(t)
	out := outDir(t, dir)
	runs := filepath.Join(out, "runs")
	file := filepath.Join(dir, "govs.yaml")
	top := ""
	if os.Geteuid() != 0 {
		top = "script_user: " + strconv.Itoa(os.Geteuid()) + "\n"
	}
	writeFile(t, file, fmt.Sprintf(`%svirtual_servers:
  - address: %s
    health_check: {type: script, command: "echo run >> %s; sleep %s & exit 0", interval: 100ms}
    real_servers: [{address: %s}]
`, top, loopback.Addr(t, "tcp"), runs, marker, loopback.LineServer(t, "a")))
	d := startGovs(t, file)
	count := func() int {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "run")
	}
	loopback.WaitFor(t, "five checks", func() bool { return count() >= 5 })
	// At most the sleep of a check running right now may exist.
	if n := len(markedProcesses(marker)); n > 1 {
		t.Fatalf("%d background children of %d checks still run", n, count())
	}
	d.signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("govs did not stop")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(markedProcesses(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after govs exited, %d background children of its checks still run", len(markedProcesses(marker)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A script that is missing or not executable is reported by check at its
// line; one that disappears while govs runs fails its check, logged with
// the script's name and path (keepalived disables it; govs counts it as
// failing, so its real server is not kept in service unchecked).
func TestAbuseScriptMissing(t *testing.T) {
	dir := scriptDir(t)
	vip := loopback.Addr(t, "tcp")
	rs := loopback.LineServer(t, "a")
	noexec := filepath.Join(dir, "noexec.sh")
	os.WriteFile(noexec, []byte("#!/bin/sh\nexit 0\n"), 0o644)
	top := ""
	if os.Geteuid() != 0 {
		top = "script_user: " + strconv.Itoa(os.Geteuid()) + "\n"
	}
	file := filepath.Join(dir, "govs.yaml")
	writeFile(t, file, fmt.Sprintf(`%svirtual_servers:
  - address: %s
    health_check: {type: script, command: %s/missing.sh}
    quorum_up: %s
    real_servers: [{address: %s}]
`, top, vip, dir, noexec, rs))
	code, msg := govsCheck(t, file)
	if code != 1 {
		t.Fatalf("check: exit %d:\n%s", code, msg)
	}
	line := 1
	if top != "" {
		line = 2
	}
	wantLines(t, "check", msg,
		fmt.Sprintf("%s:%d:43: health check command %s/missing.sh: not found", file, line+2, dir),
		fmt.Sprintf("%s:%d:16: quorum_up %s: user ", file, line+3, noexec))

	check := filepath.Join(dir, "check.sh")
	script(t, check, "exit 0")
	writeFile(t, file, fmt.Sprintf(`%svirtual_servers:
  - address: %s
    health_check: {type: script, command: %s, interval: 100ms, rise: 1, fall: 1}
    real_servers: [{address: %s}]
`, top, vip, check, rs))
	d := startGovs(t, file)
	if name, err := ask(vip); err != nil || name != "a" {
		t.Fatalf("before: %q %v", name, err)
	}
	os.Remove(check)
	loopback.WaitFor(t, "the missing script to be logged", func() bool {
		return strings.Contains(d.log(), check+": not found")
	})
}

// A real server that is its own VIP (or another VIP of the configuration)
// loops connections through govs until descriptors run out; 0.0.0.0 beside
// a specific address on one port cannot be bound by run. Old govs check
// said OK to both.
func TestAbuseAddressLoopAndOverlap(t *testing.T) {
	dir := t.TempDir()
	port := loopback.FreePort(t, "tcp")
	rs := loopback.LineServer(t, "a")
	for _, tc := range []struct {
		name, src, want string
	}{
		{"own VIP", fmt.Sprintf(`virtual_servers:
  - address: 127.0.0.1:%d
    real_servers:
      - address: 127.0.0.1:%d
`, port, port), fmt.Sprintf(":4:18: real server 127.0.0.1:%d is this virtual server's own address", port)},
		{"another VIP", fmt.Sprintf(`virtual_servers:
  - address: 127.0.0.1:%d
    real_servers: [{address: %s}]
  - address: 127.0.0.2:%d
    real_servers:
      - address: 127.0.0.1:%d
`, port, rs, port, port), fmt.Sprintf(":6:18: real server 127.0.0.1:%d is virtual server tcp/127.0.0.1:%d", port, port)},
		{"wildcard beside an address", fmt.Sprintf(`virtual_servers:
  - address: 127.0.0.1:%d
    real_servers: [{address: %s}]
  - address: 0.0.0.0:%d
    real_servers: [{address: %s}]
`, port, rs, port, rs), fmt.Sprintf(":4:14: virtual server 0.0.0.0:%d cannot listen beside 127.0.0.1:%d", port, port)},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
		writeFile(t, file, tc.src)
		want := file + tc.want
		code, msg := govsCheck(t, file)
		if code != 1 || !strings.Contains(msg, want) {
			t.Errorf("%s: check exit %d:\n%s\nwant %s", tc.name, code, msg, want)
		}
		wantLines(t, tc.name+": run", govsRunFails(t, file), want)
	}
}
