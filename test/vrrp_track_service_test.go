package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A director whose virtual service loses its quorum (its only real server
// fails its health check) gives up its VIPs: track_services lowers its
// priority below the keepalived backup's, which takes over; when the real
// server recovers, govs preempts back.
func TestVRRPTrackService(t *testing.T) {
	requireKeepalived(t)
	l := newVRRPLab(t, false)
	r1, r2 := l.routers[0], l.routers[1]
	flag := filepath.Join(l.dir, "rs-healthy")
	writeFile(t, flag, "")
	// script_user root: the check tests a file in a directory only root may enter.
	top := fmt.Sprintf(`script_user: root
virtual_servers:
  - name: web
    address: 127.0.0.1:18181
    health_check: {type: script, command: "/usr/bin/test -e %s", interval: 100ms, rise: 1, fall: 1}
    real_servers: [{address: 127.0.0.1:18182}]
`, flag)
	extra := "    track_services: [{name: web, weight: -60}]\n"
	r1.startGovs(vrrpOpts{version: 3, interval: 100 * time.Millisecond, priority: 150, master: true, top: top, extra: extra})
	l.waitMaster(r1, 3*time.Second)
	r2.startKeepalived(vrrpOpts{version: 3, interval: 100 * time.Millisecond, priority: 100})
	p := l.probe()
	p.firstFrom(t, r1.name, time.Now(), 2*time.Second)

	// The real server fails: quorum lost, 150-60 = 90 < 100, keepalived preempts.
	os.Remove(flag)
	p.firstFrom(t, r2.name, time.Now(), 3*time.Second)
	l.waitMaster(r2, time.Second)

	// It recovers: govs is back at 150 and preempts.
	writeFile(t, flag, "")
	p.firstFrom(t, r1.name, time.Now(), 3*time.Second)
	l.waitMaster(r1, time.Second)
}
