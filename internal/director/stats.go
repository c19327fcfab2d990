package director

import "sync/atomic"

// Stats are the counters of a virtual service or a real server, with
// ipvsadm --stats meanings. In means client to real server, out the reverse.
// They only grow: a reload that keeps a service or real server keeps its
// counters.
type Stats struct {
	Conns    atomic.Uint64 // connections (TCP) or flows (UDP) scheduled
	InPkts   atomic.Uint64 // datagrams client -> real server (UDP only; TCP segments are the kernel's)
	OutPkts  atomic.Uint64
	InBytes  atomic.Uint64
	OutBytes atomic.Uint64
	// Failures that clients did not see (retried on another real server)
	// and those they did (no real server could take the connection).
	ConnectErrors atomic.Uint64
	Refused       atomic.Uint64
	Dropped       atomic.Uint64 // UDP datagrams dropped (flow table full, no real server)
	FlowLimit     atomic.Uint64 // of those, dropped because the flow table was at max_flows
	// New connections or flows refused because their client was at its
	// per-client limit, and new UDP flows shed because the process was
	// short of file descriptors.
	ClientLimited atomic.Uint64
	Overload      atomic.Uint64
}

// StatsSnapshot is a plain copy of Stats.
type StatsSnapshot struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
	ConnectErrors, Refused, Dropped           uint64
	FlowLimit                                 uint64
	ClientLimited, Overload                   uint64
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Conns: s.Conns.Load(), InPkts: s.InPkts.Load(), OutPkts: s.OutPkts.Load(),
		InBytes: s.InBytes.Load(), OutBytes: s.OutBytes.Load(),
		ConnectErrors: s.ConnectErrors.Load(), Refused: s.Refused.Load(), Dropped: s.Dropped.Load(),
		FlowLimit:     s.FlowLimit.Load(),
		ClientLimited: s.ClientLimited.Load(), Overload: s.Overload.Load(),
	}
}
