package persist

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

func newTable(t *testing.T, c Config) (*Table[string], *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	c.Clock = clk.now
	if c.Timeout == 0 {
		c.Timeout = 300 * time.Second
	}
	tab, err := New[string](c)
	if err != nil {
		t.Fatal(err)
	}
	return tab, clk
}

func server(i int) *sched.Dest {
	return sched.NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 80), 1)
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestNetmask(t *testing.T) {
	tests := []struct {
		mask string
		in   string
		want string
	}{
		{"255.255.255.0", "192.0.2.77", "192.0.2.0"},
		{"255.255.0.0", "192.0.2.77", "192.0.0.0"},
		{"255.0.255.0", "192.0.2.77", "192.0.2.0"}, // IPVS masks bitwise
		{"255.255.255.0", "::ffff:192.0.2.77", "192.0.2.0"},
		{"255.255.255.0", "2001:db8::1", "2001:db8::1"}, // IPv6 left at /128
		{"64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"/48", "2001:db8:1:2:3:4:5:6", "2001:db8:1::"},
		{"127", "2001:db8::7", "2001:db8::6"},
		{"0", "2001:db8::7", "::"},
		{"64", "192.0.2.77", "192.0.2.77"}, // IPv4 left at /32
		{"96", "fe80::1:2:3%eth0", "fe80::1:0:0"},
	}
	for _, tt := range tests {
		m, err := ParseNetmask(tt.mask)
		if err != nil {
			t.Fatalf("ParseNetmask(%q): %v", tt.mask, err)
		}
		if got := m.Apply(ip(tt.in)); got != ip(tt.want) {
			t.Errorf("%s applied to %s = %s, want %s", tt.mask, tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"255.255.255", "2001:db8::", "129", "-1", "x"} {
		if _, err := ParseNetmask(bad); err == nil {
			t.Errorf("ParseNetmask(%q) accepted", bad)
		}
	}
	if s := (Netmask{}).String(); s != "255.255.255.255/128" {
		t.Errorf("zero Netmask = %s", s)
	}
}

func TestGroupingByNetmask(t *testing.T) {
	m, _ := NewNetmask(netip.MustParseAddr("255.255.255.0"), 64)
	tab, _ := newTable(t, Config{Netmask: m})
	a, b := server(1), server(2)
	tp, err := tab.Bind("web", ip("192.0.2.1"), a)
	if err != nil {
		t.Fatal(err)
	}
	tab.Release(tp)
	if tp := tab.Lookup("web", ip("192.0.2.200")); tp == nil || tp.Dest() != a {
		t.Fatal("a client of the same /24 did not share the template")
	}
	if tab.Lookup("web", ip("192.0.3.1")) != nil {
		t.Fatal("a client of another /24 shared the template")
	}
	if tab.Lookup("mail", ip("192.0.2.1")) != nil {
		t.Fatal("another service shared the template")
	}
	tab.Bind("web", ip("2001:db8:0:1::1"), b)
	if tp := tab.Lookup("web", ip("2001:db8:0:1:ffff::9")); tp == nil || tp.Dest() != b {
		t.Fatal("a client of the same IPv6 /64 did not share the template")
	}
	if tab.Lookup("web", ip("2001:db8:0:2::1")) != nil {
		t.Fatal("a client of another IPv6 /64 shared the template")
	}
}

func TestTemplateLifetime(t *testing.T) {
	tab, clk := newTable(t, Config{Timeout: 60 * time.Second})
	a := server(1)
	c := ip("198.51.100.1")
	tp, _ := tab.Bind("s", c, a)
	// While a connection holds it, the template never expires.
	clk.add(time.Hour)
	if got := tab.Lookup("s", c); got != tp {
		t.Fatal("a template in use expired")
	}
	tab.Release(tp) // one connection left
	clk.add(time.Hour)
	if tab.Expire(clk.now()) != 0 {
		t.Fatal("Expire dropped a template in use")
	}
	tab.Release(tp) // none left: 60 s from now
	clk.add(59 * time.Second)
	got := tab.Lookup("s", c)
	if got != tp {
		t.Fatal("expired before the timeout after the last release")
	}
	tab.Release(got)
	clk.add(59 * time.Second) // the lookup and release renewed it
	if tab.Expire(clk.now()) != 0 || tab.Len() != 1 {
		t.Fatal("a renewed template expired early")
	}
	clk.add(time.Second)
	if tab.Lookup("s", c) != nil {
		t.Fatal("used a template past its timeout")
	}
	if tab.Len() != 0 {
		t.Fatalf("Len = %d after the lookup dropped it", tab.Len())
	}

	tab.Bind("s", ip("198.51.100.2"), a) // holds a reference forever
	tp3, _ := tab.Bind("s", ip("198.51.100.3"), a)
	tab.Release(tp3)
	clk.add(time.Minute)
	if n := tab.Expire(clk.now()); n != 1 || tab.Len() != 1 {
		t.Fatalf("Expire removed %d, left %d; want 1 and 1", n, tab.Len())
	}
}

func TestQuiescentServers(t *testing.T) {
	for _, expire := range []bool{false, true} {
		t.Run(fmt.Sprint("expire_quiescent=", expire), func(t *testing.T) {
			tab, _ := newTable(t, Config{ExpireQuiescent: expire})
			a := server(1)
			c := ip("203.0.113.5")
			tp, _ := tab.Bind("s", c, a)
			tab.Release(tp)
			a.SetWeight(0)
			got := tab.Lookup("s", c)
			if expire && got != nil {
				t.Fatal("kept a template to a quiesced server with expire_quiescent_template")
			}
			if !expire && (got == nil || got.Dest() != a) {
				t.Fatal("dropped a persistent client of a quiesced server")
			}
			// Overload never breaks persistence.
			a.SetWeight(1)
			a.SetThresholds(1, 0, 0)
			a.Bind()
			if tp, _ := tab.Bind("s", c, a); tab.Lookup("s", c) != tp {
				t.Fatal("an overloaded server lost its persistent client")
			}
		})
	}
}

func TestForgetAndRebind(t *testing.T) {
	tab, _ := newTable(t, Config{})
	a, b := server(1), server(2)
	held, _ := tab.Bind("s", ip("192.0.2.1"), a)
	tab.Bind("s", ip("192.0.2.2"), a)
	tab.Bind("s", ip("192.0.2.3"), b)
	if n := tab.Forget(a); n != 2 || tab.Len() != 1 {
		t.Fatalf("Forget removed %d, left %d", n, tab.Len())
	}
	tab.Release(held) // harmless after Forget
	if tab.Lookup("s", ip("192.0.2.1")) != nil {
		t.Fatal("a forgotten server's client still has a template")
	}
	tp, _ := tab.Bind("s", ip("192.0.2.3"), a) // replaces b's template
	if got := tab.Lookup("s", ip("192.0.2.3")); got != tp || got.Dest() != a || tab.Len() != 1 {
		t.Fatal("Bind did not replace the client's template")
	}
}

func TestFullTable(t *testing.T) {
	tab, clk := newTable(t, Config{MaxTemplates: 3, Timeout: time.Second})
	a := server(1)
	var tps []*Template
	for i := range 3 {
		tp, err := tab.Bind("s", netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), a)
		if err != nil {
			t.Fatal(err)
		}
		tps = append(tps, tp)
	}
	if _, err := tab.Bind("s", ip("192.0.2.9"), a); !errors.Is(err, ErrFull) {
		t.Fatalf("Bind on a full table: %v, want ErrFull", err)
	}
	// Existing clients keep their templates.
	if tab.Lookup("s", ip("192.0.2.1")) != tps[1] {
		t.Fatal("a full table lost an existing template")
	}
	// Once the templates have expired and been swept there is room again.
	for _, tp := range tps {
		tab.Release(tp)
	}
	tab.Release(tps[1])
	clk.add(2 * time.Second)
	tab.Expire(clk.now())
	if _, err := tab.Bind("s", ip("192.0.2.9"), a); err != nil {
		t.Fatalf("Bind after expiry: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New[int](Config{}); err == nil {
		t.Error("zero timeout accepted")
	}
	if _, err := New[int](Config{Timeout: time.Second, MaxTemplates: -1}); err == nil {
		t.Error("negative size accepted")
	}
}

func TestConcurrentUse(t *testing.T) {
	tab, err := New[int](Config{Timeout: time.Millisecond, MaxTemplates: 500})
	if err != nil {
		t.Fatal(err)
	}
	servers := []*sched.Dest{server(1), server(2), server(3)}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				c := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i % 97)})
				tp := tab.Lookup(i%3, c)
				if tp == nil {
					tp, _ = tab.Bind(i%3, c, servers[i%3])
				}
				tab.Release(tp)
				if i%1000 == 0 {
					tab.Expire(time.Now())
					tab.Forget(servers[g%3])
				}
			}
		}()
	}
	wg.Wait()
	if n := tab.Len(); n < 0 || n > 500 {
		t.Fatalf("Len = %d", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	tab, _ := New[uint16](Config{Timeout: time.Minute})
	a := server(1)
	clients := make([]netip.Addr, 4096)
	for i := range clients {
		clients[i] = netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
		tp, _ := tab.Bind(80, clients[i], a)
		tab.Release(tp)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tp := tab.Lookup(80, clients[i&4095])
		if tp == nil {
			b.Fatal("miss")
		}
		tab.Release(tp)
		i++
	}
}

func TestTemplatesList(t *testing.T) {
	mask, err := ParseNetmask("255.255.255.0")
	if err != nil {
		t.Fatal(err)
	}
	tab, clk := newTable(t, Config{Timeout: 300 * time.Second, Netmask: mask})
	held, err := tab.Bind("web", ip("192.0.2.7"), server(1))
	if err != nil {
		t.Fatal(err)
	}
	released, _ := tab.Bind("web", ip("198.51.100.9"), server(2))
	tab.Release(released)
	expired, _ := tab.Bind("dns", ip("203.0.113.1"), server(3))
	tab.Release(expired)
	clk.add(200 * time.Second)
	tab.Release(tab.Lookup("web", ip("198.51.100.10"))) // same group: restarts its timer
	clk.add(150 * time.Second)                          // "dns" has expired, not swept yet

	got := map[string]Entry[string]{}
	tab.Templates(func(e Entry[string]) bool {
		got[e.Service+" "+e.Client.String()] = e
		return true
	})
	if len(got) != 2 {
		t.Fatalf("listed %v, want the two live templates", got)
	}
	if e := got["web 192.0.2.0"]; e.Dest != held.Dest() || e.Conns != 1 || e.Expires != 300*time.Second {
		t.Errorf("held template listed as %+v, want its full timeout and 1 connection", e)
	}
	if e := got["web 198.51.100.0"]; e.Conns != 0 || e.Expires != 150*time.Second {
		t.Errorf("released template listed as %+v, want 150s left", e)
	}
	n := 0
	tab.Templates(func(Entry[string]) bool { n++; return false })
	if n != 1 {
		t.Errorf("yield returning false listed %d, want 1", n)
	}
}

// TestPersistConns follows IPVS's persistconns: templates pointing at a real
// server, whatever removes them.
func TestPersistConns(t *testing.T) {
	tab, clk := newTable(t, Config{Timeout: 10 * time.Second})
	a, b := server(1), server(2)
	counts := func(want ...int) {
		t.Helper()
		if a.PersistConns() != want[0] || b.PersistConns() != want[1] {
			t.Fatalf("PersistConns %d, %d; want %v", a.PersistConns(), b.PersistConns(), want)
		}
	}
	for i := range 3 {
		tp, _ := tab.Bind("s", ip(fmt.Sprintf("192.0.2.%d", i)), a)
		tab.Release(tp)
	}
	tp, _ := tab.Bind("s", ip("192.0.2.9"), b)
	tab.Release(tp)
	counts(3, 1)
	tab.Bind("s", ip("192.0.2.0"), b) // rebinding moves the client
	counts(2, 2)
	tab.Forget(b)
	counts(2, 0)
	clk.add(11 * time.Second)
	if tab.Lookup("s", ip("192.0.2.1")) != nil {
		t.Fatal("expired template used")
	}
	counts(1, 0)
	tab.Expire(clk.t)
	counts(0, 0)
	tab.Bind("s", ip("192.0.2.5"), a)
	tab.Clear()
	counts(0, 0)
}
