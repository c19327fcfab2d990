package test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	discoveryv1client "k8s.io/client-go/kubernetes/typed/discovery/v1"
	rbacv1client "k8s.io/client-go/kubernetes/typed/rbac/v1"
	"k8s.io/client-go/rest"

	"github.com/govs-lb/govs/test/loopback"
	"github.com/govs-lb/govs/test/netns"
)

// kubeVersion is the kube-apiserver the tests run, built by
// .ci/kube-apiserver.sh at the release of the k8s.io modules in go.mod.
const kubeVersion = "v1.37.2"

// kubeAPIServerBin finds kube-apiserver: $GOVS_KUBE_APISERVER, else the
// CI cache. Outside CI a missing one skips the test.
func kubeAPIServerBin(t testing.TB) string {
	t.Helper()
	p := os.Getenv("GOVS_KUBE_APISERVER")
	if p == "" {
		cache := os.Getenv("GOVS_CI_CACHE")
		if cache == "" {
			cache = "/var/cache/govs-ci"
		}
		p = filepath.Join(cache, "kube-apiserver-"+kubeVersion)
	}
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p
	}
	msg := fmt.Sprintf("kube-apiserver not found at %s: build it with .ci/kube-apiserver.sh (or set GOVS_KUBE_APISERVER)", p)
	if os.Getenv("CI") == "" {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// kubeCluster is a real kube-apiserver on a real etcd (Debian's), both on
// loopback, in a network namespace of the test's or in the host's. The
// test talks to it as an admin (a static token in system:masters); govs
// gets a kubeconfig of a user that RBAC allows only get/list/watch on
// EndpointSlices (the role docs/discovery.md shows).
type kubeCluster struct {
	ns         *netns.NS // nil: the host's namespace
	dir        string
	url        string // https://127.0.0.1:PORT
	kubeconfig string // govs's
	cs         kubeClients
	etcd       *daemon
	apiserver  *daemon
	apiCmd     []string
	dial       func(ctx context.Context, network, addr string) (net.Conn, error) // nil: the host's
}

const kubeAdminToken, kubeGovsToken = "govs-test-admin-token", "govs-test-discovery-token"

func startKube(t testing.TB, ns *netns.NS) *kubeCluster {
	t.Helper()
	apiBin := kubeAPIServerBin(t)
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("etcd (Debian etcd-server) not installed")
		}
		t.Fatal("etcd (Debian etcd-server) not installed")
	}
	k := &kubeCluster{ns: ns, dir: t.TempDir()}
	port := func() int {
		if ns == nil {
			return loopback.FreePort(t, "tcp")
		}
		return 0 // set below: a fresh namespace has every port free
	}
	etcdPort, peerPort, apiPort := port(), port(), port()
	if ns != nil {
		etcdPort, peerPort, apiPort = 2379, 2380, 6443
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	k.etcd = runDaemon(t, "etcd", k.command(etcdBin, "--name", "kube", "--data-dir", filepath.Join(k.dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "kube="+peerURL,
		// The apiserver's watch cache needs progress notifications
		// (etcd 3.4 sends none by default).
		"--experimental-watch-progress-notify-interval=500ms"), 5*time.Second)

	// A service-account signing key (the apiserver refuses to start
	// without one), made here rather than with openssl.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPub := filepath.Join(k.dir, "sa.key"), filepath.Join(k.dir, "sa.pub")
	writeFile(t, saKey, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	writeFile(t, saPub, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	tokens := filepath.Join(k.dir, "tokens.csv")
	writeFile(t, tokens, kubeAdminToken+",admin,admin-uid,\"system:masters\"\n"+kubeGovsToken+",govs,govs-uid\n")
	k.url = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	k.apiCmd = []string{apiBin, "--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort), "--cert-dir", filepath.Join(k.dir, "certs"),
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-cluster-ip-range", "10.96.0.0/16", "--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false", "--profiling=false"}
	k.start(t)

	cfg := &rest.Config{Host: k.url, BearerToken: kubeAdminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS: 200, Burst: 400}
	if ns != nil {
		k.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
		cfg.Dial = k.dial
	}
	if k.cs, err = newKubeClients(cfg); err != nil {
		t.Fatal(err)
	}
	k.waitReady(t)

	// govs's user may only read EndpointSlices: the role of the docs.
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "govs-discovery"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{discoveryv1.GroupName}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}}}}
	if _, err := k.cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "govs-discovery", Namespace: "default"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "govs-discovery"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "govs"}}}
	if _, err := k.cs.RbacV1().RoleBindings("default").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.kubeconfig = filepath.Join(k.dir, "kubeconfig")
	writeFile(t, k.kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: govs, user: {token: %s}}]
