package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool skips (outside CI) or fails (in CI) when a program is missing.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (.ci/run installs it in CI)", name)
		}
		t.Fatalf("%s not installed; .ci/run should have installed it", name)
	}
	return p
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "" {
			t.Skip("needs root")
		}
		t.Fatal("CI runs as root")
	}
}

// The shipped unit passes systemd-analyze verify: directives spelled
// right, in the right sections, the ExecStart binary present.
func TestSystemdUnitVerify(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	unit, err := os.ReadFile("../packaging/systemd/govs.service")
	if err != nil {
		t.Fatal(err)
	}
	// The unit names /usr/bin/govs; verify checks that it is executable,
	// so point it at the binary under test.
	dir := t.TempDir()
	path := filepath.Join(dir, "govs.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/bin/govs", govsBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "RuntimeDirectory=govs", "CAP_NET_ADMIN"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
}

// checkMonitoringFiles checks the Prometheus rules, their unit tests and
// the Grafana dashboard installed under share (PREFIX/share/govs): the
// repository's files, the dashboard valid JSON, and, where promtool is,
// the installed rules pass promtool check rules and their unit tests run
// where they are installed (promtool test rules finds the rules beside).
func checkMonitoringFiles(t *testing.T, share string) {
	t.Helper()
	for src, dst := range map[string]string{
		"../docs/prometheus/govs-rules.yaml":      "prometheus/govs-rules.yaml",
		"../docs/prometheus/govs-rules.test.yaml": "prometheus/govs-rules.test.yaml",
		"../docs/grafana-dashboard.json":          "grafana/govs-dashboard.json",
	} {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(share, dst))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not %s", filepath.Join(share, dst), src)
		}
		if st, err := os.Stat(filepath.Join(share, dst)); err == nil && st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", filepath.Join(share, dst), st.Mode().Perm())
		}
	}
	if dash, err := os.ReadFile(filepath.Join(share, "grafana/govs-dashboard.json")); err == nil && !json.Valid(dash) {
		t.Errorf("installed dashboard is not valid JSON")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: installed rules not checked by promtool")
		return
	}
	dir := filepath.Join(share, "prometheus")
	for _, args := range [][]string{{"check", "rules", "govs-rules.yaml"}, {"test", "rules", "govs-rules.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
		}
	}
}

// make deb builds a package that installs (into a root of its own, so the
// test machine is untouched) with the configuration as a conffile, and the
// installed govs accepts the installed configuration; the Prometheus rules
// and the Grafana dashboard are in /usr/share/govs.
func TestDebInstall(t *testing.T) {
	needRoot(t)
	dpkg := needTool(t, "dpkg")
	needTool(t, "make")
	dist := t.TempDir()
	build := exec.Command("make", "-C", "..", "deb", "DIST="+dist)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "govs_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}

	root := t.TempDir()
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(admin, "status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The root has no shell: maintainer scripts run outside it, and skip
	// systemctl when DPKG_ROOT is set.
	install := exec.Command(dpkg, "--root="+root, "--force-script-chrootless", "--force-not-root", "--log=/dev/null", "-i", debs[0])
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/govs", "usr/bin/govsadm", "usr/lib/systemd/system/govs.service",
		"etc/govs/govs.yaml", "usr/share/man/man1/govs.1.gz", "usr/share/man/man8/govsadm.8.gz",
		"usr/share/doc/govs/LICENSE", "usr/share/doc/govs/NOTICE", "usr/share/bash-completion/completions/govs"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	checkMonitoringFiles(t, filepath.Join(root, "usr/share/govs"))
	conff, err := exec.Command("dpkg-query", "--admindir="+admin, "-W", "-f=${Conffiles}", "govs").CombinedOutput()
	if err != nil || !strings.Contains(string(conff), "/etc/govs/govs.yaml") {
		t.Errorf("/etc/govs/govs.yaml is not a conffile: %q %v", conff, err)
	}
	// The static binary runs in the installed root as it would on a host.
	out, err := exec.Command("chroot", root, "/usr/bin/govs", "check", "-c", "/etc/govs/govs.yaml").CombinedOutput()
	if err != nil || string(out) != "configuration OK\n" {
		t.Errorf("installed govs check: %q %v", out, err)
	}
	out, err = exec.Command("chroot", root, "/usr/bin/govs", "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "govs ") || strings.HasPrefix(string(out), "govs dev") {
		t.Errorf("installed govs is not stamped: %q %v", out, err)
	}
	out, err = exec.Command("chroot", root, "/usr/bin/govsadm", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "govsadm ") || strings.HasPrefix(string(out), "govsadm dev") {
		t.Errorf("installed govsadm is not stamped: %q %v", out, err)
	}
	remove := exec.Command(dpkg, "--root="+root, "--force-script-chrootless", "--force-not-root", "--log=/dev/null", "--purge", "govs")
	if out, err := remove.CombinedOutput(); err != nil {
		t.Errorf("dpkg --purge: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/govs", "usr/share/govs/prometheus/govs-rules.yaml", "usr/share/govs/grafana/govs-dashboard.json"} {
		if _, err := os.Stat(filepath.Join(root, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after purge: %v", f, err)
		}
	}
}

// make install honours DESTDIR and PREFIX and never overwrites an
// operator's configuration; it installs the Prometheus rules and the
// Grafana dashboard in PREFIX/share/govs, and make uninstall removes them.
func TestMakeInstall(t *testing.T) {
	needTool(t, "make")
	dest := t.TempDir()
	conf := filepath.Join(dest, "etc/govs/govs.yaml")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := "# mine\nvirtual_servers: []\n"
	if err := os.WriteFile(conf, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/opt/govs").CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(conf); string(b) != mine {
		t.Errorf("make install overwrote the configuration:\n%s", b)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "opt/govs/lib/systemd/system/govs.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/opt/govs/bin/govs run -c /etc/govs/govs.yaml") {
		t.Errorf("installed unit does not run the installed binary: %v\n%s", err, unit)
	}
	for _, f := range []string{"opt/govs/bin/govs", "opt/govs/bin/govsadm", "opt/govs/share/man/man1/govs-run.1.gz",
		"opt/govs/share/man/man8/govsadm.8.gz", "opt/govs/share/doc/govs/LICENSE"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	checkMonitoringFiles(t, filepath.Join(dest, "opt/govs/share/govs"))
	// Without a configuration, the default one is installed.
	os.Remove(conf)
	if out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/opt/govs").CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if out, err := exec.Command(govsBin, "check", "-c", conf).CombinedOutput(); err != nil {
		t.Errorf("installed default configuration: %v\n%s", err, out)
	}
	if out, err := exec.Command("make", "-C", "..", "uninstall", "DESTDIR="+dest, "PREFIX=/opt/govs").CombinedOutput(); err != nil {
		t.Fatalf("make uninstall: %v\n%s", err, out)
	}
	for _, f := range []string{"opt/govs/bin/govs", "opt/govs/share/govs"} {
		if _, err := os.Stat(filepath.Join(dest, f)); !os.IsNotExist(err) {
			t.Errorf("%s left after make uninstall: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(conf); len(b) == 0 {
		t.Error("make uninstall removed the configuration")
	}
}
