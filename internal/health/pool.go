package health

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is the bounded worker pool of the health package, for the Runner's
// checks and the director's agent probes alike: at most max workers, each
// started when work arrives and no worker is idle, running one handler.
// Items wait in a queue of a fixed size (0: handed from hand to hand, a
// worker must be ready). Workers end after idleFor without work (0: they
// are kept until Close, so steady work costs no goroutine start or stack
// growth), or when the pool closes.
//
// TrySubmit never blocks: it drops what finds no room (the probes'
// choice: a late probe is worth nothing). Submit waits for room (the
// Runner's choice: a late check is better than none, and the bound holds).
type Pool[T any] struct {
	run     func(ctx context.Context, v T)
	q       chan T
	max     int
	idleFor time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
	closed  atomic.Bool

	mu      sync.Mutex
	workers int // running
	idle    int // waiting for work
	wg      sync.WaitGroup
}

// NewPool returns a pool of at most max workers running run, with a queue
// of queue items; its context, passed to run, ends with parent or Close.
func NewPool[T any](parent context.Context, max, queue int, idleFor time.Duration, run func(context.Context, T)) *Pool[T] {
	ctx, cancel := context.WithCancel(parent)
	return &Pool[T]{run: run, q: make(chan T, queue), max: max, idleFor: idleFor, ctx: ctx, cancel: cancel}
}

// Context ends when the pool closes.
func (p *Pool[T]) Context() context.Context { return p.ctx }

// Closed reports whether Close was called.
func (p *Pool[T]) Closed() bool { return p.closed.Load() }

// Workers is the number of workers running.
func (p *Pool[T]) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

// TrySubmit queues v, or hands it to an idle worker, or to a new one while
// there are fewer than max; false: no room, or the pool is closed.
func (p *Pool[T]) TrySubmit(v T) bool {
	if p.closed.Load() {
		return false
	}
	select {
	case p.q <- v:
		p.mu.Lock()
		if !p.closed.Load() && p.workers < p.max && len(p.q) > p.idle {
			p.startLocked(v, false)
		}
		p.mu.Unlock()
		return true
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() || p.workers >= p.max {
		return false
	}
	p.startLocked(v, true)
	return true
}

// Submit is TrySubmit, waiting for room when there is none; false: the
// pool closed first. (An item that a Submit racing with Close queued is
// never run.)
func (p *Pool[T]) Submit(v T) bool {
	if p.TrySubmit(v) {
		return true
	}
	if p.closed.Load() {
		return false
	}
	select {
	case p.q <- v:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// Close stops the pool: its context ends, idle workers end, busy ones end
// when their item returns. It waits for them.
func (p *Pool[T]) Close() {
	p.mu.Lock()
	p.closed.Store(true)
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

func (p *Pool[T]) startLocked(first T, has bool) {
	p.workers++
	p.wg.Add(1)
	go p.work(first, has)
}

func (p *Pool[T]) work(first T, has bool) {
	defer p.wg.Done()
	if has {
		p.run(p.ctx, first)
	}
	var idle <-chan time.Time
	var timer *time.Timer
	if p.idleFor > 0 {
		timer = time.NewTimer(p.idleFor)
		defer timer.Stop()
		idle = timer.C
	}
	for {
		p.mu.Lock()
		p.idle++
		p.mu.Unlock()
		select {
		case v := <-p.q:
			p.mu.Lock()
			p.idle--
			p.mu.Unlock()
			p.run(p.ctx, v)
			if timer != nil {
				timer.Reset(p.idleFor)
			}
		case <-idle:
			p.mu.Lock()
			p.idle--
			if len(p.q) > 0 && !p.closed.Load() {
				p.mu.Unlock()
				timer.Reset(p.idleFor)
				continue
			}
			p.workers--
			p.mu.Unlock()
			return
		case <-p.ctx.Done():
			p.mu.Lock()
			p.idle--
			p.workers--
			p.mu.Unlock()
			return
		}
	}
}
