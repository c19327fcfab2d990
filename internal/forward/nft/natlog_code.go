package nft

import (
	"time"

	"github.com/govs-lb/govs/internal/accesslog"
	"github.com/govs-lb/govs/internal/ctevent"
)

// The access log of kernel-forwarded flows (nat, fullnat) is written from
// conntrack's destroy events (natlog.go). This file is its pure part: from
// what a destroy event says, the termination code, the time of the flow's
// last packet and its duration.
//
// What conntrack tells at destroy: the TCP state, the IPS_ASSURED status
// bit (the three-way handshake completed), the counters, the start and
// stop times, and the mark. It does not say who sent a reset or the first
// FIN: govs's mark rules (natlog_rules.go) record that in four bits of the
// flow's mark. Whether the flow timed out or was deleted (conntrack -D,
// expire_nodest_conn): recent kernels send the time left of a deleted flow
// only; and a flow can only have timed out once its state's timeout has
// passed since its start, so a flow that ended sooner was deleted. The
// stop time of a flow that timed out is its expiry (the kernel corrects it
// so), so its last packet was its state's timeout before it.

// Bits of the conntrack mark govs sets on the flows of its services
// (natlog_rules.go): a flow of govs's, the direction of its first RST and
// of its first FIN.
const (
	markGovs      = 0x08000000
	markClientRST = 0x10000000
	markServerRST = 0x20000000
	markClientFIN = 0x40000000
	markServerFIN = 0x80000000
	markRST       = markClientRST | markServerRST
	markFIN       = markClientFIN | markServerFIN
)

// TCP conntrack states not in conntrack.go.
const (
	tcpNone      = 0
	tcpSynRecv   = 2
	tcpFinWait   = 4
	tcpCloseWait = 5
	tcpTimeWait  = 7
	tcpSynSent2  = 9
)

// ctTimeouts are the conntrack timeouts of a namespace
// (net.netfilter.nf_conntrack_*_timeout*).
type ctTimeouts struct {
	tcp       [10]time.Duration // by TCP state
	udp       time.Duration     // a UDP flow not assured (no reply, or a short exchange)
	udpStream time.Duration     // an assured UDP flow (replies for more than 2 s)
}

// defaultTimeouts are the kernel's defaults.
var defaultTimeouts = ctTimeouts{
	tcp: [10]time.Duration{
		tcpSynSent:     120 * time.Second,
		tcpSynRecv:     60 * time.Second,
		tcpEstablished: 432000 * time.Second,
		tcpFinWait:     120 * time.Second,
		tcpCloseWait:   60 * time.Second,
		tcpLastAck:     30 * time.Second,
		tcpTimeWait:    120 * time.Second,
		tcpClose:       10 * time.Second,
		tcpSynSent2:    120 * time.Second,
	},
	udp:       30 * time.Second,
	udpStream: 120 * time.Second,
}

// timeout is the timeout a flow in ev's state was given at its last
// packet; 0 when unknown.
func (t *ctTimeouts) timeout(ev *ctevent.Event) time.Duration {
	switch ev.Proto {
	case 6:
		if int(ev.State) < len(t.tcp) {
			return t.tcp[ev.State]
		}
	case 17:
		if ev.Status&ctevent.StatusAssured != 0 {
			return t.udpStream
		}
		return t.udp
	}
	return 0
}

// tickSlack is more than a kernel clock tick (10 ms at HZ=100).
const tickSlack = 15 * time.Millisecond

// natEnd is what a destroy event says of a flow's end.
type natEnd struct {
	code accesslog.Termination
	// start is the first packet; zero without timestamps.
	start time.Time
	// duration is from the first packet to the last; 0 without
	// timestamps.
	duration time.Duration
}

// flowEnd reads a destroy event.
func flowEnd(ev *ctevent.Event, t *ctTimeouts) natEnd { return flowEndAs(ev, t, false) }

// flowEndAs reads a destroy event; with expiring, the flow is known to end
// by its timeout (ev a finished flow's end to come, finishedEvent).
func flowEndAs(ev *ctevent.Event, t *ctTimeouts, expiring bool) natEnd {
	var e natEnd
	timeout := t.timeout(ev)
	// Without timestamps a flow is taken to have timed out (most do).
	expired := ev.Timeout == 0
	if ev.Start > 0 && ev.Stop >= ev.Start {
		life := time.Duration(ev.Stop - ev.Start)
		// Conntrack times its timeouts in jiffies, which lag the clock
		// by up to a tick: a flow that expired can show a life a few
		// milliseconds short of its timeout.
		expired = expiring || expired && timeout > 0 && life+tickSlack >= timeout
		last := life
		if expired {
			last = max(0, life-timeout)
		}
		e.start, e.duration = time.Unix(0, ev.Start), last
	}
	e.code = flowCode(ev, expired)
	return e
}

// flowCode is the termination code of a flow ended in ev's state, timed
// out (expired) or deleted. docs/logs.md has the table.
func flowCode(ev *ctevent.Event, expired bool) accesslog.Termination {
	killed := func(phase byte) accesslog.Termination {
		return accesslog.Termination{accesslog.ByKilled, phase}
	}
	if ev.Proto != 6 {
		if expired {
			return accesslog.Normal // a UDP flow ends by its timeout
		}
		return killed(accesslog.InData)
	}
	m := ev.Mark
	switch ev.State {
	case tcpTimeWait, tcpLastAck, tcpNone:
		// Both sides closed (a LAST_ACK that expired lost only the
		// last ACK).
		return accesslog.Normal
	case tcpClose:
		// A reset ended it (or it was deleted after one). Without the
		// mark rules who reset is unknown: S, as for a refused connect,
		// the commonest.
		by := byte(accesslog.ByServer)
		if m&markRST == markClientRST {
			by = accesslog.ByClient
		}
		switch {
		case ev.Status&ctevent.StatusAssured == 0:
			return accesslog.Termination{by, accesslog.InConnect}
		case m&markFIN != 0:
			return accesslog.Termination{by, accesslog.InClosing}
		}
		return accesslog.Termination{by, accesslog.InData}
	case tcpSynSent, tcpSynSent2:
		if !expired {
			return killed(accesslog.InConnect)
		}
		// The real server never answered the SYN.
		return accesslog.Termination{accesslog.ByServerTimeout, accesslog.InConnect}
	case tcpSynRecv:
		if !expired {
			return killed(accesslog.InConnect)
		}
		// The real server answered; the client never completed the
		// handshake.
		return accesslog.Termination{accesslog.ByClientTimeout, accesslog.InConnect}
	case tcpFinWait, tcpCloseWait:
		if !expired {
			return killed(accesslog.InClosing)
		}
		// One side closed, the other never did.
		if m&markFIN == markServerFIN {
			return accesslog.Termination{accesslog.ByClientTimeout, accesslog.InClosing}
		}
		return accesslog.Termination{accesslog.ByServerTimeout, accesslog.InClosing}
	case tcpEstablished:
		if !expired {
			return killed(accesslog.InData)
		}
		// Idle past the established timeout.
		return accesslog.Termination{accesslog.ByClientTimeout, accesslog.InData}
	}
	return accesslog.Normal
}