contexts: [{name: govs, context: {cluster: test, user: govs, namespace: default}}]
current-context: govs
`, k.url, kubeGovsToken))
	return k
}

// kubeClients are the typed clients the tests use (not the whole
// clientset: every API group's client would be compiled into the tests).
type kubeClients struct {
	core      *corev1client.CoreV1Client
	discovery *discoveryv1client.DiscoveryV1Client
	rbac      *rbacv1client.RbacV1Client
}

func newKubeClients(cfg *rest.Config) (kubeClients, error) {
	var c kubeClients
	var err error
	if c.core, err = corev1client.NewForConfig(cfg); err != nil {
		return c, err
	}
	if c.discovery, err = discoveryv1client.NewForConfig(cfg); err != nil {
		return c, err
	}
	c.rbac, err = rbacv1client.NewForConfig(cfg)
	return c, err
}

func (c kubeClients) CoreV1() *corev1client.CoreV1Client                { return c.core }
func (c kubeClients) DiscoveryV1() *discoveryv1client.DiscoveryV1Client { return c.discovery }
func (c kubeClients) RbacV1() *rbacv1client.RbacV1Client                { return c.rbac }

// command runs name in the cluster's namespace.
func (k *kubeCluster) command(name string, args ...string) *exec.Cmd {
	if k.ns == nil {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", k.ns.Name, name}, args...)...)
}

// start runs the apiserver (again, after stop) on the same etcd.
func (k *kubeCluster) start(t testing.TB) {
	t.Helper()
	k.apiserver = runDaemon(t, "kube-apiserver", k.command(k.apiCmd[0], k.apiCmd[1:]...), 10*time.Second)
}

// stop kills the apiserver (an outage); etcd keeps the state.
func (k *kubeCluster) stop(t testing.TB) {
	t.Helper()
	k.apiserver.cmd.Process.Kill()
	<-k.apiserver.done
}

func (k *kubeCluster) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a loaded 2-core machine
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-k.apiserver.done:
			t.Fatalf("kube-apiserver exited: %v", k.apiserver.err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := k.cs.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			_, err = k.cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		}
		cancel()
		if err == nil {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kube-apiserver not ready: %v", last)
}

// kubeEndpoint is one endpoint of a test's EndpointSlice.
type kubeEndpoint struct {
	addr                        string
	ready, serving, terminating bool
	pod, node                   string // targetRef (a Pod) and nodeName, when set
}

// setSlice makes the Service's one EndpointSlice (created on first use)
// list these endpoints on the named port.
func (k *kubeCluster) setSlice(t testing.TB, service, name, port string, number int32, eps []kubeEndpoint) {
	t.Helper()
	k.setSliceIn(t, "default", service, name, port, number, eps)
}

// setSliceIn is setSlice in namespace ns.
func (k *kubeCluster) setSliceIn(t testing.TB, ns, service, name, port string, number int32, eps []kubeEndpoint) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "govs-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &port, Port: &number}},
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{Addresses: []string{e.addr},
			Conditions: discoveryv1.EndpointConditions{Ready: &e.ready, Serving: &e.serving, Terminating: &e.terminating}}
		if e.pod != "" {
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: e.pod}
		}
		if e.node != "" {
			ep.NodeName = &e.node
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	c := k.cs.DiscoveryV1().EndpointSlices(ns)
	cur, err := c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if _, err := c.Create(ctx, es, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create EndpointSlice %s: %v", name, err)
		}
		return
	}
	es.ResourceVersion = cur.ResourceVersion
	if _, err := c.Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update EndpointSlice %s: %v", name, err)
	}
}

// serviceAccount makes namespace ns and ServiceAccount name in it, bound
// there to the docs' read-only EndpointSlice role (an RBAC subject of
// kind ServiceAccount, as a pod's govs has).
func (k *kubeCluster) serviceAccount(t testing.TB, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := k.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := k.cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ServiceAccount %s/%s: %v", ns, name, err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "govs-discovery", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "govs-discovery"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}
	if _, err := k.cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind ServiceAccount %s/%s: %v", ns, name, err)
	}
}

// boundToken gets a token of ServiceAccount ns/sa through the TokenRequest
// API (as a kubelet does for a pod's projected volume), bound to a Secret
// of its own named secret: revoke deletes that Secret, and the apiserver
// rejects the token from then on (as it rejects a deleted pod's).
func (k *kubeCluster) boundToken(t testing.TB, ns, sa, secret string) (token string, revoke func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := k.cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: ns}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Secret %s/%s: %v", ns, secret, err)
	}
	hour := int64(3600)
	tr, err := k.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour, BoundObjectRef: &authenticationv1.BoundObjectReference{
			Kind: "Secret", APIVersion: "v1", Name: secret, UID: s.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token, func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.cs.CoreV1().Secrets(ns).Delete(ctx, secret, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete Secret %s/%s: %v", ns, secret, err)
		}
	}
}

// tokenAccepted says whether the apiserver takes token to list
// EndpointSlices in ns: nil when it does.
func (k *kubeCluster) tokenAccepted(ns, token string) error {
	c, err := discoveryv1client.NewForConfig(&rest.Config{Host: k.url, BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, Dial: k.dial})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.EndpointSlices(ns).List(ctx, metav1.ListOptions{Limit: 1})
	return err
}

// waitRejected waits until the apiserver answers 401 to token.
func (k *kubeCluster) waitRejected(t testing.TB, ns, token string) {
	t.Helper()
	waitFor(t, "the apiserver to reject the revoked token", func() bool {
		return apierrors.IsUnauthorized(k.tokenAccepted(ns, token))
	})
}

// servingCA returns (PEM) the CA of the apiserver's self-signed serving
// certificate (the one it makes in --cert-dir), after checking that the
// certificate is valid for host: what a pod's ca.crt holds.
func (k *kubeCluster) servingCA(t testing.TB, host string) string {
	t.Helper()
	file := filepath.Join(k.dir, "certs", "apiserver.crt")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	var ca []byte
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		certs = append(certs, c)
		if c.IsCA {
			ca = pem.EncodeToMemory(blk)
		}
	}
	if len(certs) == 0 || ca == nil {
		t.Fatalf("%s: no serving certificate and CA (%d certificates)", file, len(certs))
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
		t.Fatalf("the apiserver's serving certificate (IPs %v, names %v) is not valid for %s: %v",
			certs[0].IPAddresses, certs[0].DNSNames, host, err)
	}
	return string(ca)
}
