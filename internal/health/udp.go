package health

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"syscall"
	"time"
)

// The udp check is keepalived's UDP_CHECK: send payload (hex; default a
// single zero byte) to the real server. An ICMP port or host unreachable in
// return fails the check. With require_reply the server must answer within
// the timeout, and with expect_reply (hex, x for a nibble that may be
// anything) the answer must start with it; without, silence passes.

func init() {
	Register("udp", func(s Spec) (Checker, error) {
		p := s.Payload
		if len(p) == 0 {
			p = []byte{0}
		}
		return &udpChecker{addr: s.Target.String(), payload: p, require: s.RequireReply, expect: s.ExpectReply}, nil
	})
}

type udpChecker struct {
	addr    string
	payload []byte
	require bool
	expect  []byte // (value, mask) pairs
	dialer  net.Dialer
}

func (c *udpChecker) Check(ctx context.Context) Result {
	conn, err := c.dialer.DialContext(ctx, "udp", c.addr)
	if err != nil {
		return failErr(ctx, "udp", err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(c.payload); err != nil {
		return failErr(ctx, "udp send", err)
	}
	var buf [2048]byte
	n, err := conn.Read(buf[:])
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail("udp: port unreachable")
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return failErr(ctx, "udp", err)
	case err != nil && !c.require:
		return pass("udp: no reply, no error")
	case err != nil:
		return failErr(ctx, "udp: no reply", err)
	}
	if !matchMasked(buf[:n], c.expect) {
		return fail("udp: reply %s does not match", hex.EncodeToString(buf[:min(n, 32)]))
	}
	return pass("udp: %d byte reply", n)
}

// matchMasked reports whether got starts with pattern, (value, mask) pairs,
// up to the shorter of the two as keepalived compares.
func matchMasked(got, pattern []byte) bool {
	for i := 0; i+1 < len(pattern) && i/2 < len(got); i += 2 {
		if got[i/2]&pattern[i+1] != pattern[i]&pattern[i+1] {
			return false
		}
	}
	return true
}
