package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

// DefaultMaxTemplates bounds a Table when Config.MaxTemplates is 0: about
// 100 MB of templates at most.
const DefaultMaxTemplates = 1 << 20

// ErrFull is returned by Bind when the table holds MaxTemplates live
// templates. The connection should then go ahead without persistence: an
// existing template is never evicted before its time, since that would break
// the affinity its timeout promises.
var ErrFull = errors.New("persistence table full")

// Config is a persistence policy: IPVS's persistent service flags.
type Config struct {
	// Timeout is persistence_timeout (ipvsadm -p): how long a template
	// outlives its last connection. It must be positive.
	Timeout time.Duration
	// Netmask is persistence_netmask (ipvsadm -M): which clients share a
	// template.
	Netmask Netmask
	// ExpireQuiescent is the expire_quiescent_template sysctl: when set, a
	// template whose real server has weight 0 is dropped at its next lookup,
	// so the client is scheduled afresh; when not, persistent clients keep
	// going to a quiesced server until their template expires.
	ExpireQuiescent bool
	// MaxTemplates bounds the table; 0 means DefaultMaxTemplates.
	MaxTemplates int
	// Clock is the time source; nil means the monotonic clock. Tests
	// inject a fake one.
	Clock func() time.Time
}

// Template is the affinity of one client group to a real server, IPVS's
// connection template. It lives while connections use it and then for the
// timeout after the later of its last use and its last release.
type Template struct {
	dest  *sched.Dest
	conns atomic.Int32 // connections holding the template
	last  atomic.Int64 // last use or release, clock nanoseconds
	// remote: installed from a peer director (Install) and not used here
	// since; the connection sync does not send it back.
	remote atomic.Bool
}

// Dest is the real server the template sends its clients to.
func (t *Template) Dest() *sched.Dest { return t.dest }

// Table holds the persistence templates of one policy, keyed by a service
// (any comparable value the caller chooses: a virtual service, a firewall
// mark, or a VIP alone so that all its ports share affinity as IPVS's port 0
// services do) and the client address under the netmask. It is safe for
// concurrent use; lookups of different clients rarely share a lock.
type Table[S comparable] struct {
	cfg     Config
	timeout int64
	max     int64
	epoch   time.Time
	count   atomic.Int64
	shards  [shardCount]shard[S]
}

const shardCount = 64

type key[S comparable] struct {
	svc    S
	client netip.Addr
}

type shard[S comparable] struct {
	mu sync.Mutex
	m  map[key[S]]*Template
	_  [48]byte // keep shards' locks on separate cache lines
}

// New returns an empty table for the policy c.
func New[S comparable](c Config) (*Table[S], error) {
	if c.Timeout <= 0 {
		return nil, fmt.Errorf("persistence timeout %v must be positive", c.Timeout)
	}
	if c.MaxTemplates < 0 {
		return nil, fmt.Errorf("persistence table size %d is negative", c.MaxTemplates)
	}
	t := &Table[S]{cfg: c, timeout: int64(c.Timeout), max: int64(c.MaxTemplates)}
	if t.max == 0 {
		t.max = DefaultMaxTemplates
	}
	t.epoch = time.Now()
	if c.Clock != nil {
		t.epoch = c.Clock()
	}
	for i := range t.shards {
		t.shards[i].m = make(map[key[S]]*Template)
	}
	return t, nil
}

func (t *Table[S]) now() int64 {
	if t.cfg.Clock == nil {
		return int64(time.Since(t.epoch))
	}
	return int64(t.cfg.Clock().Sub(t.epoch))
}

// shardOf spreads client groups over the shards by a multiplicative hash of
// the address.
func (t *Table[S]) shardOf(client netip.Addr) *shard[S] {
	b := client.As16()
	h := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	return &t.shards[(h*0x9e3779b97f4a7c15)>>58]
}

func (t *Table[S]) expired(tp *Template, now int64) bool {
	return tp.conns.Load() == 0 && now >= tp.last.Load()+t.timeout
}

