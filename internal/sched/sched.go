package sched

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/govs-lb/govs/internal/registry"
)

// Key describes the new connection being scheduled. Hashing schedulers use
// it; the others ignore it. Pass it by pointer: Pick must not allocate.
type Key struct {
	Client netip.AddrPort // the client's address and port
	VIP    netip.AddrPort // the virtual service (or original destination) address
}

// Scheduler chooses a real server for each new connection.
//
// Update and Pick may run concurrently; Update is never called concurrently
// with itself. The slice given to Update is owned by the scheduler afterwards.
// Schedulers that index servers by load attach to each Dest given to Update;
// Update(nil) detaches them, which a caller should do before dropping a
// scheduler whose servers live on.
type Scheduler interface {
	// Update replaces the real servers, in configuration order. It is called
	// whenever the set, an effective weight or a threshold changes.
	Update(dests []*Dest)
	// Pick returns the real server for a new connection, or nil when none is
	// available. It must not allocate, except to grow a scheduler's own
	// table (an lblc or lblcr entry for a new destination).
	Pick(k *Key) *Dest
}

// Options are the scheduler flags of ipvsadm -b and keepalived.
type Options struct {
	// Fallback (sh-fallback, mh-fallback): when the hashed real server is
	// unavailable, pick another one instead of failing.
	Fallback bool
	// Port (sh-port, mh-port): hash the client's port as well as its address.
	Port bool
	// TableSize is the Maglev lookup table size (mh), a prime; 0 means
	// DefaultMaglevTableSize.
	TableSize int
	// Clock is the time source of the schedulers that keep timed state
	// (lblc, lblcr); nil means time.Now. Tests inject a fake one.
	Clock func() time.Time
	// Expiration is how long lblc and lblcr keep an entry nobody uses, and
	// how old an lblcr server set must be before it sheds its most loaded
	// server (IPVS's lblc_expiration and lblcr_expiration sysctls); 0 means
	// 24 hours.
	Expiration time.Duration
	// Rand is the random source of the schedulers that draw (random, twos,
	// pewma, prequal); nil means math/rand/v2's global source. It must be
	// safe for concurrent use if Pick is called concurrently. The simulator
	// (internal/sim) gives a seeded one, for runs that repeat exactly.
	Rand func() uint64
	// Prober sends prequal's load probes; nil makes prequal build its
	// probes from what the director itself measures (signals.go).
	Prober Prober
}

// Expirer is implemented by schedulers with timed state (lblc, lblcr). They
// expire lazily as they pick; Expire runs the kernel's periodic collection of
// stale entries at once and reports how many it removed, for a caller that
// wants memory back from an idle service.
type Expirer interface {
	Expire(now time.Time) int
}

// Factory builds a scheduler.
type Factory func(Options) (Scheduler, error)

var schedulers = registry.New[Factory]("sched: duplicate scheduler")

// Register makes a scheduler available by name. It panics on a duplicate
// name: registration happens in init functions, so that is a programming error.
func Register(name string, f Factory) { schedulers.Register(name, f) }

// New builds the scheduler registered under name.
func New(name string, opts Options) (Scheduler, error) {
	f, ok := schedulers.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown scheduler %q (known: %v)", name, Names())
	}
	return f(opts)
}

// Names lists the registered schedulers, sorted.
func Names() []string { return schedulers.Names() }

// Known reports whether name is a registered scheduler.
func Known(name string) bool {
	_, ok := schedulers.Lookup(name)
	return ok
}
