package discovery

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/govs-lb/govs/internal/config"
)

// kubeSource follows the EndpointSlices of a Service (those labelled
// kubernetes.io/service-name=SERVICE in its namespace) through a client-go
// informer, and answers the full set on every change, with kube-proxy's
// meaning of the endpoint conditions (kubeServers). Every interval it also
// asks the apiserver itself (a one-item list of the same slices): an
// informer retries silently while the apiserver is away, the question says
// so, and its answer repeats the set (repeated answers confirm a held drop).
type kubeSource struct {
	kubeconfig string // "": in-cluster (the pod's service account)
	namespace  string // "": the kubeconfig context's, or the pod's
	service    string
	port       string // a port name or number; "": the slices' only port
	interval   time.Duration
	timeout    time.Duration
	log        *slog.Logger
	// family, when valid, keeps only the slices of the VIP's address
	// family (a dual-stack Service has a slice set per family; nat
	// forwards within one).
	family netip.Addr

	mu     sync.Mutex
	warned map[string]string // slice name: the problem logged
}

func newKubeSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	return &kubeSource{kubeconfig: dc.Kubeconfig, namespace: dc.Namespace, service: dc.Service, port: dc.Port,
		interval: dc.Interval.D(), timeout: dc.Timeout.D(), log: log, warned: map[string]string{}}, nil
}

// kubeScheme knows only EndpointSlices: the client decodes nothing else,
// and the binary does not carry every API group's types.
var kubeScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := discoveryv1.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail
	}
	return s
}()

var klogOnce sync.Once

// restConfig reads the kubeconfig, or the pod's service account.
func (s *kubeSource) restConfig() (*rest.Config, string, error) {
	ns := s.namespace
	var cfg *rest.Config
	if s.kubeconfig != "" {
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: s.kubeconfig}, &clientcmd.ConfigOverrides{})
		var err error
		if cfg, err = cc.ClientConfig(); err != nil {
			return nil, "", fmt.Errorf("kubeconfig %s: %w", s.kubeconfig, err)
		}
		if ns == "" {
			if ns, _, err = cc.Namespace(); err != nil {
				return nil, "", fmt.Errorf("kubeconfig %s: %w", s.kubeconfig, err)
			}
		}
	} else {
		var err error
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, "", fmt.Errorf("in-cluster kubernetes config (no kubeconfig given): %w", err)
		}
		if ns == "" {
			b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
			if err != nil {
				return nil, "", fmt.Errorf("in-cluster namespace (no namespace given): %w", err)
			}
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &discoveryv1.SchemeGroupVersion
	cfg.APIPath = "/apis"
	// Protobuf: a 5,000-endpoint Service's slices decode several times
	// faster than as JSON.
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(kubeScheme).WithoutConversion()
	cfg.UserAgent = "govs-discovery"
	return cfg, ns, nil
}

func (s *kubeSource) Run(ctx context.Context, report func(Update)) {
	klogOnce.Do(func() {
		// client-go logs through klog, one logger for the process: the
		// first kubernetes source's (its service attribute may name
		// another source's lines). Its errors reach every source's status
		// and log lines anyway; of its own lines WARN and up are kept.
		klog.SetSlogLogger(slog.New(levelFloor{s.log.Handler(), slog.LevelWarn}).With("component", "client-go"))
	})
	sessions(ctx, s.interval, func() { s.session(ctx, report) })
}

// session runs one informer until ctx ends, or fails at once when the
// configuration cannot be read (retried after interval).
func (s *kubeSource) session(ctx context.Context, report func(Update)) {
	cfg, ns, err := s.restConfig()
	if err != nil {
		report(Update{Err: err})
		return
	}
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		report(Update{Err: fmt.Errorf("kubernetes client: %w", err)})
		return
	}
	selector := discoveryv1.LabelServiceName + "=" + s.service
	lw := cache.NewFilteredListWatchFromClient(rc, "endpointslices", ns, func(o *metav1.ListOptions) { o.LabelSelector = selector })
	inf := cache.NewSharedIndexInformer(lw, &discoveryv1.EndpointSlice{}, 0, cache.Indexers{})
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	failed := make(chan error, 1)
	_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		// Ends the informer renews by itself (expired resource versions,
		// a watch closed by the apiserver) are not outages.
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		select {
		case failed <- err:
		default:
		}
	})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		report(Update{Err: fmt.Errorf("kubernetes informer: %w", err)})
		return
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	go inf.RunWithContext(ictx)
	go func() {
		// The first list's events may all be handled before the informer
		// counts itself synced: answer once it is (an empty Service too).
		if cache.WaitForCacheSync(ictx.Done(), inf.HasSynced) {
			poke()
		}
	}()
	where := fmt.Sprintf("EndpointSlices of service %s/%s at %s", ns, s.service, cfg.Host)
	answer := func() {
		if !inf.HasSynced() {
			return
		}
		items := inf.GetStore().List()
		slices := make([]*discoveryv1.EndpointSlice, 0, len(items))
		for _, it := range items {
			if es, ok := it.(*discoveryv1.EndpointSlice); ok {
				slices = append(slices, es)
			}
		}
		servers, problems := kubeServers(slices, s.port, s.family)
		s.logProblems(problems)
		report(Update{Servers: servers})
	}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			answer()
		case err := <-failed:
			report(Update{Err: fmt.Errorf("%s: %w", where, err)})
			if staleCredentials(err) {
				return // read them again (as below)
			}
		case <-tick.C:
			qctx, qcancel := context.WithTimeout(ctx, s.timeout)
			err := rc.Get().Namespace(ns).Resource("endpointslices").
				VersionedParams(&metav1.ListOptions{LabelSelector: selector, Limit: 1}, metav1.ParameterCodec).Do(qctx).Error()
			qcancel()
			if err != nil {
				report(Update{Err: fmt.Errorf("%s: %w", where, err)})
				if staleCredentials(err) {
					return // a new session reads them again at once
				}
				continue
			}
			answer()
		}
	}
}

