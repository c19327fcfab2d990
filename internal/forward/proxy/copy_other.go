//go:build !linux

package proxy

import (
	"io"
	"net"
	"sync"
)

// copyStream copies src to dst until src's EOF (nil error) or an error.
// Without splice(2) bytes go through a pooled buffer.
func copyStream(dst, src *net.TCPConn, read func(), count func(int)) (int64, error) {
	return copyBuffered(dst, src, read, count)
}

// bufPool holds the buffers of the portable copy path.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBuffered is the portable copy loop, used where splice is not.
func copyBuffered(dst, src net.Conn, read func(), count func(int)) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var total int64
	for {
		n, rerr := src.Read(*bp)
		if n > 0 {
			read()
			m, werr := dst.Write((*bp)[:n])
			total += int64(m)
			count(m)
			if werr != nil {
				return total, dstError{werr}
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
