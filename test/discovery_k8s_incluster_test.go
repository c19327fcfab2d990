package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/netns"
)

// podSADir is where a pod's service-account volume is mounted, and where
// client-go's in-cluster config reads the token, CA and namespace.
const podSADir = "/var/run/secrets/kubernetes.io/serviceaccount"

// TestDiscoveryKubernetesInCluster runs the real govs binary as in a pod,
// without a kubelet: in a private mount namespace (unshare) where a
// directory laid out as the kubelet lays a service-account volume is bind
// mounted over podSADir, with KUBERNETES_SERVICE_HOST/PORT set, and a
// discovery block naming neither kubeconfig nor namespace. The token is a
// real bound token of ServiceAccount web/govs (TokenRequest API), which
// RBAC lets only read EndpointSlices in web; ca.crt is the CA of the
// apiserver's own serving certificate. It shows that govs
//   - reads the Service in the pod's namespace (web), not default, where a
//     Service of the same name lists another server, and forwards to it;
//   - follows a change;
//   - survives a token rotation as the kubelet does it (a new token swapped
//     in, the old one revoked a minute later) with **0 errors**: client-go
//     re-reads the token file;
//   - survives a token revoked at the moment its successor is written: the
//     apiserver's 401 makes the source start again with the file's token;
//   - with no token file, or a ca.crt of another CA, says why in its status
//     and log, naming the source, and keeps the written real servers only;
//     a token that appears later, or the right CA written over the wrong
//     one, is picked up.
func TestDiscoveryKubernetesInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	kubeAPIServerBin(t) // skips (outside CI) before building the lab
	if _, err := exec.LookPath("unshare"); err != nil {
		msg := "unshare (util-linux) not installed"
		if os.Getenv("CI") == "" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	lab := netns.NewLVS(t, 3)
	l := &natLab{LVS: lab, t: t}
	const port = 8090
	l.serveTCP(port)
	k := startKube(t, lab.Director)
	k.serviceAccount(t, "web", "govs")
	addr := func(i int) string { return lab.RealAddrs[i].String() }
	member := func(i int) string { return fmt.Sprintf("%s:%d", addr(i), port) }
	ep := func(i int) kubeEndpoint { return kubeEndpoint{addr: addr(i), ready: true, serving: true} }
	set := func(idx ...int) {
		var eps []kubeEndpoint
		for _, i := range idx {
			eps = append(eps, ep(i))
		}
		k.setSliceIn(t, "web", "web", "web-6f9b8", "http", port, eps)
	}
	set(0, 1)
	// The same Service name in default lists rs3: a source that read
	// default (the fallback when no namespace is known) would find it.
	k.setSlice(t, "web", "web-decoy", "http", port, []kubeEndpoint{ep(2)})

	u, err := url.Parse(k.url)
	if err != nil {
		t.Fatal(err)
	}
	ca := k.servingCA(t, u.Hostname())
	tok1, revoke1 := k.boundToken(t, "web", "govs", "govs-token-1")
	podMountpoint(t)
	vol := newPodVolume(t, map[string]string{"token": tok1, "ca.crt": ca, "namespace": "web\n"})
	r := runGovsInPod(t, lab.Director, k, vol, fmt.Sprintf("%s:80", lab.VIP), "")

	poolOf := func(r podRun, want ...int) func() bool {
		return func() bool {
			got := r.pool(t)
			if len(got) != len(want) {
				return false
			}
			for _, i := range want {
				if got[member(i)] != "kubernetes:web" {
					return false
				}
			}
			return true
		}
	}
	pool := func(want ...int) func() bool { return poolOf(r, want...) }
	waitFor(t, "rs1 and rs2 discovered in the pod's namespace", pool(0, 1))
	waitFor(t, "rs1 and rs2 healthy", func() bool { return healthyCount(t, r.discoveryRun) == 2 })
	askAll(t, l, 80, "rs1", "rs2")
	if out := govsadmDiscovery(t, r); !strings.Contains(out, "-> kubernetes:web (keep_last): ok") {
		t.Errorf("govsadm -L --discovery:\n%s", out)
	}

	// A change is followed.
	set(0, 1, 2)
	waitFor(t, "rs3 discovered", pool(0, 1, 2))
	waitFor(t, "rs3 healthy", func() bool { return healthyCount(t, r.discoveryRun) == 3 })
	askAll(t, l, 80, "rs1", "rs2", "rs3")

	// Rotation as the kubelet does it: a new token swapped in, the old
	// one still valid for a while (the kubelet renews at 80% of a token's
	// life). client-go re-reads the token file once its copy is 50 s old
	// (a minute, less 10 s of leeway).
	tok2, revoke2 := k.boundToken(t, "web", "govs", "govs-token-2")
	vol.write(t, map[string]string{"token": tok2, "ca.crt": ca, "namespace": "web\n"})
	rotated := time.Now()

	// Beside it, govs outside a pod with a kubeconfig holding the same
	// token inline, which client-go never reads again.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, kc, kubeconfigFor(k.url, ca, tok2))
	rk := runGovsKubeconfig(t, lab.Director, kc, fmt.Sprintf("%s:83", lab.VIP))
	waitFor(t, "the kubeconfig's govs to discover rs1-rs3", poolOf(rk, 0, 1, 2))

	// Meanwhile, what a broken pod volume does.
	testInClusterBroken(t, l, k, ca, tok2)

	time.Sleep(time.Until(rotated.Add(65 * time.Second)))
	errorsBefore, logMark := r.status(t).Errors, len(r.daemon.log())
	revoke1()
	k.waitRejected(t, "web", tok1)
	revoked := time.Now()
	set(1, 2) // rs1 leaves
	waitFor(t, "rs1 to leave after the old token's revocation", pool(1, 2))
	waitFor(t, "a good answer after the revocation", func() bool {
		st := r.status(t)
		return st.LastSuccess != nil && st.LastSuccess.After(revoked)
	})
	// Each failure after a good answer is logged with its error: a
	// request with the old token would show as a 401. (A count of errors
	// could also hold a question that timed out on a loaded machine.)
	st := r.status(t)
	if since := r.daemon.log()[logMark:]; !st.OK || strings.Contains(since, "Unauthorized") {
		t.Fatalf("after the kubelet-style rotation: status %+v; log since the revocation:\n%s", st, since)
	}
	t.Logf("kubelet-style rotation: %d error(s) before the revocation, %d after", errorsBefore, st.Errors-errorsBefore)

	waitFor(t, "the kubeconfig's govs to follow", poolOf(rk, 1, 2))

	// A token revoked at the moment its successor is written (the
	// ServiceAccount's tokens invalidated, say) in the pod's volume and in
	// the kubeconfig: the copies the clients hold are rejected before
	// client-go would re-read the pod's file, and the kubeconfig's inline
	// one it never re-reads. The 401 makes the source start again, reading
	// the new token. The pools stay meanwhile.
	tok3, _ := k.boundToken(t, "web", "govs", "govs-token-3")
	vol.write(t, map[string]string{"token": tok3, "ca.crt": ca, "namespace": "web\n"})
	writeFile(t, kc, kubeconfigFor(k.url, ca, tok3))
	revoke2()
	k.waitRejected(t, "web", tok2)
	revoked = time.Now()
	for _, c := range []struct {
		name string
		r    podRun
	}{{"pod", r}, {"kubeconfig", rk}} {
		waitFor(t, c.name+": a good answer after the sudden revocation", func() bool {
			st := c.r.status(t)
			return st.OK && st.LastSuccess != nil && st.LastSuccess.After(revoked)
		})
		st = c.r.status(t)
		t.Logf("%s: token revoked at once: answering again after %v, %d error(s) (last: %s)", c.name,
			st.LastSuccess.Sub(revoked).Round(time.Millisecond), st.Errors, st.LastError)
		if got := keys(c.r.pool(t)); !slices.Equal(got, []string{member(1), member(2)}) {
			t.Fatalf("%s: pool after the sudden revocation %v", c.name, got)
		}
	}
	set(2)
	waitFor(t, "rs2 to leave after the sudden revocation", pool(2))
	waitFor(t, "the kubeconfig's govs to follow after the sudden revocation", poolOf(rk, 2))
	askAll(t, l, 80, "rs3")
	askAll(t, l, 83, "rs3")
}

