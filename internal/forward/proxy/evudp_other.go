//go:build !linux

package proxy

import (
	"net/netip"

	"errors"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/desired"
	"github.com/govs-lb/govs/internal/director"
)

// Without epoll every UDP service runs on goroutines (udp.go): these are
// the loops' parts, empty.

type udpListener struct{ s *udpServer }

type udpFlowEv struct{ lst *udpListener }

func (p *Proxy) listenUDPEv(*director.VirtualService, *desired.Service) (server, error) {
	return nil, errors.New("event loops need Linux")
}

func (s *udpServer) closeListeners(*udpListener) {}
func (s *udpServer) expireQuietEv()              {}
func (s *udpServer) retimeEv()                   {}
func (f *udpFlow) openEv(*udpListener, netip.AddrPort) error {
	return errors.New("event loops need Linux")
}
func (f *udpFlow) startEv(*wanted)                                 {}
func (f *udpFlow) on(lst *udpListener) bool                        { return f.ev.lst == lst }
func (f *udpFlow) closeEv()                                        {}
func (f *udpFlow) forgetEv()                                       {}
func (f *udpFlow) endEv(code accesslog.Termination, reason string) { f.close(code, reason) }
