package connsync

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// drPollDaemon is a master Daemon without sockets for the DR polls, a DR
// flow of a client to 198.51.100.1:80, and the number of entries its node
// sends at now.
func drPollDaemon(t *testing.T) (*Daemon, func(client, rs string, timeout uint32) Entry, func(now time.Time) int) {
	node, err := NewNode(Config{SyncID: 1, Node: 1, Epoch: 1, Key: testKey, MaxMessage: 1400})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{opts: Options{Refresh: 10 * time.Second}, log: slog.New(slog.DiscardHandler), node: node, drEvery: drPollMin,
		told: map[Key]time.Time{}, ext: map[Key]extEntry{}, drKnown: map[Key]netip.AddrPort{}, drExt: map[Key]drExtEntry{}}
	d.master.Store(true)
	ap := netip.MustParseAddrPort
	flow := func(client, rs string, timeout uint32) Entry {
		c := ap(client)
		return Entry{Kind: KindDR, Proto: 6, Orig: Tuple{c, ap("198.51.100.1:80")}, Reply: Tuple{ap(rs), c}, Timeout: timeout}
	}
	codec, _ := NewCodec(testKey)
	sent := func(now time.Time) int {
		node.Flush(now)
		n := 0
		for _, a := range node.Ready() {
			if a.Kind == ActSend {
				m, err := codec.Decode(a.Data, 1, MaxMessage)
				if err != nil {
					t.Fatal(err)
				}
				n += len(m.Entries)
			}
		}
		return n
	}
	return d, flow, sent
}

// pollDR sends a DR flow once, again when its real server changes or its
// peers' copy nears its end, never a peer's flow back, and a conntrack
// refresh in between does not make it forget what it sent.
func TestPollDR(t *testing.T) {
	d, flow, sentAt := drPollDaemon(t)
	now := time.Unix(1e9, 0)
	sent := func() int { return sentAt(now) }
	a, b := flow("192.0.2.1:1000", "10.0.0.21:80", 900), flow("192.0.2.2:1000", "10.0.0.22:80", 900)
	d.pollDRWith(now, []Entry{a, b}, 0, false)
	if n := sent(); n != 2 {
		t.Fatalf("new flows: %d sent, want 2", n)
	}
	now = now.Add(time.Second)
	d.refreshWith(now, nil, false) // a conntrack refresh: no conntrack flows
	d.pollDRWith(now, []Entry{a, b}, 0, false)
	if n := sent(); n != 0 {
		t.Fatalf("known flows after a refresh: %d sent, want 0", n)
	}
	b2 := flow("192.0.2.2:1000", "10.0.0.23:80", 900)
	d.pollDRWith(now, []Entry{a, b2}, 0, false)
	if n := sent(); n != 1 {
		t.Fatalf("a flow whose real server changed: %d sent, want 1", n)
	}
	// A peer's flow, idle here: not sent back; once traffic here keeps it
	// alive beyond the peer's copy, it is ours.
	p := flow("192.0.2.3:1000", "10.0.0.21:80", 100)
	d.drExt[p.Key()] = drExtEntry{rs: p.Reply.Src, expires: now.Add(100 * time.Second)}
	d.pollDRWith(now, []Entry{a, b2, p}, 0, false)
	if n := sent(); n != 0 {
		t.Fatalf("a peer's idle flow: %d sent, want 0", n)
	}
	// Near the end of the peers' copies of a and b2 (900 s), kept alive
	// here: sent again.
	now = now.Add(885 * time.Second)
	p.Timeout = 900
	d.pollDRWith(now, []Entry{a, b2, p}, 0, false)
	if n := sent(); n != 3 {
		t.Fatalf("refreshes: %d sent, want 3 (a, b2, and the peer's flow kept alive here)", n)
	}
	// Gone from the map: forgotten.
	d.pollDRWith(now, nil, 0, false)
	if len(d.drKnown) != 0 {
		t.Errorf("%d DR flows remembered after they ended", len(d.drKnown))
	}
}

// pollDRNew sends a flow read from the new flows at once, not again from
// the new flows or the whole map's next read, again when it got another
// real server; a flow installed from a peer that is new here (scheduled
// here afresh) is ours.
func TestPollDRNew(t *testing.T) {
	d, flow, sentAt := drPollDaemon(t)
	now := time.Unix(1e9, 0)
	sent := func() int { return sentAt(now) }
	a := flow("192.0.2.1:1000", "10.0.0.21:80", 900)
	d.pollDRNew(now, []Entry{a}, time.Millisecond)
	if n := sent(); n != 1 {
		t.Fatalf("a new flow: %d sent, want 1", n)
	}
	if d.drEvery != drPollMin {
		t.Errorf("new flows read every %v after a 1 ms read, want %v", d.drEvery, drPollMin)
	}
	now = now.Add(50 * time.Millisecond)
	d.pollDRNew(now, []Entry{a}, time.Millisecond)
	d.pollDRWith(now, []Entry{a}, 2*time.Second, false)
	if n := sent(); n != 0 {
		t.Fatalf("the same flow read again: %d sent, want 0", n)
	}
	if d.drFullEvery != drFullMax || !d.drFullNext.Equal(now.Add(drFullMax)) {
		t.Errorf("after a 2 s read of the whole map: every %v, next %v; want %v", d.drFullEvery, d.drFullNext.Sub(now), drFullMax)
	}
	a2 := flow("192.0.2.1:1000", "10.0.0.22:80", 900)
	d.pollDRNew(now, []Entry{a2}, time.Second)
	if n := sent(); n != 1 {
		t.Fatalf("the flow scheduled again to another real server: %d sent, want 1", n)
	}
	if d.drEvery != drPollMax {
		t.Errorf("new flows read every %v after a 1 s read, want %v", d.drEvery, drPollMax)
	}
	p := flow("192.0.2.3:1000", "10.0.0.21:80", 100)
	d.drExt[p.Key()] = drExtEntry{rs: p.Reply.Src, expires: now.Add(100 * time.Second)}
	d.pollDRNew(now, []Entry{p}, time.Millisecond)
	if n := sent(); n != 1 {
		t.Fatalf("a peer's flow scheduled afresh here: %d sent, want 1", n)
	}
	if _, ok := d.drExt[p.Key()]; ok {
		t.Error("a peer's flow scheduled afresh here is still the peer's")
	}
}
