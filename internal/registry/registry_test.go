package registry

import (
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := New[func() int]("test: duplicate thing")
	r.Register("b", func() int { return 2 })
	r.Register("a", func() int { return 1 })
	if f, ok := r.Lookup("b"); !ok || f() != 2 {
		t.Errorf("Lookup(b): found %v, wrong value", ok)
	}
	if _, ok := r.Lookup("c"); ok {
		t.Error("Lookup(c) found something")
	}
	if got := strings.Join(r.Names(), " "); got != "a b" {
		t.Errorf("Names() = %s, want a b (sorted)", got)
	}
	defer func() {
		if p := recover(); p != "test: duplicate thing a" {
			t.Errorf("duplicate: recovered %v", p)
		}
	}()
	r.Register("a", nil)
}
