package connsync

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// world is a fake network of nodes driven by a fake clock.
type world struct {
	t     *testing.T
	now   time.Time
	nodes map[uint32]*Node
	order []uint32
	queue []tpacket
	// drop decides whether a tpacket is lost; nil loses nothing.
	drop func(p tpacket) bool
	// hold, when set, queues packets without delivering them.
	hold      bool
	installed map[uint32]map[Key]Entry
	tables    map[uint32][]Entry
	done      map[uint32]Action
	sent      map[uint32]int // datagrams sent by node
}

type tpacket struct {
	from, to uint32
	data     []byte
}

func newWorld(t *testing.T, ids ...uint32) *world {
	w := &world{t: t, now: t0, nodes: map[uint32]*Node{}, installed: map[uint32]map[Key]Entry{},
		tables: map[uint32][]Entry{}, done: map[uint32]Action{}, sent: map[uint32]int{}}
	for _, id := range ids {
		w.add(id, Config{})
	}
	return w
}

func (w *world) add(id uint32, cfg Config) *Node {
	cfg.Node, cfg.Key, cfg.Epoch, cfg.SyncID = id, testKey, uint64(w.now.UnixMilli()), 7
	n, err := NewNode(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	if w.nodes[id] == nil {
		w.order = append(w.order, id)
	}
	w.nodes[id] = n
	w.installed[id] = map[Key]Entry{}
	return n
}

// collect performs every node's actions, queueing what they send.
func (w *world) collect() {
	for again := true; again; {
		again = false
		for _, id := range w.order {
			n := w.nodes[id]
			for _, a := range n.Ready() {
				again = true
				switch a.Kind {
				case ActSend:
					w.sent[id]++
					for _, to := range w.order {
						if to != id && (a.To == 0 || a.To == to) {
							w.queue = append(w.queue, tpacket{id, to, a.Data})
						}
					}
				case ActInstall:
					for _, e := range a.Entries {
						if e.Delete {
							delete(w.installed[id], e.Key())
						} else {
							w.installed[id][e.Key()] = e
						}
					}
				case ActDump:
					n.Resync(w.now, a.Peer, a.ReqID, w.tables[id])
				case ActResyncDone:
					w.done[id] = a
				}
			}
		}
	}
}

// deliver hands the queued packets over (minus the dropped ones).
func (w *world) deliver() {
	for len(w.queue) > 0 && !w.hold {
		q := w.queue
		w.queue = nil
		for _, p := range q {
			if w.drop != nil && w.drop(p) {
				continue
			}
			w.nodes[p.to].Receive(w.now, p.data)
		}
		w.collect()
	}
}

// run advances the clock by d in steps of 5 ms, ticking and delivering.
func (w *world) run(d time.Duration) {
	end := w.now.Add(d)
	for !w.now.After(end) {
		w.collect()
		w.deliver()
		for _, id := range w.order {
			w.nodes[id].Tick(w.now)
		}
		w.collect()
		w.deliver()
		w.now = w.now.Add(5 * time.Millisecond)
	}
}

func flow(i int) Entry {
	c := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	vip := netip.MustParseAddrPort("192.0.2.1:80")
	rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i%3 + 1)}), 8080)
	return Entry{Proto: 6, State: 3, Orig: Tuple{netip.AddrPortFrom(c, uint16(10000+i)), vip},
		Reply: Tuple{rs, netip.AddrPortFrom(c, uint16(10000+i))}, Mark: uint32(i), Timeout: 432000}
}

