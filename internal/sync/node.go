package connsync

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// Config tunes a Node. Zero durations and sizes get the defaults below.
type Config struct {
	SyncID uint8
	Node   uint32 // this node's id, not 0 (random per process is fine)
	Epoch  uint64 // this incarnation's start, Unix ms: a restart must not reuse one
	Key    []byte // HMAC key, at least 16 bytes

	// MaxMessage is the largest datagram sent or accepted: the path MTU
	// less the IP and UDP headers.
	MaxMessage int
	// FlushDelay is how long entries wait to be batched.
	FlushDelay time.Duration
	// AliveInterval: a node that sent nothing for this long sends an ALIVE
	// with its last sequence number, so receivers notice a lost tail.
	AliveInterval time.Duration
	// NackDelay lets reordered messages arrive before a gap is NACKed;
	// NackInterval spaces repeated NACKs of one gap.
	NackDelay, NackInterval time.Duration
	// GiveUp: a gap not filled by then is abandoned and the sender asked for
	// a resync of its table.
	GiveUp time.Duration
	// MaxSkew bounds |now - timestamp| of accepted messages.
	MaxSkew time.Duration
	// History is the number of sent messages kept for retransmission.
	History int
	// Window is how far ahead of the oldest missing seq messages are taken.
	Window int
	// ResyncRetry spaces the start-up resync requests while nobody answers;
	// ResyncTimeout ends the wait for a bulk resync.
	ResyncRetry, ResyncTimeout time.Duration
	// MaxPeers bounds the senders tracked.
	MaxPeers int
}

// Defaults.
const (
	DefaultMaxMessage    = 1472 // 1500 - IPv4 20 - UDP 8
	DefaultFlushDelay    = 5 * time.Millisecond
	DefaultAliveInterval = time.Second
	DefaultNackDelay     = 20 * time.Millisecond
	DefaultNackInterval  = 200 * time.Millisecond
	DefaultGiveUp        = 3 * time.Second
	DefaultMaxSkew       = 30 * time.Second
	DefaultHistory       = 4096
	DefaultWindow        = 8192
	DefaultResyncRetry   = 500 * time.Millisecond
	DefaultResyncTimeout = 10 * time.Second
	DefaultMaxPeers      = 64
	maxRanges            = 128
	tailProbe            = 20 * time.Millisecond
)

// ActionKind says what an Action asks of the caller.
type ActionKind uint8

// The actions.
const (
	// ActSend: send Data to node To (0: every peer, the group).
	ActSend ActionKind = iota
	// ActInstall: apply Entries, received from Peer, to the local tables.
	ActInstall
	// ActDump: Peer asked for the whole table: call Node.Resync with every
	// entry, Peer and ReqID.
	ActDump
	// ActResyncDone: the start-up resync ended: complete from Peer, or
	// TimedOut. VRRP may take MASTER from now on.
	ActResyncDone
)

// Action is one thing for the caller to do, in order.
type Action struct {
	Kind     ActionKind
	To       uint32
	Data     []byte
	Entries  []Entry
	Peer     uint32
	ReqID    uint32
	TimedOut bool
	Sent     time.Time // ActInstall: when Peer sent the entries
}

// Stats are a node's counters.
type Stats struct {
	MsgsSent, MsgsReceived   uint64
	BytesSent, BytesReceived uint64
	EntriesSent              uint64
	EntriesReceived          uint64
	Retransmits              uint64
	NacksSent, NacksReceived uint64
	Lost                     uint64 // seqs given up on
	ResyncsRequested         uint64 // resync requests sent (start-up and after loss)
	ResyncsServed            uint64 // bulk resyncs sent
	Drops                    [NumReasons]uint64
}

// PeerStatus is what a node knows of one sender.
type PeerStatus struct {
	ID        uint32
	Epoch     uint64
	LastHeard time.Time
	Lag       time.Duration // now - timestamp of its last DATA, clock skew included
	Next      uint32        // lowest seq not received yet
	Highest   uint32
	Missing   int // seqs missing below Highest
	Received  uint64
	Entries   uint64
	Lost      uint64
}

// Status is a node's state.
type Status struct {
	Node          uint32
	Epoch         uint64
	Seq           uint32 // last DATA seq sent
	Resyncing     bool   // the start-up resync is running
	ResyncResult  string // "", "complete", "timeout"
	ResyncStarted time.Time
	ResyncEnded   time.Time
	Peers         []PeerStatus
	Stats         Stats
}

