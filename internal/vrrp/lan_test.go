package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// lan simulates routers on one link: adverts go through Append and Decode
// and reach every other live router at the instant they are sent.
type lan struct {
	t     *testing.T
	nodes []*node
	now   time.Time
	log   []string // state changes: "+time name STATE"
}

type node struct {
	name  string
	m     *Machine
	addr  netip.Addr
	alive bool
	buf   []byte
	pkt   Packet
}

func (l *lan) add(name string, c Config) *node {
	n := &node{name: name, m: newM(l.t, c), addr: c.PrimaryIP, alive: true}
	l.nodes = append(l.nodes, n)
	return n
}

// drain performs n's actions, delivering its adverts.
func (l *lan) drain(n *node) {
	for _, a := range n.m.Ready() {
		switch a.Kind {
		case ActNotify:
			l.log = append(l.log, fmt.Sprintf("+%v %s %v", l.now.Sub(t0), n.name, a.State))
		case ActSendAdvert:
			p := n.m.Advert(a.Priority)
			var err error
			n.buf, err = p.Append(n.buf[:0], n.addr, MulticastIPv4)
			if err != nil {
				l.t.Fatal(err)
			}
			for _, o := range l.nodes {
				if o == n || !o.alive {
					continue
				}
				if err := Decode(n.buf, IPInfo{Src: n.addr, Dst: MulticastIPv4, HopLimit: TTL}, &o.pkt); err != nil {
					l.t.Fatalf("%s -> %s: %v", n.name, o.name, err)
				}
				if err := o.m.Step(l.now, &o.pkt, n.addr); err != nil {
					l.t.Fatalf("%s -> %s: %v", n.name, o.name, err)
				}
				l.drain(o)
			}
		}
	}
}

// run advances time to until, ticking live routers at their deadlines.
func (l *lan) run(until time.Time) {
	for {
		var next *node
		var when time.Time
		for _, n := range l.nodes {
			if d, ok := n.m.NextDeadline(); ok && n.alive && (next == nil || d.Before(when)) {
				next, when = n, d
			}
		}
		if next == nil || when.After(until) {
			l.now = until
			return
		}
		l.now = when
		next.m.Tick(when)
		l.drain(next)
	}
}

func (l *lan) masters() []string {
	var s []string
	for _, n := range l.nodes {
		if n.alive && n.m.State() == StateMaster {
			s = append(s, n.name)
		}
	}
	return s
}

func TestLANFailover(t *testing.T) {
	l := &lan{t: t, now: t0}
	c := func(addr string, prio uint8) Config {
		cf := cfg4(addr, prio)
		cf.Version = V3
		return cf
	}
	a := l.add("A", c("10.0.0.1", 150))
	b := l.add("B", c("10.0.0.2", 100))
	for _, n := range l.nodes {
		n.m.Start(t0)
		l.drain(n)
	}
	l.run(at(10 * time.Second))
	if got := l.masters(); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("masters %v", got)
	}
	// A crashes silently at 10 s; its last advert left at 3.4140625 + 6 s.
	a.alive = false
	l.run(at(20 * time.Second))
	// A restarts and preempts B one Master_Down_Interval later.
	a.alive = true
	a.m.Shutdown(l.now)
	a.m.Ready()
	a.m.Start(l.now)
	l.drain(a)
	l.run(at(30 * time.Second))
	// A shuts down cleanly: B takes over after its Skew_Time only.
	a.m.Shutdown(l.now)
	l.drain(a)
	a.alive = false
	l.run(at(40 * time.Second))

	want := []string{
		"+0s A BACKUP", "+0s B BACKUP",
		"+3.4140625s A MASTER",  // 3 s + 106/256 s
		"+13.0234375s B MASTER", // 9.4140625 s + 3 s + 156/256 s
		"+20s A BACKUP",
		// A's first advert reaches B before A's own notify is drained.
		"+23.4140625s B BACKUP", "+23.4140625s A MASTER",
		"+30s A INIT", "+30.609375s B MASTER", // 156/256 s after priority 0
	}
	if !slices.Equal(l.log, want) {
		t.Fatalf("transitions:\n got %q\nwant %q", l.log, want)
	}
	if s := b.m.Stats(); s.PriorityZeroReceived != 1 || s.SplitBrain != 0 {
		t.Fatalf("B stats %+v", s)
	}
}
