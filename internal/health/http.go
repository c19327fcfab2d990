package health

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// The http and https checks are keepalived's HTTP_GET and SSL_GET: GET the
// path on the real server (not following redirects) and pass when the
// status is one of expect_status (default: any 2xx, as keepalived) and,
// with expect_digest, when the MD5 of the body is that digest (keepalived's
// digest; compute it with govs digest URL). The Host header is host when
// set. https sends sni (default: host) and verifies the certificate only
// with tls_verify. At most MaxBody bytes of the body are read.
//
// With urls, as keepalived with several url blocks, the check GETs each URL
// in turn, each with its own expected status, digest and host, and passes
// only when every one answers as expected: the first that does not fails
// the check, naming it.

// MaxBody bounds the body an http check reads and digests.
const MaxBody = 1 << 20

func init() {
	Register("http", newHTTP)
	Register("https", newHTTP)
}

type httpChecker struct {
	client *http.Client
	urls   []httpURL
}

// httpURL is one URL a check GETs and what it expects.
type httpURL struct {
	url    string
	path   string
	host   string
	expect []int
	digest string
}

func newHTTP(s Spec) (Checker, error) {
	client, err := HTTPClient(s)
	if err != nil {
		return nil, err
	}
	c := &httpChecker{client: client}
	if len(s.URLs) == 0 {
		c.urls = []httpURL{{url: URL(s), host: s.Host, expect: s.ExpectStatus, digest: strings.ToLower(s.ExpectDigest)}}
	}
	for _, u := range s.URLs {
		host := u.Host
		if host == "" {
			host = s.Host
		}
		c.urls = append(c.urls, httpURL{url: urlOf(s, u.Path), path: u.Path, host: host, expect: u.ExpectStatus, digest: strings.ToLower(u.ExpectDigest)})
	}
	return c, nil
}

// URL is the address a Spec's http check asks for (its first URL).
func URL(s Spec) string {
	if len(s.URLs) > 0 {
		return urlOf(s, s.URLs[0].Path)
	}
	return urlOf(s, s.Path)
}

func urlOf(s Spec, path string) string {
	scheme := "http"
	if s.Type == "https" {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: s.Target.String()}
	return u.String() + path
}

// HTTPClient returns a client that connects to s.Target whatever the URL's
// host, once per request (no keep-alive: each check is a new connection, as
// keepalived's), with s's TLS settings and without following redirects.
func HTTPClient(s Spec) (*http.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: !s.TLSVerify, ServerName: s.SNI}
	if tc.ServerName == "" {
		tc.ServerName = s.Host
	}
	if s.TLSCA != "" {
		pem, err := os.ReadFile(s.TLSCA)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca %s holds no PEM certificate", s.TLSCA)
		}
	}
	target := s.Target.String()
	d := dialer()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, target)
		},
		TLSClientConfig:        tc,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Fetched is what an http check got.
type Fetched struct {
	Status int
	Digest string // MD5 of the body, hex
	Length int64  // bytes of body read (at most MaxBody)
}

// Fetch GETs url with client (Host header host when not empty) and digests
// at most MaxBody bytes of the body.
func Fetch(ctx context.Context, client *http.Client, url, host string) (Fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Fetched{}, err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("User-Agent", "govs-healthcheck")
	resp, err := client.Do(req)
	if err != nil {
		return Fetched{}, err
	}
	defer resp.Body.Close()
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(resp.Body, MaxBody))
	f := Fetched{Status: resp.StatusCode, Digest: hex.EncodeToString(h.Sum(nil)), Length: n}
	if err != nil {
		return f, fmt.Errorf("reading body: %w", err)
	}
	return f, nil
}

func (c *httpChecker) Check(ctx context.Context) Result {
	var r Result
	for _, u := range c.urls {
		if r = c.checkURL(ctx, u); !r.OK {
			if len(c.urls) > 1 {
				r.Msg = u.path + ": " + r.Msg
			}
			return r
		}
	}
	if len(c.urls) > 1 {
		r.Msg = fmt.Sprintf("%d urls answer as expected", len(c.urls))
	}
	return r
}

func (c *httpChecker) checkURL(ctx context.Context, u httpURL) Result {
	f, err := Fetch(ctx, c.client, u.url, u.host)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return failErr(ctx, "get", err)
	}
	if !statusOK(f.Status, u.expect) {
		return fail("status %d, want %s", f.Status, describeStatus(u.expect))
	}
	if u.digest != "" && f.Digest != u.digest {
		return fail("status %d, body digest %s, want %s", f.Status, f.Digest, u.digest)
	}
	return pass("status %d", f.Status)
}

func statusOK(code int, expect []int) bool {
	if len(expect) == 0 {
		return code >= 200 && code <= 299
	}
	for _, e := range expect {
		if e == code {
			return true
		}
	}
	return false
}

func describeStatus(expect []int) string {
	if len(expect) == 0 {
		return "2xx"
	}
	s := make([]string, len(expect))
	for i, e := range expect {
		s[i] = itoa(e)
	}
	return strings.Join(s, " or ")
}