// Node is the sync protocol of one director: it batches local changes into
// sequenced, authenticated messages, keeps a history to retransmit what
// peers NACK, tracks each peer's sequence to detect loss, replay and
// reordering, and runs bulk resyncs. It does no I/O and reads no clock:
// every method takes the time, and the caller performs the returned
// Actions. It is not safe for concurrent use.
type Node struct {
	cfg   Config
	codec *Codec

	seq      uint32
	pending  []Entry
	pendIdx  map[Key]int // index in pending of each key
	pendSize int
	pendAt   time.Time
	lastSent time.Time
	lastCtl  int64 // timestamp of our last control message (strictly increasing)
	// probeAt is the next tail probe: an ALIVE soon after data, so that a
	// receiver that lost our last message learns of it (and NACKs) at
	// once, not at the next AliveInterval. probeStep grows by 3 each time.
	probeAt   time.Time
	probeStep time.Duration

	hist     map[uint32][]byte
	histRing []uint32
	histNext int

	peers map[uint32]*peer
	// served remembers the resync requests answered, so that a request
	// repeated while its answer is on the way does not start another.
	served []servedReq

	resync struct {
		active, answered bool
		reqID            uint32
		started, lastReq time.Time
		ended            time.Time
		result           string
	}

	stats   Stats
	actions []Action
}

type servedReq struct {
	peer, reqID uint32
	epoch       uint64
	at          time.Time
}

type heldMsg struct {
	entries []Entry
	sent    time.Time
}

type peer struct {
	id        uint32
	epoch     uint64
	started   bool
	base      uint32              // every seq below is received or abandoned
	first     uint32              // the first seq we took of this peer
	seen      map[uint32]struct{} // received seqs >= base
	held      map[uint32]heldMsg  // received entries waiting for the seqs before them
	highest   uint32
	said      uint32 // last seq its ALIVE announced
	lastCtl   int64
	lastHeard time.Time
	lag       time.Duration

	gapSince time.Time
	lastNack time.Time

	doneFirst, doneLast uint32
	donePending         bool

	// wantResync is the id of our resync request to this peer after a
	// loss, repeated every ResyncRetry until its DONE arrives.
	wantResync uint32
	resyncAt   time.Time

	received, entries, lost uint64
}

// NewNode validates cfg and returns a node.
func NewNode(cfg Config) (*Node, error) {
	if cfg.Node == 0 {
		return nil, errors.New("sync node id must not be 0")
	}
	codec, err := NewCodec(cfg.Key)
	if err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.FlushDelay, DefaultFlushDelay)
	def(&cfg.AliveInterval, DefaultAliveInterval)
	def(&cfg.NackDelay, DefaultNackDelay)
	def(&cfg.NackInterval, DefaultNackInterval)
	def(&cfg.GiveUp, DefaultGiveUp)
	def(&cfg.MaxSkew, DefaultMaxSkew)
	def(&cfg.ResyncRetry, DefaultResyncRetry)
	def(&cfg.ResyncTimeout, DefaultResyncTimeout)
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxMessage < Overhead+64 || cfg.MaxMessage > MaxMessage {
		return nil, fmt.Errorf("sync message size %d out of range %d..%d", cfg.MaxMessage, Overhead+64, MaxMessage)
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	return &Node{cfg: cfg, codec: codec, hist: map[uint32][]byte{}, histRing: make([]uint32, cfg.History),
		peers: map[uint32]*peer{}}, nil
}

// Config returns the configuration with its defaults.
func (n *Node) Config() Config { return n.cfg }

// Ready returns the actions queued since the last call.
func (n *Node) Ready() []Action {
	a := n.actions
	n.actions = nil
	return a
}

func (n *Node) emit(a Action) { n.actions = append(n.actions, a) }

func ms(t time.Time) int64 { return t.UnixMilli() }

