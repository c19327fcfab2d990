package discovery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ep is an endpoint with the given conditions (nil: unset).
func ep(addr string, ready, serving, terminating *bool) discoveryv1.Endpoint {
	node := "node-" + addr
	return discoveryv1.Endpoint{Addresses: []string{addr}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "pod-" + addr}, NodeName: &node,
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
}

func slice(name string, typ discoveryv1.AddressType, ports map[string]int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}, AddressType: typ, Endpoints: eps}
	for n, p := range ports {
		es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: &n, Port: &p})
	}
	return es
}

func addrs(ss []Server) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Addr.String())
	}
	return strings.Join(out, " ")
}

func TestKubeServersConditions(t *testing.T) {
	yes, no := new(bool), new(bool)
	*yes = true
	http := map[string]int32{"http": 8080}
	for _, tc := range []struct {
		name string
		eps  []discoveryv1.Endpoint
		want string
	}{
		{"ready serve, unready and terminating do not", []discoveryv1.Endpoint{
			ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", no, no, no), ep("10.0.0.3", no, yes, yes), ep("10.0.0.4", nil, nil, nil)},
			"10.0.0.1:8080 10.0.0.4:8080"},
		{"no ready one: serving-terminating serve (KEP-1669)", []discoveryv1.Endpoint{
			ep("10.0.0.2", no, no, no), ep("10.0.0.3", no, yes, yes), ep("10.0.0.5", no, no, yes)},
			"10.0.0.3:8080"},
		{"nothing serving: empty", []discoveryv1.Endpoint{ep("10.0.0.2", no, no, no), ep("10.0.0.5", no, no, yes)}, ""},
	} {
		got, problems := kubeServers([]*discoveryv1.EndpointSlice{slice("web-a", discoveryv1.AddressTypeIPv4, http, tc.eps...)}, "http", netip.Addr{})
		if addrs(got) != tc.want || len(problems) != 0 {
			t.Errorf("%s: %q %v, want %q", tc.name, addrs(got), problems, tc.want)
		}
		for _, s := range got {
			if a := s.Addr.Addr().String(); s.Weight != -1 || s.Name != "pod-"+a || s.Node != "node-"+a {
				t.Errorf("%s: %+v: want the block's weight, the pod's name and its node", tc.name, s)
			}
		}
	}

	// An endpoint moving between slices counts once, in its better state.
	two := []*discoveryv1.EndpointSlice{
		slice("web-a", discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", no, no, no)),
		slice("web-b", discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", yes, yes, no)),
	}
	if got, _ := kubeServers(two, "http", netip.Addr{}); addrs(got) != "10.0.0.1:8080" {
		t.Errorf("duplicate endpoint: %q", addrs(got))
	}

	// Ports by name or number; a slice without the port is left out and
	// said why; with no port asked, a slice's only port.
	multi := slice("web-m", discoveryv1.AddressTypeIPv4, map[string]int32{"http": 8080, "metrics": 9090}, ep("10.0.0.1", yes, yes, no))
	for port, want := range map[string]string{"http": "10.0.0.1:8080", "9090": "10.0.0.1:9090", "metrics": "10.0.0.1:9090", "grpc": "", "": ""} {
		got, problems := kubeServers([]*discoveryv1.EndpointSlice{multi}, port, netip.Addr{})
		if addrs(got) != want || (want == "") != (problems["web-m"] != "") {
			t.Errorf("port %q: %q %v, want %q", port, addrs(got), problems, want)
		}
	}
	if got, _ := kubeServers([]*discoveryv1.EndpointSlice{slice("s", discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", yes, yes, no))}, "", netip.Addr{}); addrs(got) != "10.0.0.1:8080" {
		t.Errorf("only port: %q", addrs(got))
	}

	// Dual stack: only the VIP's family; FQDN slices never.
	dual := []*discoveryv1.EndpointSlice{
		slice("v4", discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", yes, yes, no)),
		slice("v6", discoveryv1.AddressTypeIPv6, http, ep("fd00::1", yes, yes, no)),
		slice("fq", discoveryv1.AddressTypeFQDN, http, ep("web.example.com", yes, yes, no)),
	}
	for fam, want := range map[string]string{"10.1.1.1": "10.0.0.1:8080", "fd00::100": "[fd00::1]:8080", "": "10.0.0.1:8080 [fd00::1]:8080"} {
		var a netip.Addr
		if fam != "" {
			a = netip.MustParseAddr(fam)
		}
		if got, _ := kubeServers(dual, "http", a); addrs(got) != want {
			t.Errorf("family %q: %q, want %q", fam, addrs(got), want)
		}
	}
}

// TestStaleCredentials: the errors after which a session reads its
// credentials again, in the shapes client-go returns them.
func TestStaleCredentials(t *testing.T) {
	unknownCA := &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/apis",
		Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"401", apierrors.NewUnauthorized("Unauthorized"), true},
		{"401 wrapped by the reflector", fmt.Errorf("failed to list *v1.EndpointSlice: %w", apierrors.NewUnauthorized("")), true},
		{"unknown CA", fmt.Errorf("failed to list *v1.EndpointSlice: %w", unknownCA), true},
		{"403", apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", errors.New("rbac")), false},
		{"wrong host name", &url.Error{Op: "Get", URL: "https://h", Err: x509.HostnameError{Host: "h", Certificate: &x509.Certificate{}}}, false},
		{"connection refused", &url.Error{Op: "Get", URL: "https://h", Err: syscall.ECONNREFUSED}, false},
		{"EOF", io.EOF, false},
	} {
		if got := staleCredentials(c.err); got != c.want {
			t.Errorf("%s: staleCredentials(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