// staleCredentials says whether err means that what the client was built
// with is out of date: the apiserver rejects its token (401), or serves a
// certificate that its CA did not sign. The session then ends, and the
// next one reads the kubeconfig, or the pod's token and ca.crt, again at
// once. client-go itself re-reads a token file (the pod's, or a
// kubeconfig's tokenFile) only once its copy is 50 s old, an inline
// kubeconfig token never, and a CA never: a token revoked as its
// successor is written, or a rotated cluster CA, would fail until then,
// or for ever.
func staleCredentials(err error) bool {
	var ua x509.UnknownAuthorityError
	return apierrors.IsUnauthorized(err) || errors.As(err, &ua)
}

// logProblems logs each slice's problem once, until it changes.
func (s *kubeSource) logProblems(problems map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range problems {
		if s.warned[name] != p {
			s.log.Warn("kubernetes discovery: EndpointSlice left out", "slice", name, "problem", p)
		}
	}
	s.warned = problems
}

// Endpoint states, best first, as kube-proxy ranks them.
const (
	kubeReady              = iota // ready: serves
	kubeServingTerminating        // serves only when nothing is ready (KEP-1669)
	kubeOther                     // not ready, or terminating and not serving
)

// kubeServers builds the answer from a Service's EndpointSlices with
// kube-proxy's meaning of the conditions: ready endpoints serve; when none
// is ready, serving-but-terminating ones do (KEP-1669: a Service scaling
// to zero or a rolling update of one pod keeps taking connections while
// its pods finish); other endpoints are left out. An endpoint left out of
// the answer drains (the Manager keeps it at weight 0 while connections
// finish) instead of vanishing. Like kube-proxy, only an endpoint's first
// address counts. port names the slices' port (by name, else by number);
// "" takes a slice's only port. family, when valid, keeps only slices of
// its address family. problems says, by slice name, why a slice was left
// out.
func kubeServers(slices []*discoveryv1.EndpointSlice, port string, family netip.Addr) (servers []Server, problems map[string]string) {
	type found struct {
		srv   Server
		state int
	}
	best := map[netip.AddrPort]found{}
	problems = map[string]string{}
	for _, es := range slices {
		if es == nil {
			continue
		}
		switch es.AddressType {
		case discoveryv1.AddressTypeIPv4:
			if family.IsValid() && !family.Is4() {
				continue
			}
		case discoveryv1.AddressTypeIPv6:
			if family.IsValid() && !family.Is6() {
				continue
			}
		default:
			continue // FQDN slices are deprecated and carry no address
		}
		p, err := slicePort(es, port)
		if err != nil {
			problems[es.Name] = err.Error()
			continue
		}
		for _, ep := range es.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue // the apiserver validates addresses; be safe anyway
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ep.Conditions.Serving == nil || *ep.Conditions.Serving
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			state := kubeOther
			switch {
			case ready && !terminating:
				state = kubeReady
			case serving && terminating:
				state = kubeServingTerminating
			}
			name := es.Name
			if ep.TargetRef != nil && ep.TargetRef.Name != "" {
				name = ep.TargetRef.Name
			}
			node := ""
			if ep.NodeName != nil {
				node = *ep.NodeName
			}
			ap := netip.AddrPortFrom(a.Unmap(), p)
			// During a move between slices an endpoint may be in two:
			// the better state wins.
			if f, ok := best[ap]; !ok || state < f.state {
				best[ap] = found{Server{Addr: ap, Weight: -1, Name: name, Node: node}, state}
			}
		}
	}
	want := kubeServingTerminating
	for _, f := range best {
		if f.state == kubeReady {
			want = kubeReady
			break
		}
	}
	servers = []Server{}
	for _, f := range best {
		if f.state == want {
			servers = append(servers, f.srv)
		}
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].Addr.Compare(servers[j].Addr) < 0 })
	return servers, problems
}

// slicePort finds the slice's port: by name, else by number; with no
// port asked for, the slice's only one.
func slicePort(es *discoveryv1.EndpointSlice, want string) (uint16, error) {
	var names []string
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		names = append(names, fmt.Sprintf("%q=%d", name, *p.Port))
		if want == "" && len(es.Ports) == 1 {
			return uint16(*p.Port), nil
		}
		if want != "" && (name == want || strconv.Itoa(int(*p.Port)) == want) {
			return uint16(*p.Port), nil
		}
	}
	if want == "" {
		return 0, fmt.Errorf("the slice has %d ports (%s): give the discovery block a port (name or number)", len(names), strings.Join(names, ", "))
	}
	return 0, fmt.Errorf("no port named or numbered %q among the slice's ports (%s)", want, strings.Join(names, ", "))
}

// levelFloor drops records below a level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(as), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}
