package nft

import (
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/ctevent"
)

// TestFlowEnd: each way a kernel-forwarded flow can end gives the code and
// duration docs/logs.md states, from what its destroy event says.
func TestFlowEnd(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	to := defaultTimeouts
	to.tcp[tcpTimeWait] = 2 * time.Second
	const assured = ctevent.StatusAssured | ctevent.StatusSeenReply | ctevent.StatusDstNAT
	for _, c := range []struct {
		name   string
		proto  uint8
		state  uint8
		status uint32
		mark   uint32
		life   time.Duration // start to stop
		code   string
		dur    time.Duration
	}{
		{"closed normally, TIME_WAIT expired", 6, tcpTimeWait, assured, markClientFIN, 2*time.Second + 300*time.Millisecond, "--", 300 * time.Millisecond},
		{"TIME_WAIT deleted early", 6, tcpTimeWait, assured, markServerFIN, time.Second, "--", time.Second},
		{"LAST_ACK expired", 6, tcpLastAck, assured, markClientFIN, 31 * time.Second, "--", time.Second},
		{"refused: the server's RST to the SYN", 6, tcpClose, ctevent.StatusDstNAT | ctevent.StatusSeenReply, markServerRST, 10*time.Second + 2*time.Millisecond, "SC", 2 * time.Millisecond},
		{"reset a tick short of the CLOSE timeout (jiffies)", 6, tcpClose, assured, markClientRST, 10*time.Second - 3*time.Millisecond, "CD", 0},
		{"client reset while connecting", 6, tcpClose, ctevent.StatusDstNAT, markClientRST, 10 * time.Second, "CC", 0},
		{"client reset in data", 6, tcpClose, assured, markClientRST, 15 * time.Second, "CD", 5 * time.Second},
		{"server reset in data", 6, tcpClose, assured, markServerRST, 12 * time.Second, "SD", 2 * time.Second},
		{"server reset after the client's FIN", 6, tcpClose, assured, markServerRST | markClientFIN, 12 * time.Second, "SL", 2 * time.Second},
		{"CLOSE flow deleted by govs (dead real server)", 6, tcpClose, ctevent.StatusDstNAT | ctevent.StatusSeenReply, markServerRST, 800 * time.Millisecond, "SC", 800 * time.Millisecond},
		{"reset, marks unknown", 6, tcpClose, assured, 0, 11 * time.Second, "SD", time.Second},
		{"no answer to the SYN", 6, tcpSynSent, ctevent.StatusDstNAT, 0, 121 * time.Second, "sC", time.Second},
		{"SYN_SENT deleted", 6, tcpSynSent, ctevent.StatusDstNAT, 0, 3 * time.Second, "KC", 3 * time.Second},
		{"handshake never completed by the client", 6, tcpSynRecv, ctevent.StatusDstNAT | ctevent.StatusSeenReply, 0, 61 * time.Second, "cC", time.Second},
		{"established, deleted (expire_nodest_conn)", 6, tcpEstablished, assured, 0, 90 * time.Second, "KD", 90 * time.Second},
		{"established, idle past its timeout", 6, tcpEstablished, assured, 0, 432001 * time.Second, "cD", time.Second},
		{"client closed, server never did", 6, tcpFinWait, assured, markClientFIN, 130 * time.Second, "sL", 10 * time.Second},
		{"server closed, client never did", 6, tcpCloseWait, assured, markServerFIN, 70 * time.Second, "cL", 10 * time.Second},
		{"half-closed, deleted", 6, tcpCloseWait, assured, markServerFIN, 7 * time.Second, "KL", 7 * time.Second},
		{"udp, short exchange, expired", 17, 0, ctevent.StatusDstNAT | ctevent.StatusSeenReply, 0, 30*time.Second + 5*time.Millisecond, "--", 5 * time.Millisecond},
		{"udp stream, expired", 17, 0, assured, 0, 125 * time.Second, "--", 5 * time.Second},
		{"udp deleted", 17, 0, ctevent.StatusDstNAT, 0, 3 * time.Second, "KD", 3 * time.Second},
	} {
		ev := ctevent.Event{Kind: ctevent.Destroy, Proto: c.proto, State: c.state, Status: c.status,
			Mark: c.mark, Start: t0.UnixNano(), Stop: t0.Add(c.life).UnixNano()}
		e := flowEnd(&ev, &to)
		if e.code.String() != c.code || e.duration != c.dur || !e.start.Equal(t0) {
			t.Errorf("%s: %s %v from %v, want %s %v from %v", c.name, e.code, e.duration, e.start, c.code, c.dur, t0)
		}
	}
	// A destroy event with time left: deleted, whatever its age.
	ev0 := ctevent.Event{Kind: ctevent.Destroy, Proto: 6, State: tcpEstablished, Status: assured, Timeout: 431000,
		Start: t0.UnixNano(), Stop: t0.Add(432001 * time.Second).UnixNano()}
	if e := flowEnd(&ev0, &to); e.code.String() != "KD" || e.duration != 432001*time.Second {
		t.Errorf("deleted with time left: %s %v, want KD and its whole life", e.code, e.duration)
	}
	// A refused connect: conntrack kills it at the RST, with the SYN's
	// time left and before the mark rules see the RST.
	ev1 := ctevent.Event{Kind: ctevent.Destroy, Proto: 6, State: tcpClose, Status: ctevent.StatusDstNAT | ctevent.StatusSeenReply,
		Mark: markGovs, Timeout: 120, Start: t0.UnixNano(), Stop: t0.Add(11 * time.Microsecond).UnixNano()}
	if e := flowEnd(&ev1, &to); e.code.String() != "SC" || e.duration != 11*time.Microsecond {
		t.Errorf("refused: %s %v, want SC 11µs", e.code, e.duration)
	}
	// Without timestamps: no start, no duration, the state taken as
	// expired.
	ev := ctevent.Event{Kind: ctevent.Destroy, Proto: 6, State: tcpEstablished, Status: assured}
	if e := flowEnd(&ev, &to); e.code.String() != "cD" || e.duration != 0 || !e.start.IsZero() {
		t.Errorf("without timestamps: %+v", e)
	}
}