// testInClusterBroken runs govs in pods whose volume lacks the token, or
// whose ca.crt is another CA's, with rs1 written under real_servers: the
// status and the log say why, naming the source, and the pool is the
// written one only. Then the token-less pod gets its token, the other the
// right CA, and both discover.
func testInClusterBroken(t *testing.T, l *natLab, k *kubeCluster, ca, token string) {
	static := fmt.Sprintf("%s:8090", l.RealAddrs[0])
	noToken := newPodVolume(t, map[string]string{"ca.crt": ca, "namespace": "web\n"})
	rNoToken := runGovsInPod(t, l.Director, k, noToken, fmt.Sprintf("%s:81", l.VIP), static)
	wrongCA := newPodVolume(t, map[string]string{"token": token, "ca.crt": otherCA(t), "namespace": "web\n"})
	rWrongCA := runGovsInPod(t, l.Director, k, wrongCA, fmt.Sprintf("%s:82", l.VIP), static)

	for _, c := range []struct {
		name string
		r    podRun
		want []string // in the status's last error
	}{
		{"no token", rNoToken, []string{"in-cluster kubernetes config (no kubeconfig given)", podSADir + "/token", "no such file"}},
		{"another CA", rWrongCA, []string{"EndpointSlices of service web/web at " + k.url, "x509: certificate signed by unknown authority"}},
	} {
		waitFor(t, c.name+": the error in the status", func() bool { st := c.r.status(t); return !st.OK && st.LastError != "" })
		st := c.r.status(t)
		for _, w := range c.want {
			if !strings.Contains(st.LastError, w) {
				t.Errorf("%s: last error %q lacks %q", c.name, st.LastError, w)
			}
		}
		if out := govsadmDiscovery(t, c.r); !strings.Contains(out, "FAIL") || !strings.Contains(out, "-> kubernetes:web (keep_last):") {
			t.Errorf("%s: govsadm -L --discovery:\n%s", c.name, out)
		}
		if log := c.r.daemon.log(); !strings.Contains(log, "discovery=kubernetes:web") || !strings.Contains(log, c.want[len(c.want)-1]) {
			t.Errorf("%s: the log does not name the source and the error:\n%s", c.name, log)
		}
		if got := c.r.pool(t); len(got) != 1 || got[static] != "" {
			t.Errorf("%s: pool %v, want the written %s only", c.name, got, static)
		}
		t.Logf("%s: %s", c.name, st.Message)
	}
	for _, r := range []podRun{rNoToken, rWrongCA} {
		waitFor(t, "the written rs1 healthy", func() bool { return healthyCount(t, r.discoveryRun) == 1 })
	}
	askAll(t, l, 81, "rs1")
	askAll(t, l, 82, "rs1")

	// The token appears (a kubelet late to write it), the right CA
	// replaces the wrong one (a cluster CA rotated): the sources start,
	// the written server staying the written one.
	noToken.write(t, map[string]string{"token": token, "ca.crt": ca, "namespace": "web\n"})
	wrongCA.write(t, map[string]string{"token": token, "ca.crt": ca, "namespace": "web\n"})
	for name, r := range map[string]podRun{"the late token": rNoToken, "the right CA": rWrongCA} {
		waitFor(t, name+" to be used", func() bool { return r.status(t).OK && len(r.pool(t)) == 3 })
		p := r.pool(t)
		if p[static] != "" || p[fmt.Sprintf("%s:8090", l.RealAddrs[1])] != "kubernetes:web" {
			t.Errorf("pool once %s came: %v", name, p)
		}
	}
}

