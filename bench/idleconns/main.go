// Command idleconns opens N idle TCP connections to one address and holds
// them, so that a benchmark can read a proxy's memory per idle connection.
//
// It refuses any address outside 127.0.0.0/8 (loopback only). It prints one
// line "ready opened=N failed=F" on stdout once every dial has finished, then
// holds the connections until SIGTERM/SIGINT, until stdin is closed (with
// -stdin), or until -hold has passed, whichever comes first; then it closes
// them and exits. Every dial is bounded by -dial-timeout and the whole run by
// -hold, so it never runs unattended for long.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "address to connect to (must be in 127.0.0.0/8)")
	n := flag.Int("n", 1000, "number of connections to open")
	par := flag.Int("parallel", 32, "dials in flight at once")
	dialTimeout := flag.Duration("dial-timeout", 5*time.Second, "timeout of one dial")
	hold := flag.Duration("hold", 120*time.Second, "longest time to hold the connections")
	stdin := flag.Bool("stdin", false, "also stop when stdin is closed")
	flag.Parse()

	ap, err := netip.ParseAddrPort(*addr)
	if err != nil || !ap.Addr().Unmap().Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(ap.Addr().Unmap()) {
		fmt.Fprintf(os.Stderr, "idleconns: -addr %q: want an IPv4 loopback address and port (127.0.0.0/8)\n", *addr)
		os.Exit(2)
	}
	if *n < 0 || *par < 1 {
		fmt.Fprintln(os.Stderr, "idleconns: -n must be >= 0 and -parallel >= 1")
		os.Exit(2)
	}

	deadline := time.Now().Add(*hold)
	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, *par)
	d := net.Dialer{Timeout: *dialTimeout}
	for i := 0; i < *n && time.Now().Before(deadline); i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := d.Dial("tcp4", ap.String())
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	opened := 0
	for _, c := range conns {
		if c != nil {
			opened++
		}
	}
	fmt.Printf("ready opened=%d failed=%d\n", opened, failed.Load())
	if e, ok := firstErr.Load().(string); ok {
		fmt.Fprintln(os.Stderr, "idleconns: first dial error:", e)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	if *stdin {
		go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	}
	select {
	case <-stop:
	case <-done:
	case <-time.After(time.Until(deadline)):
		fmt.Fprintln(os.Stderr, "idleconns: hold time over")
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
