package ctevent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/govs-lb/govs/test/netns"
)

// lab is a network namespace with a conntrack netlink connection in it.
func lab(t *testing.T) (*netns.NS, *conntrack.Conn) {
	t.Helper()
	netns.Require(t)
	ns := netns.New(t, "ctev")
	c, err := conntrack.Dial(&netlink.Config{NetNS: ns.FD()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ns, c
}

func flow(i int) conntrack.Flow {
	return conntrack.NewFlow(17, 0, netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"),
		uint16(10000+i), 53, 100, 0x42)
}

// TestReadDestroy: a flow deleted in another namespace comes to a reader
// opened there as a destroy event with its tuples, mark, id and the time
// it had left; nothing of the caller's namespace comes.
func TestReadDestroy(t *testing.T) {
	ns, c := lab(t)
	r, err := Open(ns.FD(), GroupDestroy, 1<<20, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := flow(1)
	if err := c.Create(f); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(f); err != nil {
		t.Fatal(err)
	}
	var evs []Event
	deadline := time.Now().Add(10 * time.Second)
	for len(evs) == 0 && time.Now().Before(deadline) {
		if evs, err = r.Read(evs[:0]); err != nil && err != ErrTimeout {
			t.Fatal(err)
		}
	}
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	want := Tuple{netip.MustParseAddrPort("10.1.0.1:10001"), netip.MustParseAddrPort("10.2.0.1:53")}
	if ev.Kind != Destroy || ev.Proto != 17 || ev.Orig != want || ev.Mark != 0x42 || ev.ID == 0 {
		t.Errorf("event %+v, want a destroy of %v with mark 0x42 and an id", ev, want)
	}
	if ev.Timeout == 0 || ev.Timeout > 100 {
		t.Errorf("time left %d, want 1..100 s: a flow deleted before its timeout", ev.Timeout)
	}
}

// TestReadOverrun: a reader that does not keep up loses events, and its
// next read says so; the kernel does not wait for it.
func TestReadOverrun(t *testing.T) {
	ns, c := lab(t)
	r, err := Open(ns.FD(), GroupDestroy, 4096, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n = 2000
	for i := range n {
		f := flow(i)
		if err := c.Create(f); err != nil {
			t.Fatal(err)
		}
		// Deleting never waits for the reader.
		if err := c.Delete(f); err != nil {
			t.Fatal(err)
		}
	}
	lost, got := false, 0
	var evs []Event
	for {
		evs, err = r.Read(evs[:0])
		got += len(evs)
		if Lost(err) {
			lost = true
			continue
		}
		if err == ErrTimeout {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !lost || got >= n {
		t.Errorf("lost %v, %d of %d events read: want a loss reported", lost, got, n)
	}
}
