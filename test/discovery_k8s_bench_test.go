package test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
	"github.com/govs-lb/govs/internal/discovery"
	"github.com/govs-lb/govs/internal/forward/proxy"
	"github.com/govs-lb/govs/test/loopback"
)

// applyWatch is the director as the discovery runner sees it, telling
// the benchmark when a set it waits for has been applied and how long the
// director took.
type applyWatch struct {
	*director.Director
	mu   sync.Mutex
	want func([]*config.RealServer) bool
	done chan time.Duration // the director's own time for the awaited set
}

func (a *applyWatch) SetDiscovered(key string, servers []*config.RealServer) error {
	began := time.Now()
	err := a.Director.SetDiscovered(key, servers)
	took := time.Since(began)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && a.want != nil && a.want(servers) {
		a.want = nil
		a.done <- took
	}
	return err
}

func (a *applyWatch) await(want func([]*config.RealServer) bool) <-chan time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want = want
	return a.done
}

// kubeBenchAddr is the address of endpoint j of slice s: a test range no
// packet is sent to (the service has no health check and no client).
func kubeBenchAddr(s, j int) string {
	return netip.AddrFrom4([4]byte{10, 201, byte(s), byte(j + 1)}).String()
}

// BenchmarkKubeDiscovery5000: a Service with 5,000 endpoints (50
// EndpointSlices of 100, as the endpoint controller cuts them) on a real
// kube-apiserver; each iteration flips one endpoint's ready condition and
// measures the time from the slice's update (the API call) to the
// director having applied the new set (the proxy dataplane programmed).
// It reports the median and p99 of that latency, the director's own share
// (SetDiscovered), and the heap the 5,000 discovered servers cost (the
// informer's cache, the manager, the director's services), measured
// after a GC before and after discovery filled the pool.
func BenchmarkKubeDiscovery5000(b *testing.B) {
	k := startKube(b, nil)
	const nSlices, per = 50, 100
	port, proto := int32(8080), "http"
	ready := map[[2]int]bool{}
	mkSlice := func(s int) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("big-%02d", s), Namespace: "default", Labels: map[string]string{
				discoveryv1.LabelServiceName: "big", discoveryv1.LabelManagedBy: "govs-test"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &proto, Port: &port}},
		}
		for j := range per {
			r, t, f := !ready[[2]int{s, j}], true, false // the map holds the not-ready ones
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{kubeBenchAddr(s, j)},
				Conditions: discoveryv1.EndpointConditions{Ready: &r, Serving: &t, Terminating: &f}})
		}
		return es
	}
	ctx := context.Background()
	cl := k.cs.DiscoveryV1().EndpointSlices("default")
	for s := range nSlices {
		if _, err := cl.Create(ctx, mkSlice(s), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	d := director.New(log, proxy.New(log))
	b.Cleanup(func() { d.Shutdown(0) })
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(b, "tcp"))
	cfg, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`virtual_servers:
  - name: big
    address: %s
    scheduler: wrr
    discovery: {type: kubernetes, kubeconfig: %s, service: big, port: http, interval: 5s, settle: 100ms, drain: 1s}
    real_servers: []
`, vip, k.kubeconfig)))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Apply(cfg); err != nil {
		b.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := &applyWatch{Director: d, done: make(chan time.Duration, 1)}
	full := w.await(func(s []*config.RealServer) bool { return len(s) == nSlices*per })
	r := discovery.NewRunner(log, w)
	b.Cleanup(r.Stop)
	r.Apply(cfg)
	select {
	case <-full:
	case <-time.After(3 * time.Minute):
		b.Fatalf("the 5,000 endpoints were not applied: %+v", r.Status())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heapMB := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20) // live bytes after a GC

	var lat, dir []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		time.Sleep(300 * time.Millisecond) // past settle, and past the idle removal of a drained one
		s, j := i%nSlices, (i/nSlices)%per
		flip := [2]int{s, j}
		ready[flip] = !ready[flip]
		addr := kubeBenchAddr(s, j) + ":8080"
		nowReady := !ready[flip]
		applied := w.await(func(set []*config.RealServer) bool {
			for _, rs := range set {
				if rs.Address.String() == addr {
					return (*rs.Weight > 0) == nowReady
				}
			}
			return !nowReady
		})
		cur, err := cl.Get(ctx, mkSlice(s).Name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		next := mkSlice(s)
		next.ResourceVersion = cur.ResourceVersion
		b.StartTimer()
		began := time.Now()
		if _, err := cl.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		select {
		case took := <-applied:
			lat = append(lat, time.Since(began))
			dir = append(dir, took)
		case <-time.After(time.Minute):
			b.Fatalf("flip %d of %s not applied", i, addr)
		}
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(p*float64(len(s))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(lat, 0.5), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(pct(dir, 0.5), "director-p50-ms")
	b.ReportMetric(heapMB, "heap-MB")
}
