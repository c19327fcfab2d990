package persist

import (
	"testing"
	"time"
)

// A peer's template lives for what it had left, sends its client to its
// server, counts no connection, and stops being remote once used here.
func TestInstall(t *testing.T) {
	tab, clk := newTable(t, Config{Timeout: 300 * time.Second})
	a, b := server(1), server(2)
	if err := tab.Install("vs", ip("192.0.2.7"), a, 100*time.Second); err != nil {
		t.Fatal(err)
	}
	var got []Entry[string]
	tab.Templates(func(e Entry[string]) bool { got = append(got, e); return true })
	if len(got) != 1 || !got[0].Remote || got[0].Conns != 0 || got[0].Expires != 100*time.Second || got[0].Dest != a {
		t.Fatalf("installed: %+v", got)
	}
	clk.add(99 * time.Second)
	tp := tab.Lookup("vs", ip("192.0.2.7"))
	if tp == nil || tp.Dest() != a {
		t.Fatalf("lookup within its time: %v", tp)
	}
	got = got[:0]
	tab.Templates(func(e Entry[string]) bool { got = append(got, e); return true })
	if got[0].Remote || got[0].Conns != 1 {
		t.Fatalf("used here: %+v", got[0])
	}
	// A template connections hold here is not replaced by a peer's.
	if err := tab.Install("vs", ip("192.0.2.7"), b, time.Hour); err != nil {
		t.Fatal(err)
	}
	tab.Release(tp)
	if tp := tab.Lookup("vs", ip("192.0.2.7")); tp == nil || tp.Dest() != a {
		t.Fatalf("a held template was replaced")
	} else {
		tab.Release(tp)
	}
	// An idle one is; and a peer's template expires after what it had left
	// (capped at the timeout).
	if err := tab.Install("vs", ip("192.0.2.7"), b, time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.add(299 * time.Second)
	if tp := tab.Lookup("vs", ip("192.0.2.7")); tp == nil || tp.Dest() != b {
		t.Fatalf("idle template not replaced: %v", tp)
	} else {
		tab.Release(tp)
	}
	tab.Install("vs", ip("192.0.2.8"), b, 10*time.Second)
	clk.add(10 * time.Second)
	if tp := tab.Lookup("vs", ip("192.0.2.8")); tp != nil {
		t.Fatalf("expired peer template used")
	}
	if a.PersistConns()+b.PersistConns() != tab.Len() {
		t.Errorf("persistent connection counts %d+%d, templates %d", a.PersistConns(), b.PersistConns(), tab.Len())
	}
}
