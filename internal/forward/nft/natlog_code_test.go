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
	label := func(l byte) [16]byte { var b [16]byte; b[labelByte] = l; return b }
	const assured = ctevent.StatusAssured | ctevent.StatusSeenReply | ctevent.StatusDstNAT
	for _, c := range []struct {
		name   string
		proto  uint8
		state  uint8
		status uint32
		labels byte
		life   time.Duration // start to stop
		code   string
		dur    time.Duration
	}{
		{"closed normally, TIME_WAIT expired", 6, tcpTimeWait, assured, labelClientFIN, 2*time.Second + 300*time.Millisecond, "--", 300 * time.Millisecond},
		{"TIME_WAIT deleted early", 6, tcpTimeWait, assured, labelServerFIN, time.Second, "--", time.Second},
		{"LAST_ACK expired", 6, tcpLastAck, assured, labelClientFIN, 31 * time.Second, "--", time.Second},
		{"refused: the server's RST to the SYN", 6, tcpClose, ctevent.StatusDstNAT | ctevent.StatusSeenReply, labelServerRST, 10*time.Second + 2*time.Millisecond, "SC", 2 * time.Millisecond},
		{"client reset while connecting", 6, tcpClose, ctevent.StatusDstNAT, labelClientRST, 10 * time.Second, "CC", 0},
		{"client reset in data", 6, tcpClose, assured, labelClientRST, 15 * time.Second, "CD", 5 * time.Second},
		{"server reset in data", 6, tcpClose, assured, labelServerRST, 12 * time.Second, "SD", 2 * time.Second},
		{"server reset after the client's FIN", 6, tcpClose, assured, labelServerRST | labelClientFIN, 12 * time.Second, "SL", 2 * time.Second},
		{"CLOSE flow deleted by govs (dead real server)", 6, tcpClose, ctevent.StatusDstNAT | ctevent.StatusSeenReply, labelServerRST, 800 * time.Millisecond, "SC", 800 * time.Millisecond},
		{"reset, labels unknown", 6, tcpClose, assured, 0, 11 * time.Second, "SD", time.Second},
		{"no answer to the SYN", 6, tcpSynSent, ctevent.StatusDstNAT, 0, 121 * time.Second, "sC", time.Second},
		{"SYN_SENT deleted", 6, tcpSynSent, ctevent.StatusDstNAT, 0, 3 * time.Second, "KC", 3 * time.Second},
		{"handshake never completed by the client", 6, tcpSynRecv, ctevent.StatusDstNAT | ctevent.StatusSeenReply, 0, 61 * time.Second, "cC", time.Second},
		{"established, deleted (expire_nodest_conn)", 6, tcpEstablished, assured, 0, 90 * time.Second, "KD", 90 * time.Second},
		{"established, idle past its timeout", 6, tcpEstablished, assured, 0, 432001 * time.Second, "cD", time.Second},
		{"client closed, server never did", 6, tcpFinWait, assured, labelClientFIN, 130 * time.Second, "sL", 10 * time.Second},
		{"server closed, client never did", 6, tcpCloseWait, assured, labelServerFIN, 70 * time.Second, "cL", 10 * time.Second},
		{"half-closed, deleted", 6, tcpCloseWait, assured, labelServerFIN, 7 * time.Second, "KL", 7 * time.Second},
		{"udp, short exchange, expired", 17, 0, ctevent.StatusDstNAT | ctevent.StatusSeenReply, 0, 30*time.Second + 5*time.Millisecond, "--", 5 * time.Millisecond},
		{"udp stream, expired", 17, 0, assured, 0, 125 * time.Second, "--", 5 * time.Second},
		{"udp deleted", 17, 0, ctevent.StatusDstNAT, 0, 3 * time.Second, "KD", 3 * time.Second},
	} {
		ev := ctevent.Event{Kind: ctevent.Destroy, Proto: c.proto, State: c.state, Status: c.status,
			Labels: label(c.labels), HasLabels: true, Start: t0.UnixNano(), Stop: t0.Add(c.life).UnixNano()}
		e := flowEnd(&ev, &to)
		if e.code.String() != c.code || e.duration != c.dur || !e.start.Equal(t0) {
			t.Errorf("%s: %s %v from %v, want %s %v from %v", c.name, e.code, e.duration, e.start, c.code, c.dur, t0)
		}
	}
	// Without timestamps: no start, no duration, the state taken as
	// expired.
	ev := ctevent.Event{Kind: ctevent.Destroy, Proto: 6, State: tcpEstablished, Status: assured}
	if e := flowEnd(&ev, &to); e.code.String() != "cD" || e.duration != 0 || !e.start.IsZero() {
		t.Errorf("without timestamps: %+v", e)
	}
}
