package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govs-lb/govs/test/loopback"
)

// TestSyncSideBySideConntrackd runs the same failover twice in the sync
// lab's topology with the same traffic (200 long-lived TCP connections
// exchanging a counter every 100 ms, a new short connection every 20 ms),
// the master dying with kill -9 and its links cut:
//
//   - govs: two directors (nat, rr) with VRRP and the connection sync. It
//     asserts 0 broken.
//   - the baseline an operator without govs would run (this kernel has no
//     IPVS): keepalived for VRRP, an nft DNAT rule spreading new flows
//     round robin over the same real servers, and conntrackd in FT-FW mode
//     syncing conntrack over the same link, committed into the kernel
//     table by keepalived's notify_master (Debian's primary-backup.sh).
//     Its surviving count is reported, not asserted.
func TestSyncSideBySideConntrackd(t *testing.T) {
	for _, bin := range []string{"keepalived", "conntrackd"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("needs %s (.ci/run installs it)", bin)
			}
			t.Skipf("needs %s (apt-get install keepalived conntrackd)", bin)
		}
	}
	var govsOK, baseOK [2]int
	t.Run("govs", func(t *testing.T) {
		l := newSyncLab(t, "nat", false)
		d1, d2 := l.dirs[0], l.dirs[1]
		l.start(d1, 150)
		l.waitMaster(d1, 8*time.Second)
		l.start(d2, 100)
		loopback.WaitFor(t, "d2's resync from d1", func() bool { return d2.syncState(t).Resync.Result == "complete" })
		govsOK = l.sideBySide(func(conns []*longConn) { l.waitSynced(d2, conns, nil, 10*time.Second) },
			func() { l.crash(d1) }, d2,
			func() { l.reboot(d1); l.start(d1, 150) }, d1)
		if govsOK != [2]int{200, 200} {
			t.Errorf("govs: %d of 200 connections survived the failover, %d the failback", govsOK[0], govsOK[1])
		}
	})
	t.Run("keepalived+conntrackd", func(t *testing.T) {
		l := newSyncLab(t, "nat", false)
		d1, d2 := l.dirs[0], l.dirs[1]
		b1 := l.startBaseline(d1, 150)
		l.waitMaster(d1, 10*time.Second)
		b2 := l.startBaseline(d2, 100)
		time.Sleep(2 * time.Second) // d2's conntrackd asks d1 for its table (-n) as it enters BACKUP
		baseOK = l.sideBySide(func([]*longConn) { b2.waitExternal(t, 200, 10*time.Second) },
			func() {
				l.client.IP("link", "set", d1.ports[0], "down")
				l.servers.IP("link", "set", d1.ports[1], "down")
				b1.kill()
			}, d2,
			func() {
				// A rebooted machine: no VIPs, an empty conntrack table;
				// keepalived (MASTER, priority 150) preempts as it starts.
				l.reboot(d1)
				l.startBaseline(d1, 150)
			}, d1)
	})
	t.Logf("side by side, kill -9 of the master then its restart: established connections (of 200) alive after the failover / after the failback: govs %d / %d, keepalived+conntrackd %d / %d",
		govsOK[0], govsOK[1], baseOK[0], baseOK[1])
}

// sideBySide opens the traffic through the master, waits for synced (the
// backup has the flows), crashes the master and waits for backup to take
// over; then restarts the master and waits for it to take over again
// (failback). It returns how many of the 200 long-lived connections were
// alive and exchanging after each.
func (l *syncLab) sideBySide(synced func([]*longConn), crash func(), backup *syncDirector, restart func(), master *syncDirector) [2]int {
	t := l.t
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	const n = 200
	conns := l.openLong(n, 100*time.Millisecond, stop, &wg)
	l.shortConns(20*time.Millisecond, stop, &wg)
	l.waitLong(conns, time.Now(), 10*time.Second, "before failover")
	synced(conns)
	crashed := time.Now()
	crash()
	l.waitMaster(backup, 10*time.Second)
	t.Logf("%s held the VIP %v after the crash", backup.name, time.Since(crashed).Round(time.Millisecond))
	var out [2]int
	out[0] = l.alive(conns, "failover")
	restart()
	l.waitMaster(master, 20*time.Second)
	loopback.WaitFor(t, backup.name+" to give the VIP up", func() bool { return !backup.hasVIP() })
	out[1] = l.alive(conns, "failback")
	return out
}

