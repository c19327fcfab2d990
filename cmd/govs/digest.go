package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/health"
)

// digestCmd is keepalived's genhash: it fetches a URL as an http or https
// health check does and prints the MD5 digest of the body, the value for
// expect_digest.
func digestCmd() *cobra.Command {
	var host, sni, connect, ca string
	var verify bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "digest URL",
		Short: "Print the MD5 digest of a URL's body, for a health check's expect_digest",
		Long: `Fetch URL as an http or https health check does (GET, no redirects followed,
at most 1 MiB of body) and print the HTTP status and the MD5 digest of the
body: the value of expect_digest. This is keepalived's genhash.

The Host header is the URL's host unless --host says otherwise; give the
health check the same host. --connect sends the request to a real server's
address instead of the URL's host.

  govs digest http://10.0.0.2/index.html
  govs digest --connect 10.0.0.2:443 --host www.example.com https://www.example.com/health`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := url.Parse(args[0])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an http:// or https:// URL", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			target, err := digestTarget(ctx, u, connect)
			if err != nil {
				return err
			}
			if host == "" {
				host = u.Host
			}
			path := u.EscapedPath()
			if path == "" {
				path = "/"
			}
			if u.RawQuery != "" {
				path += "?" + u.RawQuery
			}
			spec := health.Spec{Type: u.Scheme, Target: target, Path: path, Host: host, SNI: sni, TLSVerify: verify, TLSCA: ca}
			if spec.SNI == "" && u.Scheme == "https" {
				spec.SNI = u.Hostname()
			}
			client, err := health.HTTPClient(spec)
			if err != nil {
				return err
			}
			f, err := health.Fetch(ctx, client, health.URL(spec), host)
			if err != nil {
				var ue *url.Error
				if errors.As(err, &ue) {
					err = ue.Err
				}
				return fmt.Errorf("GET %s from %s: %w", u, target, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "HTTP status: %d\n", f.Status)
			fmt.Fprintf(out, "Body bytes: %d", f.Length)
			if f.Length == health.MaxBody {
				fmt.Fprintf(out, " (the first %d: a check digests no more)", health.MaxBody)
			}
			fmt.Fprintf(out, "\nMD5SUM = %s\n", f.Digest)
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "Host header (a check's host; default the URL's host)")
	cmd.Flags().StringVar(&connect, "connect", "", "connect to this IP:PORT (a real server) instead of the URL's host")
	cmd.Flags().StringVar(&sni, "sni", "", "TLS server name (a check's sni; default the URL's host name)")
	cmd.Flags().BoolVar(&verify, "verify", false, "verify the server's certificate (a check's tls_verify)")
	cmd.Flags().StringVar(&ca, "ca", "", "CA file to verify against (a check's tls_ca)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// digestTarget is where the request goes: --connect, or the URL's host,
// resolved.
func digestTarget(ctx context.Context, u *url.URL, connect string) (netip.AddrPort, error) {
	if connect != "" {
		ap, err := config.ParseAddrPort(connect)
		if err != nil {
			return ap, fmt.Errorf("--connect: %w", err)
		}
		return ap, nil
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return netip.AddrPort{}, fmt.Errorf("invalid port %q", p)
		}
		port = n
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving %s: %v", u.Hostname(), err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(port)), nil
}