// runGovsInPod runs the govs binary in ns as in a pod: in a private mount
// namespace (unshare) where vol is bind mounted over podSADir, with
// KUBERNETES_SERVICE_HOST/PORT naming the apiserver. Its config has one
// service at vip (tcp), with written real servers (static, comma-separated
// addresses) and a kubernetes discovery block that names no kubeconfig
// and no namespace. The mount namespace ends with the process (stopped by
// its PID at cleanup: ip netns exec, unshare and sh all exec).
func runGovsInPod(t *testing.T, ns *netns.NS, k *kubeCluster, vol *podVolume, vip, static string) podRun {
	t.Helper()
	dir := t.TempDir()
	file, sock := filepath.Join(dir, "govs.yaml"), filepath.Join(dir, "govs.sock")
	writeKubeGovsConfig(t, file, vip, static, "")
	u, err := url.Parse(k.url)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sh", vol.dir, podSADir,
		govsBin, "--socket", sock, "run", "-c", file)
	cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST="+u.Hostname(), "KUBERNETES_SERVICE_PORT="+u.Port())
	return startPodRun(t, cmd, vip, sock)
}

// runGovsKubeconfig runs the govs binary in ns with a kubeconfig (no pod
// volume), for the service at vip; see runGovsInPod.
func runGovsKubeconfig(t *testing.T, ns *netns.NS, kubeconfig, vip string) podRun {
	t.Helper()
	dir := t.TempDir()
	file, sock := filepath.Join(dir, "govs.yaml"), filepath.Join(dir, "govs.sock")
	writeKubeGovsConfig(t, file, vip, "", "      kubeconfig: "+kubeconfig+"\n")
	return startPodRun(t, exec.Command("ip", "netns", "exec", ns.Name, govsBin, "--socket", sock, "run", "-c", file), vip, sock)
}

