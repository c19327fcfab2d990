package proxy

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/govs-lb/govs/internal/accesslog"

	"github.com/govs-lb/govs/test/loopback"
)

func benchDirector(b *testing.B, backend string) string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	vip := l.Addr().String()
	l.Close()
	cfgText := fmt.Sprintf("virtual_servers: [{address: %s, real_servers: [{address: %s}]}]", vip, backend)
	d := newDirectorFromText(b, cfgText)
	b.Cleanup(func() { d.Shutdown(0) })
	return vip
}

// BenchmarkTCPRequest is one small request and its reply over an
// established proxied connection: the keep-alive path.
func BenchmarkTCPRequest(b *testing.B) {
	vip := benchDirector(b, loopback.EchoServer(b, 0))
	c, err := net.Dial("tcp", vip)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 128)
	buf := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.Write(msg)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCPConnect is a new proxied connection with one exchange: the
// new-connection path.
func BenchmarkTCPConnect(b *testing.B) { benchConnect(b, benchDirector(b, loopback.EchoServer(b, 0))) }

// BenchmarkTCPConnectAccessLog is BenchmarkTCPConnect writing each
// connection's line to an access-log file: what the log adds per
// connection.
func BenchmarkTCPConnectAccessLog(b *testing.B) {
	w, err := accesslog.OpenWriter(filepath.Join(b.TempDir(), "access.log"), testLog())
	if err != nil {
		b.Fatal(err)
	}
	accesslog.SetWriter(w)
	b.Cleanup(func() { accesslog.SetWriter(nil); w.Close() })
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	vip := l.Addr().String()
	l.Close()
	d := newDirectorFromText(b, fmt.Sprintf("logging: {access_log: true}\nvirtual_servers: [{address: %s, real_servers: [{address: %s}]}]",
		vip, loopback.EchoServer(b, 0)))
	b.Cleanup(func() { d.Shutdown(0) })
	benchConnect(b, vip)
}

func benchConnect(b *testing.B, vip string) {
	msg := []byte("ping")
	buf := make([]byte, 4)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", vip)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(msg)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkTCPBulk moves 1 MiB per op through one proxied connection.
func BenchmarkTCPBulk(b *testing.B) {
	vip := benchDirector(b, loopback.EchoServer(b, 0))
	c, err := net.Dial("tcp", vip)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const size = 1 << 20
	msg := make([]byte, size)
	go func() {
		for range b.N {
			if _, err := c.Write(msg); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, size)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
