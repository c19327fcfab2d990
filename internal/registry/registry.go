// Package registry is a table of named constructors that packages fill from
// their init functions: the schedulers of internal/sched and the health
// checkers of internal/health each keep one, so that a new scheduler or check
// type is one file that registers itself.
//
// This package must never import another govs package: sched and health,
// which may import nothing else of govs, import it.
package registry

import (
	"sort"
	"sync"
)

// Registry maps names to values of type F, usually constructors.
type Registry[F any] struct {
	what string // "sched: duplicate scheduler": the start of the panic of a duplicate
	mu   sync.RWMutex
	m    map[string]F
}

// New returns an empty registry. dup starts the panic message of a
// duplicate name, which is followed by the name.
func New[F any](dup string) *Registry[F] {
	return &Registry[F]{what: dup, m: map[string]F{}}
}

// Register adds f under name. It panics on a duplicate name: registration
// happens in init functions, so that is a programming error.
func (r *Registry[F]) Register(name string, f F) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(r.what + " " + name)
	}
	r.m[name] = f
}

// Lookup returns the value registered under name.
func (r *Registry[F]) Lookup(name string) (F, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.m[name]
	return f, ok
}

// Names lists the registered names, sorted.
func (r *Registry[F]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