// alive waits until every connection exchanged again or broke (at most
// 30 s: well past TCP's retransmissions of a stalled exchange) and returns
// how many are alive.
func (l *syncLab) alive(conns []*longConn, what string) int {
	t := l.t
	// Every connection either exchanges again or breaks; 30 s is well
	// past TCP's retransmissions of a stalled exchange.
	deadline := time.Now().Add(30 * time.Second)
	since := time.Now()
	for time.Now().Before(deadline) {
		pending := 0
		for _, c := range conns {
			if c.err.Load() == nil && time.Unix(0, c.lastOK.Load()).Before(since) {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok, broken := 0, 0
	var first error
	for _, c := range conns {
		switch {
		case c.err.Load() != nil:
			broken++
			if first == nil {
				first = *c.err.Load()
			}
		case !time.Unix(0, c.lastOK.Load()).Before(since):
			ok++
		}
	}
	t.Logf("after the %s: %d of %d connections alive, %d broken (first: %v), %d stalled", what, ok, len(conns), broken, first, len(conns)-ok-broken)
	return ok
}

// baseline is one director's keepalived and conntrackd.
type baseline struct {
	d    *syncDirector
	conf string // conntrackd's
	cmds []*exec.Cmd
}

// startBaseline runs keepalived and conntrackd in d, with the DNAT rule.
func (l *syncLab) startBaseline(d *syncDirector, prio int) *baseline {
	t := l.t
	t.Helper()
	dir := filepath.Join(l.dir, d.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := write("lb.nft", `table ip lb {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr `+syncVIP+` tcp dport 80 dnat to numgen inc mod 3 map { 0 : 10.92.0.21, 1 : 10.92.0.22, 2 : 10.92.0.23 } : 8080
	}
}
`, 0o644)
	if out, err := d.ns.Exec("nft", "-f", rules); err != nil {
		t.Fatalf("nft in %s: %v %s", d.name, err, out)
	}
	own := map[string]string{"d1": "10.92.0.11", "d2": "10.92.0.12"}[d.name]
	b := &baseline{d: d}
	// Debian's example FT-FW configuration (conntrackd/examples/sync/ftfw),
	// on the sync link; the directors' own addresses ignored.
	b.conf = write("conntrackd.conf", fmt.Sprintf(`Sync {
	Mode FTFW {
	}
	Multicast {
		IPv4_address 225.0.0.50
		Group 3780
		IPv4_interface %s
		Interface eth1
		SndSocketBuffer 1249280
		RcvSocketBuffer 1249280
		Checksum on
	}
}
General {
	HashSize 32768
	HashLimit 131072
	LogFile %s
	Syslog off
	LockFile %s
	UNIX {
		Path %s
	}
	NetlinkBufferSize 2097152
	NetlinkBufferSizeMaxGrowth 8388608
	Filter From Userspace {
		Protocol Accept {
			TCP
			UDP
		}
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address 10.91.0.11
			IPv4_address 10.91.0.12
			IPv4_address 10.92.0.11
			IPv4_address 10.92.0.12
		}
	}
}
`, own, filepath.Join(dir, "conntrackd.log"), filepath.Join(dir, "conntrackd.lock"), filepath.Join(dir, "conntrackd.ctl")), 0o644)
	// Debian's primary-backup.sh, as keepalived's notify script.
	ctd := "conntrackd -C " + b.conf
	notify := write("notify.sh", fmt.Sprintf(`#!/bin/sh
case "$1" in
primary) %[1]s -c; %[1]s -f; %[1]s -R; %[1]s -B ;;
backup) %[1]s -t; %[1]s -n ;;
fault) %[1]s -t ;;
esac
`, ctd), 0o755)
	state := "BACKUP"
	if prio > 100 {
		state = "MASTER"
	}
	kconf := write("keepalived.conf", fmt.Sprintf(`global_defs {
	router_id %s
	script_user root
	vrrp_version 3
}
vrrp_instance VI_1 {
	state %s
	interface eth0
	virtual_router_id 61
	priority %d
	advert_int 0.2
	virtual_ipaddress {
		%s/24 dev eth0
		10.92.0.1/24 dev eth1
	}
	notify_master "%s primary"
	notify_backup "%s backup"
	notify_fault "%s fault"
}
`, d.name, state, prio, syncVIP, notify, notify, notify), 0o644)
	run := func(name string, args ...string) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", d.ns.Name, name}, args...)...)
		log, _ := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%d.out", name, len(b.cmds))))
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s in %s: %v", name, d.name, err)
		}
		b.cmds = append(b.cmds, cmd)
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			log.Close()
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("%s in %s:\n%s", name, d.name, out)
			}
		})
	}
	// A rebooted machine's /var/lock and /run are empty: a killed
	// conntrackd's lock file and socket do not survive it.
	for _, f := range []string{"conntrackd.lock", "conntrackd.ctl", "k.pid", "v.pid", "c.pid"} {
		os.Remove(filepath.Join(dir, f))
	}
	run("conntrackd", "-C", b.conf)
	loopback.WaitFor(t, "conntrackd in "+d.name, func() bool {
		_, err := d.ns.Exec("conntrackd", "-C", b.conf, "-s")
		return err == nil
	})
	run("keepalived", "-n", "-l", "-D", "-f", kconf, "-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"),
		"-c", filepath.Join(dir, "c.pid"))
	return b
}

// kill is kill -9 of the director's keepalived and conntrackd (their
// process groups: keepalived's VRRP child too).
func (b *baseline) kill() {
	for _, cmd := range b.cmds {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait() // reaped: a zombie would pass for a running keepalived
	}
}

// waitExternal waits until conntrackd's external cache (the flows it took
// from its peer) holds n flows to port 80.
func (b *baseline) waitExternal(t *testing.T, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	have := 0
	for time.Now().Before(deadline) {
		out, _ := b.d.ns.Exec("conntrackd", "-C", b.conf, "-e")
		have = strings.Count(out, "dport=80 ")
		if have >= n {
			t.Logf("%s's conntrackd holds %d flows from its peer", b.d.name, have)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s's conntrackd holds %d flows of %d from its peer after %v (going on)", b.d.name, have, n, within)
}
