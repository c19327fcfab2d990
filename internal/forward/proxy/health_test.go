//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"

	"golang.org/x/sys/unix"

	"github.com/govs-lb/govs/internal/health"
)

// killable is a line-answering real server ("NAME line") that can be killed
// and started again on the same address. Killed, it stops listening at once
// (new connections are refused) while the connections it had accepted
// finish their exchange, as a server process that stops listening before it
// exits. (A process that dies in the middle of a request fails that
// request: no L4 balancer can hide that; none is in flight here.)
type killable struct {
	t    *testing.T
	name string
	addr string

	mu sync.Mutex
	ln *net.TCPListener
	wg sync.WaitGroup

	// quiesce, when set, is held by each client request; a kill that cannot
	// filter SYNs takes it for the instant of the close (see kill).
	quiesce *sync.RWMutex

	served atomic.Int64
	// In accept order since the last start: which connections sent
	// nothing (health checks), and the first that carried a request.
	seq      atomic.Int64
	smu      sync.Mutex
	silent   []int64
	firstReq int64
}

// checksBeforeTraffic counts the silent connections (health checks)
// accepted before the first that carried a request.
func (k *killable) checksBeforeTraffic() int {
	k.smu.Lock()
	defer k.smu.Unlock()
	n := 0
	for _, s := range k.silent {
		if k.firstReq == 0 || s < k.firstReq {
			n++
		}
	}
	return n
}

func startKillable(t *testing.T, name string) *killable {
	t.Helper()
	k := &killable{t: t, name: name}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	k.serve(ln.(*net.TCPListener))
	t.Cleanup(func() { k.kill(); k.wg.Wait() })
	return k
}

func (k *killable) serve(ln *net.TCPListener) {
	k.mu.Lock()
	k.ln = ln
	k.mu.Unlock()
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seq := k.seq.Add(1)
			k.wg.Add(1)
			go func() {
				defer k.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				k.smu.Lock()
				if err != nil {
					k.silent = append(k.silent, seq)
				} else if k.firstReq == 0 || seq < k.firstReq {
					k.firstReq = seq
				}
				k.smu.Unlock()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s %s", k.name, line)
				k.served.Add(1)
			}()
		}
	}()
}

// kill stops listening. Handshakes already under way complete and their
// connections are served: new SYNs are dropped first (a socket filter), the
// accept queue empties, then the socket closes and refuses the rest.
// Closing at once would reset the connections the kernel had accepted but
// the server not yet taken: failures of the test's server, not of govs.
// Where socket filters are not allowed, the close happens while no client
// request is in flight instead (quiesce): a pause of one request.
func (k *killable) kill() {
	k.mu.Lock()
	ln := k.ln
	k.ln = nil
	k.mu.Unlock()
	if ln == nil {
		return
	}
	if err := dropNewSYNs(ln); err == nil {
		time.Sleep(50 * time.Millisecond)
	} else if k.quiesce != nil {
		k.t.Logf("socket filters not allowed here (%v): closing between client requests", err)
		k.quiesce.Lock()
		defer k.quiesce.Unlock()
	}
	ln.Close()
}

func (k *killable) restart() {
	ln, err := net.Listen("tcp", k.addr)
	if err != nil {
		k.t.Fatal(err)
	}
	k.smu.Lock()
	k.silent, k.firstReq = nil, 0
	k.smu.Unlock()
	k.serve(ln.(*net.TCPListener))
}

// dropNewSYNs attaches a classic BPF filter to a listening socket that drops
// segments with SYN set and ACK clear, so no new handshake starts, while
// those under way complete.
func dropNewSYNs(ln *net.TCPListener) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},           // TCP flags
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12},        // SYN | ACK
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jf: 1}, // SYN alone?
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                          // drop
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},                 // keep
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
	}); err != nil {
		return err
	}
	return serr
}

// TestKillRealServerUnderLoad kills one of three real servers under steady
// load: no client connection fails (a refused connect is retried on another
// real server, and the failing one leaves scheduling at once on the
// proxy's word), and when it comes back its active checks return it to
// service after rise passes.
func TestKillRealServerUnderLoad(t *testing.T) {
	a, b, c := startKillable(t, "a"), startKillable(t, "b"), startKillable(t, "c")
	var quiesce sync.RWMutex
	b.quiesce = &quiesce
	vip := fmt.Sprintf("127.0.0.1:%d", loopback.FreePort(t, "tcp"))
	d := startDirector(t, fmt.Sprintf(`
virtual_servers:
  - address: %s
    scheduler: rr
    connect_timeout: 300ms
    retries: 3
    health_check: {type: tcp, interval: 100ms, timeout: 100ms, rise: 3, fall: 3}
    real_servers:
      - address: %s
      - address: %s
      - address: %s
`, vip, a.addr, b.addr, c.addr))
	vs := d.Services()[0]
	rsB := vs.RealServers()[1]

	// Steady load: 4 clients, one request per connection, bounded in count and time.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var load sync.WaitGroup
	deadline := time.Now().Add(20 * time.Second)
	for w := 0; w < 4; w++ {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				quiesce.RLock()
				_, err := ask(t, vip)
				quiesce.RUnlock()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	stopLoad := func() {
		close(stop)
		load.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopLoad()
		}
	}()

	loopback.WaitFor(t, "traffic on every real server", func() bool { return a.served.Load() > 20 && b.served.Load() > 20 && c.served.Load() > 20 })
	b.kill()
	loopback.WaitFor(t, "b out of service", func() bool { return !rsB.Health().Up })
	h := rsB.Health()
	if !strings.HasPrefix(h.Reason, "passive: ") || h.InService || rsB.Dest.Weight() != 0 {
		t.Errorf("b after the kill: %+v (want taken out on the proxy's word, at once)", h)
	}
	servedAfterKill := b.served.Load()
	before := a.served.Load() + c.served.Load()
	loopback.WaitFor(t, "traffic on the others", func() bool { return a.served.Load()+c.served.Load() > before+200 })

	b.restart()
	loopback.WaitFor(t, "b back in service", func() bool { return rsB.Health().Up })
	h = rsB.Health()
	if !strings.Contains(h.Reason, "tcp check passed 3 times (rise 3)") || !h.InService {
		t.Errorf("b back: %+v", h)
	}
	loopback.WaitFor(t, "traffic on b again", func() bool { return b.served.Load() > servedAfterKill+20 })
	if n := b.checksBeforeTraffic(); n < 3 {
		t.Errorf("b served traffic after %d checks, want at least rise (3)", n)
	}
	stopLoad()

	if failed.Load() != 0 {
		t.Fatalf("%d of %d client connections failed (first: %v)", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	var trans []string
	for _, ev := range d.HealthEvents() {
		if ev.Backend == rsB.Addr {
			trans = append(trans, ev.From+">"+ev.To)
		}
	}
	if strings.Join(trans, " ") != health.StateUp+">"+health.StateDown+" "+health.StateDown+">"+health.StateUp {
		t.Errorf("b's transitions: %v", trans)
	}
	t.Logf("%d client connections, none failed; connect errors hidden by retries: %d", ok.Load(), vs.Stats.ConnectErrors.Load())
}