// send encodes and queues m for To; sequenced messages enter the history.
func (n *Node) send(now time.Time, m *Message, to uint32) {
	m.SyncID, m.Sender, m.Epoch = n.cfg.SyncID, n.cfg.Node, n.cfg.Epoch
	m.Time = ms(now)
	if m.Type == TypeNack || m.Type == TypeResync || m.Type == TypeAlive {
		// Control messages are not sequenced: their timestamps are, so a
		// replayed one is recognised.
		m.Time = max(m.Time, n.lastCtl+1)
		n.lastCtl = m.Time
	}
	b, err := n.codec.Encode(m)
	if err != nil {
		// Only entries of mixed families get here; Add refuses them.
		return
	}
	if m.Type == TypeData || m.Type == TypeDone {
		n.remember(m.Seq, b)
		n.probeStep = tailProbe
		n.probeAt = now.Add(tailProbe)
	}
	n.stats.MsgsSent++
	n.stats.BytesSent += uint64(len(b))
	n.lastSent = now
	n.emit(Action{Kind: ActSend, To: to, Data: b})
}

func (n *Node) remember(seq uint32, b []byte) {
	if old := n.histRing[n.histNext]; old != 0 {
		delete(n.hist, old)
	}
	n.histRing[n.histNext] = seq
	n.histNext = (n.histNext + 1) % len(n.histRing)
	n.hist[seq] = b
}

// Add queues a local change for the peers; it goes out within FlushDelay,
// or at once when a message is full.
func (n *Node) Add(now time.Time, e Entry) error {
	if err := checkEntry(&e); err != nil {
		return err
	}
	size := EntrySize(&e)
	if i, ok := n.pendIdx[e.Key()]; ok {
		// A newer state of a flow still waiting to go: it replaces the
		// older one (a handshake within FlushDelay is one entry).
		if n.pendSize-EntrySize(&n.pending[i])+size <= n.cfg.MaxMessage-Overhead {
			n.pendSize += size - EntrySize(&n.pending[i])
			n.pending[i] = e
			return nil
		}
	}
	if n.pendSize+size > n.cfg.MaxMessage-Overhead {
		n.flush(now, 0)
	}
	n.queue(now, e, size)
	return nil
}

func (n *Node) queue(now time.Time, e Entry, size int) {
	if len(n.pending) == 0 {
		n.pendAt = now
	}
	if n.pendIdx == nil {
		n.pendIdx = map[Key]int{}
	}
	n.pendIdx[e.Key()] = len(n.pending)
	n.pending = append(n.pending, e)
	n.pendSize += size
}

// Flush sends the queued entries now.
func (n *Node) Flush(now time.Time) { n.flush(now, 0) }

func (n *Node) flush(now time.Time, flags uint8) {
	if len(n.pending) == 0 {
		return
	}
	n.seq++
	n.stats.EntriesSent += uint64(len(n.pending))
	n.send(now, &Message{Type: TypeData, Flags: flags, Seq: n.seq, Entries: n.pending}, 0)
	n.pending, n.pendSize = n.pending[:0], 0 // encoded: the array is free again
	clear(n.pendIdx)
}

// Resync sends the whole table, entries, in answer to Peer's request
// ReqID (an ActDump), then a DONE naming the seqs it took.
func (n *Node) Resync(now time.Time, to, reqID uint32, entries []Entry) {
	n.flush(now, 0)
	first := n.seq + 1
	for i := range entries {
		e := &entries[i]
		if checkEntry(e) != nil {
			continue
		}
		size := EntrySize(e)
		if n.pendSize+size > n.cfg.MaxMessage-Overhead {
			n.flush(now, FlagResync)
		}
		n.queue(now, *e, size)
	}
	n.flush(now, FlagResync)
	n.stats.ResyncsServed++
	n.seq++
	n.send(now, &Message{Type: TypeDone, Seq: n.seq, Target: to, ReqID: reqID, First: first, Last: n.seq - 1,
		Count: uint32(len(entries))}, 0)
}

// StartResync asks every peer for its table; the node reports
// ActResyncDone when one has sent it all, or ResyncTimeout passed.
func (n *Node) StartResync(now time.Time) {
	r := &n.resync
	r.active, r.answered = true, false
	r.reqID = rand.Uint32() | 1
	r.started, r.result = now, ""
	n.requestResync(now, 0, r.reqID)
	r.lastReq = now
}

func (n *Node) requestResync(now time.Time, target, reqID uint32) {
	n.stats.ResyncsRequested++
	n.send(now, &Message{Type: TypeResync, Target: target, ReqID: reqID}, target)
}

func (n *Node) endResync(now time.Time, from uint32, timedOut bool) {
	r := &n.resync
	r.active, r.ended = false, now
	r.result = "complete"
	if timedOut {
		r.result = "timeout"
	}
	n.emit(Action{Kind: ActResyncDone, Peer: from, TimedOut: timedOut})
}