// Lookup returns the template of client for svc and takes a connection
// reference on it, to be given back with Release; it returns nil when there
// is none to use. A template that has expired, or whose real server is
// quiesced (weight 0) while ExpireQuiescent is set, is dropped and nil is
// returned, so the caller schedules the client afresh and Binds the result.
// A quiesced or overloaded server otherwise keeps its persistent clients, as
// in IPVS.
func (t *Table[S]) Lookup(svc S, client netip.Addr) *Template {
	client = t.cfg.Netmask.Apply(client)
	k := key[S]{svc, client}
	now := t.now()
	sh := t.shardOf(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tp := sh.m[k]
	if tp == nil {
		return nil
	}
	if t.expired(tp, now) || t.cfg.ExpireQuiescent && tp.dest.Weight() == 0 {
		t.drop(sh, k, tp)
		return nil
	}
	tp.conns.Add(1)
	tp.last.Store(now)
	tp.remote.Store(false)
	return tp
}

// Bind makes d the real server of client for svc, replacing any template the
// key had, and takes a connection reference on the new template. When the
// table is full it first drops the expired templates of the key's shard; if
// that frees no room it returns ErrFull and the connection goes ahead
// unpersisted.
func (t *Table[S]) Bind(svc S, client netip.Addr, d *sched.Dest) (*Template, error) {
	if d == nil {
		return nil, errors.New("persistence: no real server to bind")
	}
	client = t.cfg.Netmask.Apply(client)
	k := key[S]{svc, client}
	now := t.now()
	sh := t.shardOf(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[k]; ok {
		t.drop(sh, k, old)
	}
	if t.count.Load() >= t.max {
		for k, tp := range sh.m {
			if t.expired(tp, now) {
				t.drop(sh, k, tp)
			}
		}
		if t.count.Load() >= t.max {
			return nil, ErrFull
		}
	}
	tp := &Template{dest: d}
	tp.conns.Store(1)
	tp.last.Store(now)
	sh.m[k] = tp
	t.count.Add(1)
	d.AddPersistConns(1)
	return tp, nil
}

// Install makes d the real server of client for svc for remaining, unless
// a connection uses the template meanwhile: a peer director's template, as
// the connection sync carries it. The template holds no connection and is
// remote until one here uses it. A template of the key that connections
// hold here stays as it is (its clients' connections are this director's);
// another is replaced. A full table refuses it (ErrFull).
func (t *Table[S]) Install(svc S, client netip.Addr, d *sched.Dest, remaining time.Duration) error {
	if d == nil {
		return errors.New("persistence: no real server to bind")
	}
	client = t.cfg.Netmask.Apply(client)
	k := key[S]{svc, client}
	now := t.now()
	// last is when the timeout started: remaining from now.
	last := now - t.timeout + int64(min(remaining, time.Duration(t.timeout)))
	sh := t.shardOf(client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.m[k]; ok {
		if old.conns.Load() > 0 {
			return nil
		}
		t.drop(sh, k, old)
	}
	if t.count.Load() >= t.max {
		return ErrFull
	}
	tp := &Template{dest: d}
	tp.last.Store(last)
	tp.remote.Store(true)
	sh.m[k] = tp
	t.count.Add(1)
	d.AddPersistConns(1)
	return nil
}

// drop removes the template tp of key k from its shard, whose lock the
// caller holds.
func (t *Table[S]) drop(sh *shard[S], k key[S], tp *Template) {
	delete(sh.m, k)
	t.count.Add(-1)
	tp.dest.AddPersistConns(-1)
}

// Release gives back a reference taken by Lookup or Bind, when the
// connection ends. The template then lives for the timeout from now unless
// another connection uses it. Releasing a template already dropped (by
// Forget, say) is harmless.
func (t *Table[S]) Release(tp *Template) {
	if tp == nil {
		return
	}
	// Store the time before the count drops, so that a sweep that sees no
	// connections also sees this release.
	tp.last.Store(t.now())
	for {
		n := tp.conns.Load()
		if n <= 0 || tp.conns.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// Forget drops every template of d, a real server removed from its service,
// and reports how many it dropped. Connections still holding one keep their
// server; new ones from those clients are scheduled afresh.
func (t *Table[S]) Forget(d *sched.Dest) int {
	return t.sweep(func(tp *Template) bool { return tp.dest == d })
}

// Expire drops the templates that have outlived their timeout at now and
// reports how many. Lookup never uses an expired template, so Expire only
// gives memory back; call it every few seconds.
func (t *Table[S]) Expire(now time.Time) int {
	n := int64(now.Sub(t.epoch))
	return t.sweep(func(tp *Template) bool { return t.expired(tp, n) })
}

// Clear drops every template, when the table is replaced.
func (t *Table[S]) Clear() int { return t.sweep(func(*Template) bool { return true }) }

func (t *Table[S]) sweep(drop func(*Template) bool) int {
	removed := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, tp := range sh.m {
			if drop(tp) {
				t.drop(sh, k, tp)
				removed++
			}
		}
		sh.mu.Unlock()
	}
	return removed
}

// Len reports the number of templates held, expired ones not yet swept
// included.
func (t *Table[S]) Len() int { return int(t.count.Load()) }

// Entry is a live template as Templates lists it.
type Entry[S comparable] struct {
	Service S
	Client  netip.Addr // the client group: the address under the netmask
	Dest    *sched.Dest
	Conns   int // connections holding it
	// Expires is how long the template has left once its last connection
	// ends: the whole timeout while connections hold it, as IPVS restarts
	// a template's timer while it is in use.
	Expires time.Duration
	// Remote: installed from a peer (Install) and not used here since.
	Remote bool
}

// Templates calls yield for each live template, shard by shard, until yield
// returns false. It holds one shard's lock at a time, so it sees a template
// bound while it runs or not, and never blocks lookups for long.
func (t *Table[S]) Templates(yield func(Entry[S]) bool) {
	now := t.now()
	var batch []Entry[S]
	for i := range t.shards {
		sh := &t.shards[i]
		batch = batch[:0]
		sh.mu.Lock()
		for k, tp := range sh.m {
			if t.expired(tp, now) {
				continue
			}
			e := Entry[S]{Service: k.svc, Client: k.client, Dest: tp.dest, Conns: int(tp.conns.Load()),
				Expires: time.Duration(t.timeout), Remote: tp.remote.Load()}
			if e.Conns == 0 {
				e.Expires = time.Duration(tp.last.Load() + t.timeout - now)
			}
			batch = append(batch, e)
		}
		sh.mu.Unlock()
		// yield runs without the lock: it may be slow (it writes to a
		// client) and must not stall the shard's connections.
		for _, e := range batch {
			if !yield(e) {
				return
			}
		}
	}
}
