package proxy

import (
	"sync"
	"time"

	"github.com/govs-lb/govs/internal/director"
)

// connSet holds the proxied TCP connections for listing. It is sharded by
// client port so that connections starting and ending on different cores
// rarely meet on a lock: one insert and one delete per connection is all
// the hot path pays.
type connSet struct {
	shards [connShards]connShard
}

const connShards = 32

type connShard struct {
	mu sync.Mutex
	m  map[proxied]struct{}
	_  [40]byte // keep the shards' locks on separate cache lines
}

// proxied is a TCP connection of either data path: a pair of goroutines
// (tcp.go) or an event loop (evconn_linux.go).
type proxied interface {
	entry() director.Connection
	// quiet and closeQuiet are a stop's: see tcpConn's.
	quiet(d time.Duration) bool
	closeQuiet()
	clientPort() uint16
}

func (s *connSet) shard(c proxied) *connShard {
	return &s.shards[c.clientPort()%connShards]
}

func (s *connSet) add(c proxied) {
	sh := s.shard(c)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = map[proxied]struct{}{}
	}
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (s *connSet) remove(c proxied) {
	sh := s.shard(c)
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

// Connections implements director.Dataplane: the proxied TCP
// connections, then the UDP flows of every service, draining ones included.
func (p *Proxy) Connections(yield func(director.Connection) bool) error {
	var batch []proxied
	for i := range p.tcp.shards {
		sh := &p.tcp.shards[i]
		batch = batch[:0]
		sh.mu.Lock()
		for c := range sh.m {
			batch = append(batch, c)
		}
		sh.mu.Unlock()
		for _, c := range batch {
			if !yield(c.entry()) {
				return nil
			}
		}
	}
	for _, u := range p.udpServers() {
		for _, f := range u.flowList() {
			if !yield(f.entry()) {
				return nil
			}
		}
	}
	return nil
}

func (c *tcpConn) clientPort() uint16 { return c.clientAP.Port() }

// entry describes c in IPVS's terms. The state follows the FINs the proxy
// has passed on: FIN_WAIT once the client has closed its side, CLOSE_WAIT
// once the real server has; the expiry is what is left of the idle timeout,
// or of tcpfin_timeout once half-closed.
func (c *tcpConn) entry() director.Connection {
	return director.Connection{
		Service: c.vs.Key, Protocol: c.vs.Protocol, State: finState(c.firstFin.Load()),
		Expires: remaining(c.timeout(), c.start, c.last.Load()),
		Client:  c.clientAP, Virtual: c.vs.Address, RealServer: c.rs.Addr,
		InBytes: uint64(c.in.Load()), OutBytes: uint64(c.out.Load()),
	}
}

// remaining is the rest of an idle timeout for a connection started at
// start whose last activity was lastNs after it; 0 when there is no idle
// timeout.
// finState is a proxied TCP connection's state in IPVS's terms, from which
// side sent the first FIN.
func finState(firstFin int32) string {
	switch firstFin {
	case finClient:
		return "FIN_WAIT"
	case finServer:
		return "CLOSE_WAIT"
	}
	return "ESTABLISHED"
}

// inactivity is the inactivity timeout in force: idle_timeout, or
// tcpfin_timeout once one side has half-closed.
func (w *wanted) inactivity(halfClosed bool) time.Duration {
	if fin := w.TCPFinTimeout; halfClosed && fin > 0 {
		return fin
	}
	return w.IdleTimeout
}

func remaining(timeout time.Duration, start time.Time, lastNs int64) time.Duration {
	if timeout <= 0 {
		return 0
	}
	return max(0, timeout-(time.Since(start)-time.Duration(lastNs)))
}

// Which side of a TCP connection sent the first FIN.
const (
	finClient = 1
	finServer = 2
)

// udpServers returns the UDP servers carrying flows: those serving and
// those draining after their service was removed.
func (p *Proxy) udpServers() []*udpServer {
	var out []*udpServer
	p.mu.Lock()
	for _, s := range p.servers {
		if u, ok := s.(*udpServer); ok {
			out = append(out, u)
		}
	}
	p.mu.Unlock()
	p.dmu.Lock()
	for _, u := range p.draining {
		out = append(out, u)
	}
	p.dmu.Unlock()
	return out
}

// flowList returns the server's scheduled flows. One-packet flows are left
// out: IPVS does not keep them in its connection table either.
func (s *udpServer) flowList() []*udpFlow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*udpFlow, 0, len(s.flows))
	for _, f := range s.flows {
		if f.rs != nil {
			out = append(out, f)
		}
	}
	return out
}

// entry describes f as IPVS shows a UDP connection.
func (f *udpFlow) entry() director.Connection {
	vs := f.s.vs
	return director.Connection{
		Service: vs.Key, Protocol: vs.Protocol, State: "UDP",
		Expires: remaining(f.s.want.Load().IdleTimeout, f.start, f.last.Load()),
		Client:  f.client, Virtual: vs.Address, RealServer: f.rs.Addr,
		InBytes: uint64(f.in.Load()), OutBytes: uint64(f.out.Load()),
	}
}