func startPodRun(t *testing.T, cmd *exec.Cmd, vip, sock string) podRun {
	t.Helper()
	d := runDaemon(t, "govs", cmd, 10*time.Second)
	waitFor(t, "govs to start", func() bool {
		select {
		case <-d.done:
			t.Fatalf("govs exited: %v\n%s", d.err, d.log())
		default:
		}
		return strings.Contains(d.log(), "govs running")
	})
	return podRun{&discoveryRun{vip: vip, key: "tcp/" + vip, api: api.NewUnixClient(sock), daemon: d}, sock}
}

// writeKubeGovsConfig writes a govs config of one service at vip with
// written real servers static (comma-separated) and a kubernetes
// discovery block for Service web, port http, with keys (YAML lines) added.
func writeKubeGovsConfig(t *testing.T, file, vip, static, keys string) {
	t.Helper()
	var written string
	if static != "" {
		for _, a := range strings.Split(static, ",") {
			written += fmt.Sprintf("\n      - address: %q", a)
		}
	} else {
		written = " []"
	}
	writeFile(t, file, fmt.Sprintf(`grace_period: 5s
virtual_servers:
  - name: web
    address: "%s"
    scheduler: rr
    forwarding: proxy
    health_check: {type: tcp, interval: 300ms, timeout: 300ms, rise: 1, fall: 2}
    discovery:
      type: kubernetes
      service: web
      port: http
      interval: 500ms
      settle: 300ms
      drain: 2s
%s    real_servers:%s
`, vip, keys, written))
}

// kubeconfigFor is a kubeconfig for the cluster at server, verified with
// CA ca (PEM), with an inline token, in namespace web.
func kubeconfigFor(server, ca, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: govs, user: {token: %s}}]
contexts: [{name: govs, context: {cluster: test, user: govs, namespace: web}}]
current-context: govs
`, server, base64.StdEncoding.EncodeToString([]byte(ca)), token)
}

// podMountpoint makes podSADir on the host if it is missing, an empty
// directory that the pods' private mounts cover, and removes what it made
// at cleanup (after the pods, whose cleanups run first).
func podMountpoint(t *testing.T) {
	t.Helper()
	var made []string // deepest first
	for d := podSADir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(podSADir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range made {
			if err := os.Remove(d); err != nil {
				t.Errorf("removing the mount point: %v", err)
			}
		}
	})
}

// podVolume is a pod's service-account volume as the kubelet lays it out
// (its AtomicWriter): each file is a symlink through ..data to a
// timestamped directory; an update writes a new directory and swaps ..data
// in one rename, so a reader sees the old files or the new ones, never a
// mix, and the token file's content changes in place.
type podVolume struct {
	dir string
	n   int
}

func newPodVolume(t *testing.T, files map[string]string) *podVolume {
	t.Helper()
	v := &podVolume{dir: t.TempDir()}
	v.write(t, files)
	return v
}

func (v *podVolume) write(t *testing.T, files map[string]string) {
	t.Helper()
	v.n++
	data := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), v.n)
	if err := os.Mkdir(filepath.Join(v.dir, data), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(v.dir, data, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(data, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// otherCA is a self-signed CA certificate (PEM) that signed nothing.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// askAll connects to the VIP's port from the client until each named
// real server has answered (at most 60 connections); every connection
// must succeed.
func askAll(t *testing.T, l *natLab, port int, names ...string) {
	t.Helper()
	seen := map[string]bool{}
	for range 60 {
		name, _, err := l.askOnce(port)
		if err != nil {
			t.Fatalf("connection to the VIP's port %d: %v", port, err)
		}
		if !slices.Contains(names, name) {
			t.Fatalf("port %d answered by %s, want one of %v", port, name, names)
		}
		seen[name] = true
		if len(seen) == len(names) {
			return
		}
	}
	t.Fatalf("port %d: answered by %v in 60 connections, want each of %v", port, seen, names)
}

// podRun is a govs run in a pod, and its control socket.
type podRun struct {
	*discoveryRun
	sock string
}

// govsadmDiscovery is govsadm -L --discovery's output for run r.
func govsadmDiscovery(t *testing.T, r podRun) string {
	t.Helper()
	adm, err := buildGovsadm()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(adm, "--socket", r.sock, "-L", "--discovery").CombinedOutput()
	if err != nil {
		t.Fatalf("govsadm -L --discovery: %v: %s", err, out)
	}
	return string(out)
}