// Receive processes one datagram. A rejected one is counted by reason and
// its error returned; nothing is installed from it.
func (n *Node) Receive(now time.Time, b []byte) error {
	m, err := n.codec.Decode(b, n.cfg.SyncID, n.cfg.MaxMessage)
	if err == nil {
		err = n.step(now, m, len(b))
	}
	var de *DropError
	if errors.As(err, &de) {
		n.stats.Drops[de.Reason]++
	}
	return err
}

func (n *Node) step(now time.Time, m *Message, size int) error {
	if m.Sender == n.cfg.Node {
		return nil // our own multicast
	}
	if d := now.Sub(time.UnixMilli(m.Time)); d > n.cfg.MaxSkew || d < -n.cfg.MaxSkew {
		return drop(DropStale, "timestamp %v off", d.Round(time.Millisecond))
	}
	p := n.peers[m.Sender]
	switch {
	case p != nil && m.Epoch < p.epoch:
		return drop(DropStale, "old epoch of node %d", m.Sender)
	case p == nil || m.Epoch > p.epoch:
		// A new node, or a restarted one: its sequence starts over.
		p = n.newPeer(m.Sender, m.Epoch)
	}
	sequenced := m.Type == TypeData || m.Type == TypeDone
	if sequenced {
		if err := p.accept(m.Seq, n.cfg.Window); err != nil {
			return err
		}
	} else {
		if m.Time <= p.lastCtl {
			return drop(DropReplay, "control message of node %d not newer than the last", m.Sender)
		}
		p.lastCtl = m.Time
	}
	p.lastHeard = now
	n.stats.MsgsReceived++
	n.stats.BytesReceived += uint64(size)
	switch m.Type {
	case TypeData:
		p.received++
		p.entries += uint64(len(m.Entries))
		p.lag = now.Sub(time.UnixMilli(m.Time))
		n.stats.EntriesReceived += uint64(len(m.Entries))
		if m.Flags&FlagResync != 0 && n.resync.active {
			n.resync.answered = true
		}
		if len(m.Entries) > 0 {
			// Applied in sequence order (deliver): a retransmitted
			// older state must not overwrite a newer one.
			p.held[m.Seq] = heldMsg{m.Entries, time.UnixMilli(m.Time)}
		}
	case TypeDone:
		if m.Target == n.cfg.Node && m.ReqID == p.wantResync {
			p.wantResync = 0
		}
		if m.Target == n.cfg.Node && m.First <= m.Last && p.base < m.First && int64(m.First)-int64(p.base) < int64(n.cfg.Window) {
			// A resync for us supersedes what we miss before it (the
			// sender may have no history of it left).
			for s := p.base; s < m.First; s++ {
				delete(p.seen, s)
			}
			p.base = m.First
			p.advance()
		}
		if m.Target == n.cfg.Node && n.resync.active && m.ReqID == n.resync.reqID {
			n.resync.answered = true
			if m.First <= m.Last {
				p.extendBack(m.First, n.cfg.Window)
			}
			p.doneFirst, p.doneLast, p.donePending = m.First, m.Last, true
		}
	case TypeAlive:
		if !p.started {
			p.start(m.Seq + 1)
		}
		p.said = max(p.said, m.Seq)
	case TypeNack:
		n.stats.NacksReceived++
		if m.Target == n.cfg.Node && m.TargetEpoch == n.cfg.Epoch {
			n.retransmit(now, m)
		}
	case TypeResync:
		if m.Target == 0 || m.Target == n.cfg.Node {
			n.dumpFor(now, m.Sender, m.Epoch, m.ReqID)
		}
	}
	if sequenced {
		n.deliver(p)
	}
	n.checkResync(now)
	return nil
}

