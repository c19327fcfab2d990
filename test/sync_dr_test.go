package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/netns"
)

// The sync lab for forwarding dr: the real servers are namespaces of their
// own on the servers' segment (br1), each holding the VIP on lo (`govs
// realserver`) and listening on port 80; their replies go straight to the
// client, which has a leg on that segment too (10.92.0.2), as a router
// would:
//
//	client 10.91.0.2 (br0) -- d1, d2 (VRRP: 10.91.0.100) --dup--> (br1) rs 10.92.0.21-23
//	client 10.92.0.2 (br1) <------------------------------------- replies from the VIP

// drRealServers builds the DR lab's real servers.
func (l *syncLab) drRealServers() {
	t := l.t
	netns.Link(l.client, "cr", "10.92.0.2/24", l.servers, "sr", "")
	l.servers.IP("link", "set", "sr", "master", "br1")
	for i := 21; i <= 23; i++ {
		rs := netns.New(t, fmt.Sprintf("sdr%d", i))
		port := fmt.Sprintf("r%d", i)
		netns.Link(l.servers, port, "", rs, "eth0", fmt.Sprintf("10.92.0.%d/24", i))
		l.servers.IP("link", "set", port, "master", "br1")
		rs.IP("route", "add", "default", "via", "10.92.0.2")
		if out, err := rs.Exec(govsBin, "realserver", "--vip", syncVIP); err != nil {
			t.Fatalf("govs realserver in %s: %v: %s", rs.Name, err, out)
		}
		l.listener = append(l.listener, serveCounter(t, rs, "0.0.0.0:80", fmt.Sprintf("rs%d", i)))
	}
}

// drConfig is a director's configuration in the DR lab: one DR service,
// round robin (a scheduler whose pick on the backup would not agree with
// the master's).
func (l *syncLab) drConfig(d *syncDirector, prio int) string {
	state := "BACKUP"
	if prio > 100 {
		state = "MASTER"
	}
	syncSection := fmt.Sprintf("sync: {interface: eth1, key_file: %s, sync_id: 5, resync_timeout: 3s}\n", filepath.Join(l.dir, "sync.key"))
	if l.noSync {
		syncSection = ""
	}
	return fmt.Sprintf(`api: {socket: %s}
virtual_servers:
  - name: web
    address: %s:80
    protocol: tcp
    forwarding: dr
    scheduler: rr
    real_servers: [{address: 10.92.0.21:80}, {address: 10.92.0.22:80}, {address: 10.92.0.23:80}]
%s%svrrp_instances:
  - name: VI_1
    interface: eth0
    virtual_router_id: 61
    version: 3
    priority: %d
    advert_int: 200ms
    state: %s
    virtual_ipaddresses: [%s/24]
`, d.sock, syncVIP, l.services, syncSection, prio, state, syncVIP)
}

// waitDRSynced waits until d's DR flow map holds every connection with its
// real server.
func (l *syncLab) waitDRSynced(d *syncDirector, conns []*longConn, within time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		out, err := d.ns.Exec("nft", "list", "map", "ip", "govs", "flows")
		if err != nil {
			l.t.Fatalf("nft list map in %s: %v %s", d.name, err, out)
		}
		// Elements: "tcp . 10.91.0.2 . 41234 . 10.91.0.100 . 80 ... : 10.92.0.22"
		have := map[string]string{}
		for _, el := range strings.Split(out, ",") {
			f := strings.Fields(el)
			for i := 0; i+4 < len(f); i++ {
				if f[i] == "10.91.0.2" && f[i+1] == "." {
					if _, rs, ok := strings.Cut(el, ": "); ok {
						have[f[i+2]] = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(rs), "}"))
					}
					break
				}
			}
		}
		missing, wrong := 0, 0
		for _, c := range conns {
			rs, ok := have[c.port]
			switch {
			case !ok:
				missing++
			case !strings.HasPrefix(rs, "10.92.0."+strings.TrimPrefix(c.server, "rs")):
				wrong++
			}
		}
		if wrong > 0 {
			l.t.Fatalf("%s: %d flows installed with another real server:\n%s", d.name, wrong, out)
		}
		if missing == 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: %d of %d connections not in the DR flow map after %v: %+v", d.name, missing, len(conns), within, d.syncState(l.t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSyncFailoverDR: DR flows (flow -> real server) are synced, so a
// failover and a failback keep every established connection on its real
// server, though the backup's round robin, starting afresh, would send
// most of them elsewhere.
func TestSyncFailoverDR(t *testing.T) {
	l := newSyncLabTB(t, "dr", false, false)
	d1, d2 := l.startPair()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	const n = 200
	conns, by := l.openSpread(n, stop, &wg)
	short := l.shortConns(20*time.Millisecond, stop, &wg)
	l.waitLong(conns, time.Now(), 10*time.Second, "before failover")
	t.Logf("d2 had all %d DR flows with their real servers %v after the last connection was checked",
		n, l.waitDRSynced(d2, conns, 10*time.Second).Round(time.Millisecond))

	crashed := time.Now()
	l.crash(d1)
	l.waitMaster(d2, 5*time.Second)
	takeover := time.Since(crashed)
	l.waitShort(short, crashed, 10*time.Second, "new connections after failover")
	l.waitLong(conns, time.Now(), 30*time.Second, "after failover")
	t.Logf("failover: d2 held the VIP %v after the crash; %d DR connections by real server %v all survived",
		takeover.Round(time.Millisecond), n, by)

	// Failback: d1 reboots (empty flow map), resyncs from d2, preempts.
	l.reboot(d1)
	rebooted := time.Now()
	l.start(d1, 150)
	l.waitMaster(d1, 15*time.Second)
	if st := d1.syncState(t); st.Resync.Result != "complete" {
		t.Fatalf("d1 preempted with resync %q", st.Resync.Result)
	}
	l.waitDRSynced(d1, conns, time.Second) // it had them before it preempted
	l.waitShort(short, rebooted, 10*time.Second, "new connections after failback")
	l.waitLong(conns, time.Now(), 30*time.Second, "after failback")
	t.Logf("failback: %d DR connections all survived (%d exchanges each on average)", n, avgExchanges(conns))
}
