//go:build !linux

package proxy

import (
	"errors"
	"runtime"

	"github.com/govs-lb/govs/internal/director"
)

// eventLoopSupported: the event loop is epoll's; elsewhere every TCP
// connection runs on goroutines (tcp.go).
const eventLoopSupported = false

type evLoops struct{}

func newEvLoops(int) (*evLoops, error) { return nil, errors.New("event loops need Linux") }

func (e *evLoops) stop() {}

func (p *Proxy) listenEv(vs *director.VirtualService) (server, error) {
	return nil, errors.New("event loops need Linux")
}

// baseProcs is GOMAXPROCS: no loops here.
func baseProcs() int { return runtime.GOMAXPROCS(0) }
