package test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/api"
	"github.com/govs-lb/govs/test/netns"
)

func TestDiscoveryKubernetesProxy(t *testing.T) { testKubeRollingUpdate(t, "proxy") }
func TestDiscoveryKubernetesNAT(t *testing.T)   { testKubeRollingUpdate(t, "nat") }

// testKubeRollingUpdate: a real kube-apiserver (on a real etcd) in the
// director's namespace holds a Service's EndpointSlice; the real govs
// binary there follows it with the kubernetes source (a kubeconfig whose
// user RBAC lets read EndpointSlices only), forwarding to real servers in
// namespaces of their own. Two pods are replaced one by one while two
// clients connect steadily, with the conditions in the order the endpoint
// controller sets them for a Deployment's rolling update (maxSurge 1,
// maxUnavailable 0): the new pod's endpoint appears not ready, turns
// ready; the old one turns terminating while still serving, then stops
// serving, then leaves the slice, and its server process ends. A new
// endpoint takes connections once ready and not before; a terminating one
// takes no new connection but its established connection keeps working
// (drain, weight 0) until it closes; **0 client connections fail**. Then
// the apiserver is killed: the pool stays, the status says why, and the
// source recovers when it is back.
func testKubeRollingUpdate(t *testing.T, forwarding string) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	kubeAPIServerBin(t) // skips (outside CI) before building the lab
	lab := netns.NewLVS(t, 4)
	l := &natLab{LVS: lab, t: t} // the lab's helpers; govs is the binary
	const port = 8090
	servers := l.serveTCP(port)
	k := startKube(t, lab.Director)
	addr := func(i int) string { return lab.RealAddrs[i].String() }
	ep := func(i int, ready, serving, terminating bool) kubeEndpoint {
		return kubeEndpoint{addr: addr(i), ready: ready, serving: serving, terminating: terminating,
			pod: fmt.Sprintf("web-7d9f-%d", i), node: fmt.Sprintf("node-%d", i%2)}
	}
	set := func(eps ...kubeEndpoint) { k.setSlice(t, "web", "web-x7k2p", "http", port, eps) }
	set(ep(0, true, true, false), ep(1, true, true, false))

	dir := t.TempDir()
	file := filepath.Join(dir, "govs.yaml")
	sock := filepath.Join(dir, "govs.sock")
	vip := fmt.Sprintf("%s:80", lab.VIP)
	// Health checks apply to discovered servers too; interval/settle short
	// so that the test runs fast; drain long enough to see the held
	// connection finish.
	writeFile(t, file, fmt.Sprintf(`grace_period: 20s
virtual_servers:
  - name: web
    address: "%s"
    scheduler: rr
    forwarding: %s
    health_check: {type: tcp, interval: 300ms, timeout: 300ms, rise: 1, fall: 2}
    discovery:
      type: kubernetes
      kubeconfig: %s
      namespace: default
      service: web
      port: http
      interval: 500ms
      settle: 300ms
      drain: 10s
    real_servers: []
`, vip, forwarding, k.kubeconfig))
	d := runDaemon(t, "govs", exec.Command("ip", "netns", "exec", lab.Director.Name, govsBin, "--socket", sock, "run", "-c", file), 10*time.Second)
	waitFor(t, "govs to start", func() bool { return strings.Contains(d.log(), "govs running") })
	r := &discoveryRun{vip: vip, key: "tcp/" + vip, api: api.NewUnixClient(sock), daemon: d}
	member := func(i int) string { return fmt.Sprintf("%s:%d", addr(i), port) }
	waitFor(t, "rs1 and rs2 discovered and up", func() bool {
		p := r.pool(t)
		return len(p) == 2 && p[member(0)] == "kubernetes:default/web" && p[member(1)] != "" && healthyCount(t, r) == 2
	})
	// Each carries its pod's name and node in the API.
	svc, err := r.api.Service(context.Background(), "tcp", vip)
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range svc.RealServers {
		i := slices.Index([]string{member(0), member(1)}, rs.Address)
		if want := fmt.Sprintf("web-7d9f-%d on node-%d", i, i%2); rs.SourceName+" on "+rs.Node != want {
			t.Errorf("%s: source_name %q, node %q, want %s", rs.Address, rs.SourceName, rs.Node, want)
		}
	}

	ld := startLoadWith(func() (string, error) { name, _, err := l.askOnce(80); return name, err })
	defer func() {
		if ld != nil {
			ld.finish(t)
		}
	}()
	waitFor(t, "traffic on rs1 and rs2", func() bool { return !ld.lastSeen("rs1").IsZero() && !ld.lastSeen("rs2").IsZero() })

	// An established connection to rs1, which is replaced first.
	held := l.flowTo(80, "rs1")
	defer held.c.Close()

	// The rolling update: rs3 replaces rs1, then rs4 replaces rs2.
	live := []int{0, 1}
	eps := func(extra ...kubeEndpoint) []kubeEndpoint {
		var out []kubeEndpoint
		for _, i := range live {
			out = append(out, ep(i, true, true, false))
		}
		return append(out, extra...)
	}
	for _, step := range [][2]int{{0, 2}, {1, 3}} {
		old, nw := step[0], step[1]
		oldName, newName := fmt.Sprintf("rs%d", old+1), fmt.Sprintf("rs%d", nw+1)

		// The new pod's endpoint appears not ready: it takes nothing.
		set(eps(ep(nw, false, false, false))...)
		time.Sleep(time.Second)
		if _, ok := r.pool(t)[member(nw)]; ok {
			t.Fatalf("%s joined the pool while not ready", newName)
		}
		// Ready: it takes connections.
		readyAt := time.Now()
		live = append(live, nw)
		set(eps()...)
		waitFor(t, "traffic on "+newName, func() bool { return ld.lastSeen(newName).After(readyAt) })
		t.Logf("%s served %v after its endpoint turned ready", newName, time.Since(readyAt).Round(time.Millisecond))

		// The old pod terminates, still serving: with ready endpoints
		// left, it takes no new connection, and drains at weight 0.
		live = slices.DeleteFunc(live, func(i int) bool { return i == old })
		set(eps(ep(old, false, true, true))...)
		waitFor(t, oldName+" at weight 0", func() bool { return r.pool(t)[member(old)] == "kubernetes:default/web w0" })
		drained := time.Now()
		time.Sleep(time.Second)
		if last := ld.lastSeen(oldName); last.After(drained) {
			t.Fatalf("%s took a new connection at %v, after it drained at %v", oldName, last, drained)
		}
		if held != nil {
			if name, _, err := held.ask(); err != nil || name != "rs1" {
				t.Fatalf("established connection through the terminating rs1: %q, %v", name, err)
			}
			held.c.Close()
			held = nil
		}
		// It stops serving, leaves the slice; once idle it leaves the
		// pool, and its process ends.
		set(eps(ep(old, false, false, true))...)
		set(eps()...)
		waitFor(t, oldName+" to leave the pool", func() bool { _, ok := r.pool(t)[member(old)]; return !ok })
		servers[old].kill()
	}
	if got, want := keys(r.pool(t)), []string{member(2), member(3)}; !slices.Equal(got, want) {
		t.Fatalf("pool after the rolling update %v, want %v", got, want)
	}

	// Outage: the apiserver dies; the pool stays (keep_last), the status
	// says why, and the source recovers when the apiserver is back.
	k.stop(t)
	waitFor(t, "the outage in the status", func() bool { st := r.status(t); return !st.OK && st.LastError != "" })
	t.Logf("status during the outage: %s", r.status(t).Message)
	time.Sleep(time.Second)
	if got, want := keys(r.pool(t)), []string{member(2), member(3)}; !slices.Equal(got, want) {
		t.Fatalf("pool during the outage %v, want %v", got, want)
	}
	k.start(t)
	k.waitReady(t)
	waitFor(t, "the source to recover", func() bool { return r.status(t).OK })
	// Followed again: rs4 terminates (serving), rs3 stays ready.
	live = []int{2}
	set(eps(ep(3, false, true, true))...)
	waitFor(t, "rs4 at weight 0 after the outage", func() bool { return r.pool(t)[member(3)] == "kubernetes:default/web w0" })

	ld.finish(t)
	ld = nil
	if st := r.status(t); st.Found != 1 || st.Errors == 0 || !st.OK {
		t.Errorf("status after the test: %+v", st)
	}
}

// flowTo opens connections from the client to the VIP until one reaches
// the real server named want, and returns it (at most 100 tries).
func (l *natLab) flowTo(port int, want string) *clientConn {
	l.t.Helper()
	for range 100 {
		cc, err := l.dial(port)
		if err != nil {
			l.t.Fatal(err)
		}
		if name, _, err := cc.ask(); err == nil && name == want {
			return cc
		}
		cc.c.Close()
	}
	l.t.Fatalf("no connection reached %s", want)
	return nil
}
