package vrrpd

import (
	"context"
	"time"
)

// servicePoll is how often a tracked virtual service's state is read: the
// director's quorum changes at health-check pace, so this is quick enough
// without a subscription.
const servicePoll = 100 * time.Millisecond

// serviceUp reads a tracked service's state; without a source, or for a
// service the director does not know (yet), it counts as up, so a
// misconfiguration never takes the VIPs away.
func serviceUp(s ServiceStates, name string) bool {
	if s == nil {
		return true
	}
	up, known := s.ServiceUp(name)
	return up || !known
}

// watchService reports a tracked service's state each time it differs from
// last (what the caller already knows), until ctx ends.
func watchService(ctx context.Context, s ServiceStates, name string, last bool, report func(up bool)) {
	t := time.NewTicker(servicePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if up := serviceUp(s, name); up != last {
			last = up
			report(up)
		}
	}
}
