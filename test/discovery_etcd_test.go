package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/govs-lb/govs/test/loopback"
)

// etcdDriver runs Debian's etcd on loopback ports: set writes one key per
// server under the prefix (and deletes the others), stop kills etcd, start
// runs it again on the same data.
type etcdDriver struct {
	bin, dir   string
	client     string // http://127.0.0.1:PORT
	peer       string
	cmd        *exec.Cmd
	done       chan struct{}
	cli        *clientv3.Client
	registered map[string]bool
}

const etcdPrefix = "/govs/web/"

func newEtcdDriver(t *testing.T) *etcdDriver {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("etcd (Debian etcd-server) not installed")
		}
		t.Fatal("etcd (Debian etcd-server) not installed")
	}
	e := &etcdDriver{bin: bin, dir: t.TempDir(), registered: map[string]bool{},
		client: fmt.Sprintf("http://127.0.0.1:%d", loopback.FreePort(t, "tcp")),
		peer:   fmt.Sprintf("http://127.0.0.1:%d", loopback.FreePort(t, "tcp"))}
	t.Cleanup(func() {
		if e.cli != nil {
			e.cli.Close()
		}
		e.kill()
	})
	e.start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	e.cli = cli
	return e
}

func (e *etcdDriver) block() string {
	return fmt.Sprintf("      type: etcd\n      endpoints: [%s]\n      prefix: %s\n", e.client, etcdPrefix)
}

func (e *etcdDriver) set(t *testing.T, addrs []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One transaction: the source sees the whole change at one revision,
	// as when a registry is rewritten (or wiped) at once.
	want := map[string]bool{}
	var ops []clientv3.Op
	for _, a := range addrs {
		k := etcdPrefix + a
		want[k] = true
		ops = append(ops, clientv3.OpPut(k, fmt.Sprintf(`{"address": %q, "weight": 1}`, a)))
	}
	for k := range e.registered {
		if !want[k] {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	if _, err := e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	e.registered = want
}

func (e *etcdDriver) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(e.bin, "--name", "t", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client, "--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "t="+e.peer)
	logf, err := os.Create(filepath.Join(e.dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.cmd, e.done = cmd, make(chan struct{})
	done := e.done
	go func() { cmd.Wait(); close(done) }()
	waitFor(t, "etcd to serve", func() bool {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.client}, DialTimeout: time.Second, Logger: zap.NewNop()})
		if err != nil {
			return false
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = c.Get(ctx, "ready")
		return err == nil
	})
}

func (e *etcdDriver) stop(t *testing.T) { e.kill() }

func (e *etcdDriver) kill() {
	if e.done == nil {
		return
	}
	select {
	case <-e.done:
		return
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		e.cmd.Process.Kill()
		<-e.done
	}
}

func TestDiscoveryEtcd(t *testing.T) {
	e := newEtcdDriver(t)
	testDiscoveryProof(t, e)
	if t.Failed() {
		return
	}
	// Lease expiry removes a server: a registrant that stops renewing.
	r := lastDiscoveryRun
	d := loopback.LineServer(t, "d")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := e.cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Put(ctx, etcdPrefix+d, fmt.Sprintf(`{"address": %q}`, d), clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d discovered", func() bool { _, ok := r.pool(t)[d]; return ok })
	waitFor(t, "d gone once its lease expired", func() bool { _, ok := r.pool(t)[d]; return !ok })
}