// deliver installs the held entries of every seq below the peer's base
// (all received, or given up on), in sequence order.
func (n *Node) deliver(p *peer) {
	if len(p.held) == 0 {
		return
	}
	var seqs []uint32
	for s := range p.held {
		if s < p.base {
			seqs = append(seqs, s)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		h := p.held[s]
		delete(p.held, s)
		n.emit(Action{Kind: ActInstall, Peer: p.id, Entries: h.entries, Sent: h.sent})
	}
}

func (n *Node) newPeer(id uint32, epoch uint64) *peer {
	if len(n.peers) >= n.cfg.MaxPeers && n.peers[id] == nil {
		// Forget the peer heard from least recently.
		var oldest *peer
		for _, q := range n.peers {
			if oldest == nil || q.lastHeard.Before(oldest.lastHeard) {
				oldest = q
			}
		}
		delete(n.peers, oldest.id)
	}
	p := &peer{id: id, epoch: epoch, seen: map[uint32]struct{}{}, held: map[uint32]heldMsg{}}
	n.peers[id] = p
	return p
}

func (p *peer) start(base uint32) {
	p.started, p.base, p.first, p.highest = true, base, base, base-1
}

// accept records seq, or says why it is refused.
func (p *peer) accept(seq uint32, window int) error {
	if !p.started {
		p.start(seq)
	}
	if seq < p.first && int64(p.first)-int64(seq) < int64(window) && int64(p.highest)-int64(seq) < int64(window) {
		// Sent before our first contact and reordered behind it.
		p.extendBack(seq, window)
	}
	if seq < p.base {
		return drop(DropReplay, "seq %d of node %d below %d", seq, p.id, p.base)
	}
	if _, dup := p.seen[seq]; dup {
		return drop(DropReplay, "seq %d of node %d seen", seq, p.id)
	}
	if int64(seq)-int64(p.base) >= int64(window) {
		// Too far ahead: abandon what we miss below the window.
		nb := seq - uint32(window) + 1
		for s := p.base; s < nb; s++ {
			if _, ok := p.seen[s]; ok {
				delete(p.seen, s)
			} else {
				p.lost++
			}
		}
		p.base = nb
	}
	p.seen[seq] = struct{}{}
	p.highest = max(p.highest, seq)
	p.advance()
	return nil
}

func (p *peer) advance() {
	for {
		if _, ok := p.seen[p.base]; !ok {
			return
		}
		delete(p.seen, p.base)
		p.base++
	}
}

// extendBack makes seqs from first on wanted again: they precede what we
// had heard of this peer (our first contact came after its resync began).
func (p *peer) extendBack(first uint32, window int) {
	if first >= p.base || int64(p.highest)-int64(first) >= int64(window) {
		return
	}
	// The seqs from our first contact on were received (or abandoned):
	// only those before it can be missing.
	for s := max(first, p.first); s < p.base; s++ {
		p.seen[s] = struct{}{}
	}
	p.base = min(first, p.base)
	p.first = min(first, p.first)
	p.advance()
}

// limit is the highest seq we know the peer sent, within the window.
func (p *peer) limit(window int) uint32 {
	l := max(p.highest, p.said)
	if int64(l)-int64(p.base) >= int64(window) {
		l = p.base + uint32(window) - 1
	}
	return l
}

// missing lists the gaps in [base, limit] as ranges, at most maxRanges.
func (p *peer) missing(limit uint32) (ranges [][2]uint32, count int) {
	if !p.started || limit < p.base {
		return nil, 0
	}
	var cur *[2]uint32
	for s := p.base; s <= limit; s++ {
		if _, ok := p.seen[s]; ok {
			cur = nil
			continue
		}
		count++
		if cur != nil && cur[1] == s-1 {
			cur[1] = s
			continue
		}
		if len(ranges) < maxRanges {
			ranges = append(ranges, [2]uint32{s, s})
			cur = &ranges[len(ranges)-1]
		}
		if s == ^uint32(0) {
			break
		}
	}
	return ranges, count
}

func (n *Node) retransmit(now time.Time, m *Message) {
	budget := n.cfg.History
	for _, r := range m.Ranges {
		for s := r[0]; s <= r[1] && budget > 0; s++ {
			budget--
			b, ok := n.hist[s]
			if !ok {
				// Out of our history: only a resync repairs that.
				n.dumpFor(now, m.Sender, m.Epoch, 0)
				return
			}
			n.stats.Retransmits++
			n.stats.MsgsSent++
			n.stats.BytesSent += uint64(len(b))
			n.emit(Action{Kind: ActSend, To: m.Sender, Data: b})
			if s == ^uint32(0) {
				break
			}
		}
	}
}

// dumpFor asks the caller for the table, once per request.
// A request repeated within half a ResyncRetry is a duplicate (the
// requester repeats only while nothing of an answer reached it: then the
// answer was lost, and goes again).
func (n *Node) dumpFor(now time.Time, peer uint32, epoch uint64, reqID uint32) {
	for _, s := range n.served {
		if s.peer == peer && s.epoch == epoch && s.reqID == reqID && now.Sub(s.at) < n.cfg.ResyncRetry/2 {
			return
		}
	}
	n.served = append(n.served, servedReq{peer, reqID, epoch, now})
	if len(n.served) > 32 {
		n.served = n.served[1:]
	}
	n.emit(Action{Kind: ActDump, Peer: peer, ReqID: reqID})
}

func (n *Node) checkResync(now time.Time) {
	if !n.resync.active {
		return
	}
	for _, p := range n.peers {
		if p.donePending && p.base > p.doneLast {
			p.donePending = false
			n.endResync(now, p.id, false)
			return
		}
	}
}

// Tick runs the timers: flushes the batch, sends ALIVE, NACKs gaps or gives
// up on them, repeats or times out the start-up resync. Call it every few
// milliseconds (FlushDelay is the finest timer).
func (n *Node) Tick(now time.Time) {
	if len(n.pending) > 0 && now.Sub(n.pendAt) >= n.cfg.FlushDelay {
		n.flush(now, 0)
	}
	switch {
	case now.Sub(n.lastSent) >= n.cfg.AliveInterval:
		n.send(now, &Message{Type: TypeAlive, Seq: n.seq}, 0)
	case !n.probeAt.IsZero() && !now.Before(n.probeAt):
		n.send(now, &Message{Type: TypeAlive, Seq: n.seq}, 0)
		n.probeStep *= 3
		n.probeAt = now.Add(n.probeStep)
		if n.probeStep >= n.cfg.AliveInterval {
			n.probeAt = time.Time{}
		}
	}
	ids := make([]uint32, 0, len(n.peers))
	for id := range n.peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		n.tickPeer(now, n.peers[id])
	}
	r := &n.resync
	if r.active {
		switch {
		case now.Sub(r.started) >= n.cfg.ResyncTimeout:
			n.endResync(now, 0, true)
		case !r.answered && now.Sub(r.lastReq) >= n.cfg.ResyncRetry:
			n.requestResync(now, 0, r.reqID)
			r.lastReq = now
		}
	}
	n.checkResync(now)
}