func (w *world) addFlows(id uint32, from, to int) {
	for i := from; i < to; i++ {
		if err := w.nodes[id].Add(w.now, flow(i)); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) wantInstalled(id uint32, from, to int) {
	w.t.Helper()
	got := w.installed[id]
	for i := from; i < to; i++ {
		e := flow(i)
		if g, ok := got[e.Key()]; !ok || g != e {
			w.t.Fatalf("node %d: flow %d not installed as sent (have %d flows): got %+v", id, i, len(got), g)
		}
	}
}

func TestBatchedDelivery(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.addFlows(1, 0, 200)
	w.run(20 * time.Millisecond)
	w.wantInstalled(2, 0, 200)
	st := w.nodes[1].Status(w.now).Stats
	// 29 bytes an IPv4 NAT flow, 64 a message: 48 flows fit in 1472 bytes.
	if st.MsgsSent > 6 {
		t.Errorf("200 flows took %d messages", st.MsgsSent)
	}
	per := float64(st.BytesSent) / 200
	t.Logf("%d messages, %.1f bytes per flow", st.MsgsSent, per)
	if per > 32 {
		t.Errorf("%.1f bytes per flow, want at most 32", per)
	}
	// Deletes travel too.
	e := flow(5)
	e.Delete = true
	w.nodes[1].Add(w.now, e)
	w.run(20 * time.Millisecond)
	if _, ok := w.installed[2][e.Key()]; ok {
		t.Fatal("deleted flow still installed")
	}
}

func TestLossIsRepaired(t *testing.T) {
	w := newWorld(t, 1, 2)
	n := 0
	w.drop = func(p tpacket) bool {
		if p.from != 1 {
			return false
		}
		n++
		return n%3 == 0 // every third datagram from node 1, retransmissions included
	}
	for round := range 20 {
		w.addFlows(1, round*50, round*50+50)
		w.run(10 * time.Millisecond)
	}
	w.run(3 * time.Second)
	w.wantInstalled(2, 0, 1000)
	st := w.nodes[2].Status(w.now)
	if st.Stats.Lost != 0 || st.Stats.NacksSent == 0 {
		t.Fatalf("lost %d, nacks %d", st.Stats.Lost, st.Stats.NacksSent)
	}
	if w.nodes[1].Status(w.now).Stats.Retransmits == 0 {
		t.Fatal("no retransmissions")
	}
}

func TestTailLossFoundByAlive(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.addFlows(1, 0, 10)
	w.run(20 * time.Millisecond)
	w.drop = func(p tpacket) bool { return p.from == 1 && w.now.Before(t0.Add(100*time.Millisecond)) }
	w.addFlows(1, 10, 20) // lost, and nothing follows but ALIVE
	w.run(50 * time.Millisecond)
	if _, ok := w.installed[2][flow(15).Key()]; ok {
		t.Fatal("dropped message arrived")
	}
	// Tail probes (ALIVE at 20ms, 60ms, 180ms... after data) find it well
	// before AliveInterval.
	w.run(450 * time.Millisecond)
	w.wantInstalled(2, 0, 20)
}

func TestReorder(t *testing.T) {
	w := newWorld(t, 1, 2)
	for i := range 5 {
		w.addFlows(1, i*100, i*100+100)
		w.nodes[1].Flush(w.now)
	}
	w.collect()
	// Deliver backwards, at once: no NACK is needed.
	q := w.queue
	w.queue = nil
	for i := len(q) - 1; i >= 0; i-- {
		if err := w.nodes[2].Receive(w.now, q[i].data); err != nil {
			t.Fatal(err)
		}
	}
	w.collect()
	w.run(100 * time.Millisecond)
	w.wantInstalled(2, 0, 500)
	if st := w.nodes[2].Status(w.now).Stats; st.NacksSent != 0 {
		t.Fatalf("%d NACKs for a reorder", st.NacksSent)
	}
}

func TestReplayAndStaleRejected(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.addFlows(1, 0, 3)
	w.nodes[1].Flush(w.now)
	w.collect()
	data := w.queue[0].data
	w.run(1100 * time.Millisecond) // an ALIVE too
	b := w.nodes[2]
	check := func(what string, err error, want Reason) {
		t.Helper()
		var de *DropError
		if !errors.As(err, &de) || de.Reason != want {
			t.Fatalf("%s: got %v, want drop %v", what, err, want)
		}
	}
	check("replayed data", b.Receive(w.now, data), DropReplay)

	// A control message replayed.
	a := w.nodes[1]
	a.send(w.now, &Message{Type: TypeAlive, Seq: a.seq}, 0)
	ctl := a.Ready()[0].Data
	if err := b.Receive(w.now, ctl); err != nil {
		t.Fatal(err)
	}
	check("replayed alive", b.Receive(w.now, ctl), DropReplay)

	// Old timestamps: a message captured and replayed later.
	check("stale", b.Receive(w.now.Add(time.Minute), data), DropStale)
	// An older incarnation of node 1.
	old, _ := NewNode(Config{Node: 1, Key: testKey, SyncID: 7, Epoch: a.cfg.Epoch - 1})
	old.Add(w.now, flow(99))
	old.Flush(w.now)
	check("old epoch", b.Receive(w.now, old.Ready()[0].Data), DropStale)
	if _, ok := w.installed[2][flow(99).Key()]; ok {
		t.Fatal("stale entry installed")
	}
	if st := b.Status(w.now).Stats; st.Drops[DropReplay] != 2 || st.Drops[DropStale] != 2 {
		t.Fatalf("drops %v", st.Drops)
	}
}

func TestRestartedSenderAccepted(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.addFlows(1, 0, 50)
	w.run(20 * time.Millisecond)
	w.now = w.now.Add(time.Second)
	w.add(1, Config{}) // new epoch, seq from 1 again
	w.addFlows(1, 50, 60)
	w.run(20 * time.Millisecond)
	w.wantInstalled(2, 0, 60)
}

func TestForgeryRejected(t *testing.T) {
	w := newWorld(t, 1, 2)
	a, b := w.nodes[1], w.nodes[2]
	a.Add(w.now, flow(1))
	a.Flush(w.now)
	good := a.Ready()[0].Data
	check := func(what string, data []byte, want Reason) {
		t.Helper()
		var de *DropError
		if err := b.Receive(w.now, data); !errors.As(err, &de) || de.Reason != want {
			t.Fatalf("%s: got %v, want drop %v", what, err, want)
		}
	}
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x40
		want := DropBadMAC
		switch {
		case i < 3:
			want = DropMalformed
		case i == 4:
			want = DropSyncID
		}
		check(fmt.Sprintf("byte %d flipped", i), bad, want)
	}
	other, _ := NewNode(Config{Node: 3, Key: []byte("another key of 16 bytes"), SyncID: 7, Epoch: 1})
	other.Add(w.now, flow(2))
	other.Flush(w.now)
	check("other key", other.Ready()[0].Data, DropBadMAC)
	check("garbage", []byte("hello"), DropMalformed)
	check("too big", make([]byte, 2000), DropTooBig)
	if len(w.installed[2]) != 0 {
		t.Fatal("something was installed")
	}
	if err := b.Receive(w.now, good); err != nil {
		t.Fatalf("the genuine message after the forgeries: %v", err)
	}
}

