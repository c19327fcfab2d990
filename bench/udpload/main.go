// Command udpload is the UDP side of bench/udp.sh: an echo real server, a
// request-response load, or idle flows held open, all on loopback.
//
//	udpload -echo 127.0.0.1:PORT                    answer every datagram with itself
//	udpload -addr VIP -clients 16 -duration 5s      request-response: print the rate and p99
//	udpload -addr VIP -idle 2000 -hold 60s -stdin   open 2,000 flows (one exchange each), hold them
//
// It refuses any address outside 127.0.0.0/8. Every run is bounded: a load by
// -duration, a hold by -hold (and stdin closing with -stdin, or a signal), an
// echo server by -hold too; a datagram unanswered within -timeout counts as
// lost and its client goes on.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"
)

func main() {
	echo := flag.String("echo", "", "serve as the echo real server on this address")
	addr := flag.String("addr", "", "the proxy's UDP VIP (127.0.0.0/8)")
	clients := flag.Int("clients", 16, "clients in request-response loops, one socket (one flow) each")
	size := flag.Int("size", 64, "datagram size in bytes")
	duration := flag.Duration("duration", 5*time.Second, "how long the load runs")
	idle := flag.Int("idle", 0, "open this many flows and hold them instead of a load")
	hold := flag.Duration("hold", 120*time.Second, "longest time to hold idle flows or serve as echo")
	stdin := flag.Bool("stdin", false, "also stop holding when stdin is closed")
	timeout := flag.Duration("timeout", time.Second, "a datagram unanswered this long is lost")
	flag.Parse()

	target := *addr
	if *echo != "" {
		target = *echo
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil || !netip.MustParsePrefix("127.0.0.0/8").Contains(ap.Addr().Unmap()) {
		fmt.Fprintf(os.Stderr, "udpload: %q: want an IPv4 loopback address and port (127.0.0.0/8)\n", target)
		os.Exit(2)
	}
	if *clients < 1 || *clients > 4096 || *idle < 0 || *idle > 100000 || *size < 1 || *size > 65000 ||
		*duration <= 0 || *duration > 10*time.Minute || *hold <= 0 || *hold > time.Hour {
		fmt.Fprintln(os.Stderr, "udpload: settings out of bounds")
		os.Exit(2)
	}
	switch {
	case *echo != "":
		serveEcho(ap, *hold)
	case *idle > 0:
		holdIdle(ap, *idle, *hold, *stdin, *timeout)
	default:
		load(ap, *clients, *size, *duration, *timeout)
	}
}

// serveEcho answers datagrams on two goroutines (the proxy under test gets
// the rest of the machine).
func serveEcho(ap netip.AddrPort, hold time.Duration) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		fmt.Fprintln(os.Stderr, "udpload:", err)
		os.Exit(1)
	}
	c.SetReadBuffer(4 << 20)
	for range 2 {
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				c.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	fmt.Println("ready")
	waitStop(hold, false)
	c.Close()
}

func load(ap netip.AddrPort, clients, size int, duration, timeout time.Duration) {
	end := time.Now().Add(duration)
	var mu sync.Mutex
	var lat []time.Duration
	var reqs, lost int
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ap))
			if err != nil {
				fmt.Fprintln(os.Stderr, "udpload:", err)
				return
			}
			defer c.Close()
			msg, buf := make([]byte, size), make([]byte, size+64)
			var mine []time.Duration
			n, l := 0, 0
			for time.Now().Before(end) {
				t0 := time.Now()
				c.SetReadDeadline(t0.Add(timeout))
				if _, err := c.Write(msg); err != nil {
					l++
					continue
				}
				if _, err := c.Read(buf); err != nil {
					l++
					continue
				}
				mine = append(mine, time.Since(t0))
				n++
			}
			mu.Lock()
			lat = append(lat, mine...)
			reqs += n
			lost += l
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	p99 := time.Duration(0)
	if len(lat) > 0 {
		p99 = lat[len(lat)*99/100]
	}
	fmt.Printf("requests=%d lost=%d rate=%.0f p99_ms=%.3f\n", reqs, lost, float64(reqs)/duration.Seconds(),
		float64(p99)/float64(time.Millisecond))
}

func holdIdle(ap netip.AddrPort, n int, hold time.Duration, stdin bool, timeout time.Duration) {
	var conns []*net.UDPConn
	failed := 0
	buf := make([]byte, 64)
	for range n {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			failed++
			continue
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("x")); err != nil {
			failed++
			continue
		}
		if _, err := c.Read(buf); err != nil {
			failed++
		}
	}
	fmt.Printf("ready opened=%d failed=%d\n", len(conns)-failed, failed)
	waitStop(hold, stdin)
	for _, c := range conns {
		c.Close()
	}
}

func waitStop(hold time.Duration, stdin bool) {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	if stdin {
		go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	}
	select {
	case <-stop:
	case <-done:
	case <-time.After(hold):
		fmt.Fprintln(os.Stderr, "udpload: hold time over")
	}
}
