//go:build !linux

package proxy

import "net"

// copyStream copies src to dst until src's EOF (nil error) or an error.
// Without splice(2) bytes go through a pooled buffer.
func copyStream(dst, src *net.TCPConn, count func(int)) (int64, error) {
	return copyBuffered(dst, src, count)
}