func TestStartupResync(t *testing.T) {
	for _, loss := range []int{0, 5} {
		t.Run(fmt.Sprintf("loss 1 in %d", loss), func(t *testing.T) {
			w := newWorld(t, 1, 2)
			for i := range 3000 {
				w.tables[1] = append(w.tables[1], flow(i))
			}
			n := 0
			if loss > 0 {
				w.drop = func(tpacket) bool { n++; return n%loss == 0 }
			}
			w.nodes[2].StartResync(w.now)
			w.run(50 * time.Millisecond)
			if _, ok := w.done[2]; ok && loss > 0 {
				// Possible only if nothing of the resync was lost.
				t.Log("done before repairs")
			}
			w.run(5 * time.Second)
			d, ok := w.done[2]
			if !ok || d.TimedOut || d.Peer != 1 {
				t.Fatalf("resync: %+v, done %v", d, ok)
			}
			w.wantInstalled(2, 0, 3000)
			st := w.nodes[2].Status(w.now)
			if st.ResyncResult != "complete" || st.Resyncing {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestStartupResyncFirstMessagesLost(t *testing.T) {
	// The first messages of the resync are lost: the receiver's first
	// contact with the sender comes after them, and DONE reveals them.
	w := newWorld(t, 1, 2)
	for i := range 500 {
		w.tables[1] = append(w.tables[1], flow(i))
	}
	n := 0
	w.drop = func(p tpacket) bool { n++; return p.from == 1 && n < 4 }
	w.nodes[2].StartResync(w.now)
	w.run(3 * time.Second)
	if d, ok := w.done[2]; !ok || d.TimedOut {
		t.Fatalf("resync not complete: %+v", d)
	}
	w.wantInstalled(2, 0, 500)
}

func TestStartupResyncTimeout(t *testing.T) {
	w := newWorld(t, 2)
	w.nodes[2].StartResync(w.now)
	w.run(DefaultResyncTimeout - 100*time.Millisecond)
	if _, ok := w.done[2]; ok {
		t.Fatal("resync ended early")
	}
	w.run(200 * time.Millisecond)
	if d := w.done[2]; !d.TimedOut {
		t.Fatalf("no timeout: %+v", d)
	}
	if st := w.nodes[2].Status(w.now); st.ResyncResult != "timeout" {
		t.Fatalf("result %q", st.ResyncResult)
	}
}

func TestHistoryMissResyncs(t *testing.T) {
	w := newWorld(t)
	w.add(1, Config{History: 4})
	w.add(2, Config{})
	w.tables[1] = nil
	for i := range 400 {
		w.tables[1] = append(w.tables[1], flow(i))
	}
	w.addFlows(1, 0, 10)
	w.run(20 * time.Millisecond)
	// Node 2 misses 8 messages, more than node 1 keeps.
	w.drop = func(p tpacket) bool { return p.from == 1 && w.now.Before(t0.Add(100*time.Millisecond)) }
	for i := range 8 {
		w.addFlows(1, 10+i*40, 50+i*40)
		w.nodes[1].Flush(w.now)
	}
	w.run(100 * time.Millisecond)
	w.drop = nil
	w.run(2 * time.Second)
	w.wantInstalled(2, 0, 330)
	if st := w.nodes[1].Status(w.now).Stats; st.ResyncsServed == 0 {
		t.Fatal("no resync served")
	}
}

func TestGiveUpAsksForResync(t *testing.T) {
	w := newWorld(t, 1, 2)
	for i := range 100 {
		w.tables[1] = append(w.tables[1], flow(i))
	}
	w.run(time.Second) // first contact (ALIVE)
	w.addFlows(1, 0, 50)
	w.nodes[1].Flush(w.now)
	w.addFlows(1, 50, 100)
	w.nodes[1].Flush(w.now)
	// The first message is lost, and so is every NACK for a while.
	first := true
	w.drop = func(p tpacket) bool {
		if p.from == 1 && first {
			first = false
			return true
		}
		return p.from == 2 && w.now.Before(t0.Add(DefaultGiveUp+2*time.Second))
	}
	w.run(DefaultGiveUp + 2*time.Second)
	w.wantInstalled(2, 0, 100)
	st := w.nodes[2].Status(w.now).Stats
	if st.Lost == 0 || st.ResyncsRequested == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBothDirections(t *testing.T) {
	w := newWorld(t, 1, 2, 3)
	w.addFlows(1, 0, 100)
	w.addFlows(2, 100, 200)
	w.run(50 * time.Millisecond)
	w.wantInstalled(3, 0, 200)
	w.wantInstalled(2, 0, 100)
	w.wantInstalled(1, 100, 200)
}

func TestEntryIPv6AndFullNAT(t *testing.T) {
	c := netip.MustParseAddrPort("[2001:db8::1]:40000")
	vip := netip.MustParseAddrPort("[2001:db8::100]:443")
	e := Entry{Proto: 17, Orig: Tuple{c, vip},
		Reply: Tuple{netip.MustParseAddrPort("[fd00::5]:8443"), netip.MustParseAddrPort("[fd00::1]:61000")}, Timeout: 30}
	codec, _ := NewCodec(testKey)
	b, err := codec.Encode(&Message{Type: TypeData, Seq: 1, Entries: []Entry{e}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := codec.Decode(b, 0, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if m.Entries[0] != e || EntrySize(&e) != len(b)-Overhead {
		t.Fatalf("got %+v (size %d vs %d)", m.Entries[0], EntrySize(&e), len(b)-Overhead)
	}
	mixed := e
	mixed.Reply.Src = netip.MustParseAddrPort("10.0.0.1:80")
	if _, err := codec.Encode(&Message{Type: TypeData, Entries: []Entry{mixed}}); err == nil {
		t.Fatal("mixed families encoded")
	}
}

func TestUpdatesCoalesce(t *testing.T) {
	w := newWorld(t, 1, 2)
	e := flow(1)
	for _, st := range []uint8{1, 2, 3} { // SYN_SENT, SYN_RECV, ESTABLISHED within FlushDelay
		e.State = st
		w.nodes[1].Add(w.now, e)
	}
	w.run(20 * time.Millisecond)
	if st := w.nodes[1].Status(w.now).Stats; st.EntriesSent != 1 {
		t.Fatalf("%d entries sent for one flow's handshake", st.EntriesSent)
	}
	if g := w.installed[2][e.Key()]; g.State != 3 {
		t.Fatalf("installed state %d", g.State)
	}
}

// TestRetransmittedOldStateDoesNotWin: a flow's SYN_RECV is lost and its
// ESTABLISHED arrives first; the retransmitted SYN_RECV must not set the
// peer's copy back (entries apply in sequence order).
func TestRetransmittedOldStateDoesNotWin(t *testing.T) {
	w := newWorld(t, 1, 2)
	w.run(time.Second) // first contact
	e := flow(7)
	e.State = 2
	first := true
	w.drop = func(p tpacket) bool {
		if p.from == 1 && first {
			first = false
			return true
		}
		return false
	}
	w.nodes[1].Add(w.now, e)
	w.nodes[1].Flush(w.now)
	e.State = 3
	w.nodes[1].Add(w.now, e)
	w.nodes[1].Flush(w.now)
	w.run(time.Second)
	if g := w.installed[2][e.Key()]; g.State != 3 {
		t.Fatalf("installed state %d, want 3 (ESTABLISHED)", g.State)
	}
	if st := w.nodes[1].Status(w.now).Stats; st.Retransmits == 0 {
		t.Fatal("nothing was retransmitted")
	}
}

// TestResyncAnswerLostIsServedAgain: the whole answer to a start-up resync
// (an empty table: one DONE) is lost; the repeated request is served again.
func TestResyncAnswerLostIsServedAgain(t *testing.T) {
	w := newWorld(t, 1, 2)
	n := 0
	w.drop = func(p tpacket) bool {
		if p.from == 1 {
			n++
			return n <= 3 // the DONE and the tail probes after it
		}
		return false
	}
	w.nodes[2].StartResync(w.now)
	w.run(3 * time.Second)
	if d, ok := w.done[2]; !ok || d.TimedOut {
		t.Fatalf("resync: %+v %v", d, ok)
	}
}