func (n *Node) tickPeer(now time.Time, p *peer) {
	if p.wantResync != 0 && now.Sub(p.resyncAt) >= n.cfg.ResyncRetry {
		p.resyncAt = now
		n.requestResync(now, p.id, p.wantResync)
	}
	limit := p.limit(n.cfg.Window)
	ranges, count := p.missing(limit)
	if count == 0 {
		p.gapSince = time.Time{}
		return
	}
	if p.gapSince.IsZero() {
		p.gapSince = now
	}
	if now.Sub(p.gapSince) >= n.cfg.GiveUp {
		// Not repaired in time: drop the gap and ask for the table.
		for s := p.base; s <= limit; s++ {
			delete(p.seen, s)
		}
		p.lost += uint64(count)
		n.stats.Lost += uint64(count)
		p.base = limit + 1
		n.deliver(p)
		p.gapSince = time.Time{}
		p.wantResync, p.resyncAt = rand.Uint32()|1, now
		n.requestResync(now, p.id, p.wantResync)
		return
	}
	if now.Sub(p.gapSince) >= n.cfg.NackDelay && now.Sub(p.lastNack) >= n.cfg.NackInterval {
		p.lastNack = now
		n.stats.NacksSent++
		n.send(now, &Message{Type: TypeNack, Target: p.id, TargetEpoch: p.epoch, Ranges: ranges}, p.id)
	}
}

// Status returns the node's state at now.
func (n *Node) Status(now time.Time) Status {
	s := Status{Node: n.cfg.Node, Epoch: n.cfg.Epoch, Seq: n.seq, Resyncing: n.resync.active,
		ResyncResult: n.resync.result, ResyncStarted: n.resync.started, ResyncEnded: n.resync.ended, Stats: n.stats}
	for _, p := range n.peers {
		_, miss := p.missing(p.limit(n.cfg.Window))
		s.Peers = append(s.Peers, PeerStatus{ID: p.id, Epoch: p.epoch, LastHeard: p.lastHeard, Lag: p.lag,
			Next: p.base, Highest: p.highest, Missing: miss, Received: p.received, Entries: p.entries, Lost: p.lost})
	}
	sort.Slice(s.Peers, func(i, j int) bool { return s.Peers[i].ID < s.Peers[j].ID })
	return s
}
