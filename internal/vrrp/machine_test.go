package vrrp

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// cfg4 is an IPv4 VRRPv2 instance with VIP 10.0.0.100 and the given primary
// address and priority.
func cfg4(primary string, prio uint8) Config {
	return Config{Name: "VI_1", VRID: 51, Priority: prio, PrimaryIP: ip(primary),
		VIPs: []netip.Addr{ip("10.0.0.100")}}
}

func newM(t *testing.T, c Config) *Machine {
	t.Helper()
	m, err := NewMachine(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// kinds renders actions compactly for comparison.
func kinds(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, "; ")
}

func expect(t *testing.T, m *Machine, want string) {
	t.Helper()
	if got := kinds(m.Ready()); got != want {
		t.Fatalf("actions:\n got %s\nwant %s", got, want)
	}
}

func expectDeadline(t *testing.T, m *Machine, want time.Time) {
	t.Helper()
	d, ok := m.NextDeadline()
	if !ok || !d.Equal(want) {
		t.Fatalf("NextDeadline = %v (%v), want +%v", d.Sub(t0), ok, want.Sub(t0))
	}
}

// advert is what peer at src with priority prio sends for m's instance.
func advert(m *Machine, prio uint8) *Packet {
	p := m.Advert(prio)
	return &p
}

func step(t *testing.T, m *Machine, now time.Time, p *Packet, src string) {
	t.Helper()
	if err := m.Step(now, p, ip(src)); err != nil {
		t.Fatalf("Step: %v", err)
	}
}

const (
	becomeMaster = "add-vips accept=false; send-advert priority %d; garp x5; notify MASTER"
)

func TestStartupAsOwner(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 255))
	m.Start(t0)
	expect(t, m, "add-vips accept=true; send-advert priority 255; garp x5; notify MASTER")
	if m.State() != StateMaster {
		t.Fatalf("state %v", m.State())
	}
	if a, p := m.Master(); a != ip("10.0.0.1") || p != 255 {
		t.Fatalf("Master() = %v %d", a, p)
	}
	expectDeadline(t, m, at(time.Second))
	m.Tick(at(time.Second))
	expect(t, m, "send-advert priority 255")
	expectDeadline(t, m, at(2*time.Second))
	// The owner ignores track weights.
	m.SetPriorityDelta(at(time.Second), -50)
	if m.Priority() != 255 {
		t.Fatalf("owner priority %d", m.Priority())
	}
}

func TestStartupBackupThenMaster(t *testing.T) {
	m := newM(t, cfg4("10.0.0.2", 100))
	m.Start(t0)
	expect(t, m, "notify BACKUP")
	// Master_Down_Interval = 3 * 1 s + (256-100)/256 s = 3.609375 s.
	mdi := 3*time.Second + 609375*time.Microsecond
	if m.MasterDownInterval() != mdi || m.SkewTime() != 609375*time.Microsecond {
		t.Fatalf("MDI %v skew %v", m.MasterDownInterval(), m.SkewTime())
	}
	expectDeadline(t, m, at(mdi))
	// A master's adverts keep it backup.
	peer := advert(m, 200)
	step(t, m, at(time.Second), peer, "10.0.0.9")
	expectDeadline(t, m, at(time.Second+mdi))
	if a, p := m.Master(); a != ip("10.0.0.9") || p != 200 {
		t.Fatalf("Master() = %v %d", a, p)
	}
	m.Tick(at(mdi)) // early: nothing
	expect(t, m, "")
	m.Tick(at(time.Second + mdi))
	expect(t, m, "log master down timer expired; "+fmt.Sprintf(becomeMaster, 100))
	expectDeadline(t, m, at(time.Second+mdi+time.Second))
	if s := m.Stats(); s.BecameMaster != 1 || s.AdvertsSent != 1 || s.AdvertsReceived != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStartAsMaster(t *testing.T) {
	c := cfg4("10.0.0.2", 100)
	c.StartAsMaster = true
	m := newM(t, c)
	m.Start(t0)
	expectDeadline(t, m, at(time.Second+609375*time.Microsecond))
}

func TestPreemption(t *testing.T) {
	// A higher priority backup discards a lower priority master's adverts
	// and takes over when its Master_Down_Timer runs out.
	b := newM(t, cfg4("10.0.0.2", 150))
	b.Start(t0)
	b.Ready()
	low := advert(b, 100)
	for i := range 3 {
		step(t, b, at(time.Duration(i)*time.Second), low, "10.0.0.1")
	}
	mdi := 3*time.Second + 106*time.Second/256
	expectDeadline(t, b, at(mdi)) // not moved by the discarded adverts
	b.Tick(at(mdi))
	if b.State() != StateMaster {
		t.Fatalf("state %v", b.State())
	}

	// The lower priority master hears it and becomes backup.
	m := newM(t, cfg4("10.0.0.1", 100))
	m.Start(t0)
	m.Tick(at(m.MasterDownInterval()))
	m.Ready()
	now := at(10 * time.Second)
	step(t, m, now, advert(m, 150), "10.0.0.2")
	expect(t, m, "log higher priority advert received from 10.0.0.2 priority 150; remove-vips accept=false; notify BACKUP")
	expectDeadline(t, m, now.Add(m.MasterDownInterval()))
	if s := m.Stats(); s.ReleasedMaster != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNoPreempt(t *testing.T) {
	c := cfg4("10.0.0.2", 150)
	c.NoPreempt = true
	b := newM(t, c)
	b.Start(t0)
	low := advert(b, 100)
	for i := range 30 {
		now := at(time.Duration(i) * time.Second)
		b.Tick(now)
		step(t, b, now, low, "10.0.0.1")
	}
	if b.State() != StateBackup {
		t.Fatalf("nopreempt backup preempted: %v", b.State())
	}
	// It still takes over when the master goes silent.
	b.Tick(at(29*time.Second + b.MasterDownInterval()))
	if b.State() != StateMaster {
		t.Fatalf("state %v", b.State())
	}
}

func TestPreemptDelay(t *testing.T) {
	c := cfg4("10.0.0.2", 150)
	c.PreemptDelay = 10 * time.Second
	b := newM(t, c)
	b.Start(t0) // preempt delay runs from startup (keepalived)
	low := advert(b, 100)
	mdi := b.MasterDownInterval()
	var last time.Time
	for i := range 20 {
		now := at(time.Duration(i)*time.Second + 500*time.Millisecond)
		b.Tick(now)
		if b.State() != StateBackup {
			break
		}
		step(t, b, now, low, "10.0.0.1")
		if d, _ := b.NextDeadline(); d.Equal(now.Add(mdi)) {
			last = now
		}
	}
	// Adverts are accepted while the delay runs (until +10 s), then
	// discarded; the backup preempts one Master_Down_Interval after the last
	// accepted one, at 9.5 s.
	if !last.Equal(at(9500 * time.Millisecond)) {
		t.Fatalf("last accepted advert at +%v", last.Sub(t0))
	}
	if b.State() != StateMaster {
		t.Fatalf("state %v", b.State())
	}
	if s := b.Stats(); s.BecameMaster != 1 {
		t.Fatalf("stats %+v", s)
	}

	// Hearing a higher priority master stops the delay; a lower priority one
	// then starts it anew.
	b = newM(t, c)
	b.Start(t0)
	step(t, b, at(20*time.Second), advert(b, 200), "10.0.0.9")
	step(t, b, at(21*time.Second), low, "10.0.0.1")
	as := b.Ready()
	if got := as[len(as)-1]; got.Event != EventPreemptDelay || got.Interval != 10*time.Second {
		t.Fatalf("last action %v", got)
	}
	step(t, b, at(30*time.Second+999*time.Millisecond), low, "10.0.0.1")
	expectDeadline(t, b, at(30*time.Second+999*time.Millisecond).Add(mdi))
	step(t, b, at(31*time.Second), low, "10.0.0.1") // delay over: discarded
	expectDeadline(t, b, at(30*time.Second+999*time.Millisecond).Add(mdi))
}

func TestPriorityZeroTakeover(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		advInt  uint16 // the master's interval, in the version's units
		prio    uint8
		skew    time.Duration
	}{
		// v2: (256-100)/256 s.
		{"v2", V2, 1, 100, 609375 * time.Microsecond},
		{"v2 prio 254", V2, 1, 254, 7812500 * time.Nanosecond},
		// v3: (256-100) * Master_Adver_Interval / 256, with the learned 2 s.
		{"v3 learned 2s", V3, 200, 100, 1218750 * time.Microsecond},
		{"v3 1s prio 200", V3, 100, 200, 218750 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg4("10.0.0.2", tt.prio)
			c.Version = tt.version
			b := newM(t, c)
			b.Start(t0)
			b.Ready()
			p := advert(b, 250)
			p.AdverInt = tt.advInt
			step(t, b, at(time.Second), p, "10.0.0.9")
			p.Priority = 0
			now := at(2 * time.Second)
			step(t, b, now, p, "10.0.0.9")
			if b.SkewTime() != tt.skew {
				t.Fatalf("skew %v, want %v", b.SkewTime(), tt.skew)
			}
			expectDeadline(t, b, now.Add(tt.skew))
			b.Tick(now.Add(tt.skew - time.Nanosecond))
			if b.State() != StateBackup {
				t.Fatal("took over before Skew_Time")
			}
			b.Tick(now.Add(tt.skew))
			if b.State() != StateMaster {
				t.Fatal("did not take over at Skew_Time")
			}
			if s := b.Stats(); s.PriorityZeroReceived != 1 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestMasterHearsPriorityZero(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 255))
	m.Start(t0)
	m.Ready()
	step(t, m, at(300*time.Millisecond), advert(m, 0), "10.0.0.2")
	expect(t, m, "log priority 0 advert received from 10.0.0.2 priority 0; send-advert priority 255")
	expectDeadline(t, m, at(1300*time.Millisecond)) // Adver_Timer reset
}

func TestEqualPriorityTieBreak(t *testing.T) {
	master := func(addr string) *Machine {
		m := newM(t, cfg4(addr, 100))
		m.Start(t0)
		m.Tick(at(m.MasterDownInterval()))
		m.Ready()
		return m
	}
	// The lower address yields to the higher one.
	lo := master("10.0.0.1")
	step(t, lo, at(5*time.Second), advert(lo, 100), "10.0.0.2")
	if lo.State() != StateBackup {
		t.Fatalf("lower address stayed %v", lo.State())
	}
	// The higher address stays master, counts a split brain and answers at
	// once (keepalived's "forcing new election").
	hi := master("10.0.0.2")
	step(t, hi, at(5*time.Second), advert(hi, 100), "10.0.0.1")
	if hi.State() != StateMaster || hi.Stats().SplitBrain != 1 {
		t.Fatalf("higher address: %v %+v", hi.State(), hi.Stats())
	}
	expect(t, hi, "log lower priority master (split brain) from 10.0.0.1 priority 100; send-advert priority 100")
	// Address comparison is numeric, not textual.
	c := cfg4("10.0.0.9", 100)
	m := newM(t, c)
	m.Start(t0)
	m.Tick(at(m.MasterDownInterval()))
	step(t, m, at(5*time.Second), advert(m, 100), "10.0.0.10")
	if m.State() != StateBackup {
		t.Fatalf("10.0.0.9 vs 10.0.0.10: %v", m.State())
	}
}

func TestSplitBrainCounter(t *testing.T) {
	c := cfg4("10.0.0.1", 200)
	c.LowerPrioNoAdvert = true
	m := newM(t, c)
	m.Start(t0)
	m.Tick(at(m.MasterDownInterval()))
	m.Ready()
	for i := range 3 {
		step(t, m, at(time.Duration(10+i)*time.Second), advert(m, 100), "10.0.0.2")
	}
	if m.State() != StateMaster || m.Stats().SplitBrain != 3 {
		t.Fatalf("%v %+v", m.State(), m.Stats())
	}
	for _, a := range m.Ready() {
		if a.Kind == ActSendAdvert {
			t.Fatal("lower_prio_no_advert sent an advert")
		}
	}
}

func TestOwnerConflict(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 255))
	m.Start(t0)
	m.Ready()
	step(t, m, at(time.Second/2), advert(m, 255), "10.0.0.2")
	expect(t, m, "log another address owner from 10.0.0.2 priority 255")
	if m.State() != StateMaster {
		t.Fatal("owner stepped down")
	}
}

func TestV3IntervalLearning(t *testing.T) {
	c := cfg4("10.0.0.2", 100)
	c.Version = V3
	c.Interval = 500 * time.Millisecond
	b := newM(t, c)
	b.Start(t0)
	b.Ready()
	if b.MasterAdverInterval() != 500*time.Millisecond {
		t.Fatal("initial Master_Adver_Interval")
	}
	p := advert(b, 200)
	p.AdverInt = 200 // the master advertises every 2 s
	step(t, b, at(time.Second), p, "10.0.0.9")
	expect(t, b, "log advertisement interval learned from 10.0.0.9 priority 200 2s")
	// 3 * 2 s + 156 * 2 s / 256 = 7.21875 s.
	expectDeadline(t, b, at(time.Second+7218750*time.Microsecond))
	// Our own adverts keep our configured interval.
	b.Tick(at(time.Second + 7218750*time.Microsecond))
	if own := b.Advert(100); own.Interval() != 500*time.Millisecond {
		got := own.Interval()
		t.Fatalf("own interval %v", got)
	}
	expectDeadline(t, b, at(time.Second+7218750*time.Microsecond+500*time.Millisecond))

	// A master that yields learns the new master's interval too.
	p.AdverInt = 100
	step(t, b, at(20*time.Second), p, "10.0.0.9")
	if b.State() != StateBackup || b.MasterAdverInterval() != time.Second {
		t.Fatalf("%v %v", b.State(), b.MasterAdverInterval())
	}

	// VRRPv2 does not learn: a different interval is dropped.
	v2 := newM(t, cfg4("10.0.0.2", 100))
	v2.Start(t0)
	q := advert(v2, 200)
	q.AdverInt = 2
	if err := v2.Step(at(time.Second), q, ip("10.0.0.9")); err != ErrInterval {
		t.Fatalf("v2 interval mismatch: %v", err)
	}
}

func TestFaultFromTracking(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 100))
	m.SetFault(t0, "eth0", true) // before Start: remembered
	m.Start(t0)
	expect(t, m, "log fault: eth0; notify FAULT")
	if _, ok := m.NextDeadline(); ok {
		t.Fatal("deadline in fault")
	}
	// Adverts are ignored in fault.
	step(t, m, at(time.Second), advert(m, 0), "10.0.0.2")
	m.SetFault(at(2*time.Second), "eth0", false)
	expect(t, m, "log fault cleared: eth0; notify BACKUP")
	m.Tick(at(2*time.Second + m.MasterDownInterval()))
	m.Ready()

	// A master going to fault says goodbye.
	m.SetFault(at(10*time.Second), "chk_haproxy", true)
	m.SetFault(at(10*time.Second), "eth1", true)
	expect(t, m, "log fault: chk_haproxy; send-advert priority 0; remove-vips accept=false; notify FAULT; log fault: eth1")
	m.SetFault(at(11*time.Second), "chk_haproxy", false)
	if m.State() != StateFault {
		t.Fatal("left fault with a source still down")
	}
	m.SetFault(at(11*time.Second), "chk_haproxy", false) // repeated: no-op
	m.SetFault(at(12*time.Second), "eth1", false)
	if m.State() != StateBackup {
		t.Fatalf("state %v", m.State())
	}
	if s := m.Stats(); s.PriorityZeroSent != 1 {
		t.Fatalf("stats %+v", s)
	}

	// The owner leaves fault as master.
	o := newM(t, cfg4("10.0.0.1", 255))
	o.Start(t0)
	o.SetFault(t0, "eth0", true)
	o.SetFault(at(time.Second), "eth0", false)
	if o.State() != StateMaster {
		t.Fatalf("owner state %v", o.State())
	}
}

func TestTrackWeights(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 100))
	m.Start(t0)
	m.Tick(at(m.MasterDownInterval()))
	m.Ready()
	m.SetPriorityDelta(at(5*time.Second), -60)
	expect(t, m, "log priority changed to 40")
	d, _ := m.NextDeadline()
	m.Tick(d)
	expect(t, m, "send-advert priority 40")
	for delta, want := range map[int]uint8{-200: 1, 0: 100, 154: 254, 500: 254} {
		m.SetPriorityDelta(d, delta)
		if m.Priority() != want {
			t.Errorf("delta %d: priority %d, want %d", delta, m.Priority(), want)
		}
	}
	// A backup's skew follows its effective priority.
	b := newM(t, cfg4("10.0.0.2", 100))
	b.SetPriorityDelta(t0, 28)
	if b.SkewTime() != 500*time.Millisecond {
		t.Fatalf("skew at priority 128: %v", b.SkewTime())
	}
}

func TestGARPScheduling(t *testing.T) {
	type ev struct {
		at time.Duration
		s  string
	}
	run := func(c Config, until time.Duration) []ev {
		m := newM(t, c)
		m.Start(t0)
		var evs []ev
		now := t0
		for {
			for _, a := range m.Ready() {
				if a.Kind == ActGARP {
					evs = append(evs, ev{now.Sub(t0), a.String()})
				}
			}
			d, ok := m.NextDeadline()
			if !ok || d.After(at(until)) {
				return evs
			}
			now = d
			m.Tick(now)
		}
	}
	c := cfg4("10.0.0.1", 255)
	want := []ev{{0, "garp x5"}, {5 * time.Second, "garp x5"}, {60 * time.Second, "garp x1"}, {120 * time.Second, "garp x1"}}
	if got := run(c, 150*time.Second); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults: %v, want %v", got, want)
	}
	c.GARPMasterDelay, c.GARPMasterRepeat = 2*time.Second, 3
	c.GARPMasterRefresh, c.GARPRefreshRepeat = 30*time.Second, 2
	want = []ev{{0, "garp x3"}, {2 * time.Second, "garp x3"}, {30 * time.Second, "garp x2"}, {60 * time.Second, "garp x2"}}
	if got := run(c, 60*time.Second); !reflect.DeepEqual(got, want) {
		t.Errorf("tuned: %v, want %v", got, want)
	}
	c.GARPMasterDelay, c.GARPMasterRefresh = -1, -1
	want = []ev{{0, "garp x3"}}
	if got := run(c, 300*time.Second); !reflect.DeepEqual(got, want) {
		t.Errorf("disabled: %v, want %v", got, want)
	}
	// A late Tick does not burst: the timers restart from now.
	m := newM(t, cfg4("10.0.0.1", 255))
	m.Start(t0)
	m.Ready()
	m.Tick(at(10*time.Second + ms(300)))
	expect(t, m, "send-advert priority 255; garp x5")
	expectDeadline(t, m, at(11*time.Second+ms(300)))
}

func TestShutdown(t *testing.T) {
	m := newM(t, cfg4("10.0.0.1", 255))
	m.Start(t0)
	m.Ready()
	m.Shutdown(at(time.Second))
	expect(t, m, "send-advert priority 0; remove-vips accept=true; notify INIT")
	if _, ok := m.NextDeadline(); ok {
		t.Fatal("deadline after shutdown")
	}
	m.Shutdown(at(time.Second))
	expect(t, m, "")
	m.Start(at(2 * time.Second)) // restartable
	if m.State() != StateMaster {
		t.Fatal(m.State())
	}
	b := newM(t, cfg4("10.0.0.2", 100))
	b.Start(t0)
	b.Ready()
	b.Shutdown(t0)
	expect(t, b, "notify INIT")
}

func TestStepRejects(t *testing.T) {
	c := cfg4("10.0.0.2", 100)
	c.AuthType, c.AuthPass = AuthSimple, "secret"
	m := newM(t, c)
	m.Start(t0)
	good := advert(m, 100)
	mod := func(f func(p *Packet)) *Packet { p := *good; f(&p); return &p }
	tests := []struct {
		name string
		p    *Packet
		src  string
		want error
	}{
		{"vrid", mod(func(p *Packet) { p.VRID = 52 }), "10.0.0.9", ErrVRID},
		{"version", mod(func(p *Packet) { p.Version = V3 }), "10.0.0.9", ErrVersion},
		{"family", good, "fe80::9", ErrAddrFamily},
		{"own", good, "10.0.0.2", ErrOwnAdvert},
		{"auth type", mod(func(p *Packet) { p.AuthType = AuthNone }), "10.0.0.9", ErrAuthMismatch},
		{"password", mod(func(p *Packet) { p.AuthData[0] = 'S' }), "10.0.0.9", ErrAuthFailure},
		{"interval", mod(func(p *Packet) { p.AdverInt = 3 }), "10.0.0.9", ErrInterval},
	}
	for _, tt := range tests {
		if err := m.Step(at(time.Second), tt.p, ip(tt.src)); err != tt.want {
			t.Errorf("%s: Step = %v, want %v", tt.name, err, tt.want)
		}
	}
	s := m.Stats()
	if s.AdvertsReceived != 0 || s.Dropped[ReasonVRID] != 1 || s.Dropped[ReasonAuthFailure] != 1 {
		t.Fatalf("stats %+v", s)
	}
	if err := m.Step(at(time.Second), good, ip("::ffff:10.0.0.9")); err != nil {
		t.Fatalf("good advert from a mapped address: %v", err)
	}
}

func TestAddrListMismatch(t *testing.T) {
	c := cfg4("10.0.0.2", 100)
	m := newM(t, c)
	m.Start(t0)
	m.Ready()
	other := advert(m, 200)
	other.Addrs = []netip.Addr{ip("10.0.0.101")}
	// RFC: logged once, counted, but processed.
	step(t, m, at(time.Second), other, "10.0.0.9")
	step(t, m, at(2*time.Second), other, "10.0.0.9")
	expect(t, m, "log address list mismatch from 10.0.0.9 priority 200")
	expectDeadline(t, m, at(2*time.Second).Add(m.MasterDownInterval()))
	if m.Stats().AddrListMismatch != 2 {
		t.Fatalf("stats %+v", m.Stats())
	}
	// Same addresses in another order match.
	c.VIPs = []netip.Addr{ip("10.0.0.100"), ip("10.0.0.101")}
	m = newM(t, c)
	m.Start(t0)
	p := advert(m, 200)
	p.Addrs = []netip.Addr{ip("10.0.0.101"), ip("10.0.0.100")}
	step(t, m, at(time.Second), p, "10.0.0.9")
	if m.Stats().AddrListMismatch != 0 {
		t.Fatal("order matters")
	}
	// keepalived's strictness on demand.
	c.StrictAddrCheck = true
	m = newM(t, c)
	m.Start(t0)
	if err := m.Step(at(time.Second), other, ip("10.0.0.9")); err != ErrAddrList {
		t.Fatalf("strict: %v", err)
	}
}

func TestNewMachineRejects(t *testing.T) {
	ok := cfg4("10.0.0.1", 100)
	tests := []struct {
		name string
		f    func(c *Config)
	}{
		{"vrid 0", func(c *Config) { c.VRID = 0 }},
		{"version", func(c *Config) { c.Version = 4 }},
		{"v2 fractional interval", func(c *Config) { c.Interval = 1500 * time.Millisecond }},
		{"v2 interval too long", func(c *Config) { c.Interval = 256 * time.Second }},
		{"v3 interval not centiseconds", func(c *Config) { c.Version = V3; c.Interval = 15 * time.Millisecond }},
		{"v3 interval too long", func(c *Config) { c.Version = V3; c.Interval = 41 * time.Second }},
		{"v3 auth", func(c *Config) { c.Version = V3; c.AuthType = AuthSimple }},
		{"no primary", func(c *Config) { c.PrimaryIP = netip.Addr{} }},
		{"v2 ipv6", func(c *Config) { c.PrimaryIP = ip("fe80::1"); c.VIPs = []netip.Addr{ip("fe80::100")} }},
		{"mixed vips", func(c *Config) { c.VIPs = append(c.VIPs, ip("fe80::100")) }},
		{"long password", func(c *Config) { c.AuthType, c.AuthPass = AuthSimple, "123456789" }},
		{"auth type 3", func(c *Config) { c.AuthType = 3 }},
		{"AH long password", func(c *Config) { c.AuthType, c.AuthPass = AuthAH, "123456789" }},
		{"negative preempt delay", func(c *Config) { c.PreemptDelay = -1 }},
	}
	for _, tt := range tests {
		c := ok
		c.VIPs = append([]netip.Addr(nil), ok.VIPs...)
		tt.f(&c)
		if _, err := NewMachine(c); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	m := newM(t, Config{VRID: 1, PrimaryIP: ip("fe80::1"), Version: V3, VIPs: []netip.Addr{ip("2001:db8::1")}})
	c := m.Config()
	if c.Priority != 100 || c.Interval != time.Second || c.GARPMasterRefresh != time.Minute || c.GARPMasterRepeat != 5 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestStrings(t *testing.T) {
	if StateFault.String() != "FAULT" || State(9).String() != "UNKNOWN" {
		t.Error("State.String")
	}
	if ActGARP.String() != "garp" || ActionKind(0).String() != "unknown" {
		t.Error("ActionKind.String")
	}
	if EventSplitBrain.String() == "none" || Event(99).String() != "none" {
		t.Error("Event.String")
	}
	if (Action{}).String() != "unknown action" {
		t.Error("Action.String")
	}
}

// vrrp_garp_interval: the messages of each burst are spaced, VIP after VIP
// and then again (keepalived's order); a burst due while one is still
// going waits behind it; leaving MASTER drops what is left.
func TestGARPInterval(t *testing.T) {
	c := cfg4("10.0.0.2", 255)
	c.VIPs = []netip.Addr{ip("10.0.0.100"), ip("10.0.0.101")}
	c.GARPMasterRepeat, c.GARPMasterDelay, c.GARPMasterRefresh = 2, 500*time.Millisecond, -1
	c.GARPInterval = 200 * time.Millisecond
	c.GNAInterval = time.Hour // the other family's: unused
	m := newM(t, c)
	m.Start(t0)
	expect(t, m, "add-vips accept=true; send-advert priority 255; garp 10.0.0.100; notify MASTER")
	expectDeadline(t, m, at(ms(200)))
	m.Tick(at(ms(200)))
	expect(t, m, "garp 10.0.0.101")
	m.Tick(at(ms(400)))
	expect(t, m, "garp 10.0.0.100")
	// The second burst (garp_master_delay 500ms) queues behind the first.
	m.Tick(at(ms(500)))
	expect(t, m, "")
	expectDeadline(t, m, at(ms(600)))
	var got []string
	for now := ms(600); now <= ms(1600); now += ms(200) {
		m.Tick(at(now))
		got = append(got, kinds(m.Ready()))
	}
	want := []string{"garp 10.0.0.101", "garp 10.0.0.100", "send-advert priority 255; garp 10.0.0.101", "garp 10.0.0.100", "garp 10.0.0.101", ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("spaced bursts:\n got %q\nwant %q", got, want)
	}
	expectDeadline(t, m, at(2*time.Second)) // only the advert timer is left

	// Leaving MASTER drops the rest of a burst.
	m.garp(at(2*time.Second), 5)
	m.Ready()
	m.SetFault(at(2*time.Second), "interface eth0", true)
	m.Ready()
	if _, ok := m.NextDeadline(); ok || m.announceLeft != 0 {
		t.Fatalf("a burst survives FAULT: %d left", m.announceLeft)
	}
}

// gna_interval spaces IPv6 bursts; without an interval a burst is one
// action, as before.
func TestGNAInterval(t *testing.T) {
	c := Config{VRID: 1, Version: V3, Priority: 255, PrimaryIP: ip("fe80::1"), VIPs: []netip.Addr{ip("2001:db8::1")},
		GARPMasterRepeat: 2, GARPMasterDelay: -1, GARPMasterRefresh: -1, GNAInterval: ms(30), GARPInterval: time.Hour}
	m := newM(t, c)
	m.Start(t0)
	expect(t, m, "add-vips accept=true; send-advert priority 255; garp 2001:db8::1; notify MASTER")
	m.Tick(at(ms(30)))
	expect(t, m, "garp 2001:db8::1")
	c.GNAInterval = 0
	m = newM(t, c)
	m.Start(t0)
	expect(t, m, "add-vips accept=true; send-advert priority 255; garp x2; notify MASTER")
	if _, err := NewMachine(Config{VRID: 1, PrimaryIP: ip("10.0.0.1"), GARPInterval: -1}); err == nil {
		t.Fatal("negative interval accepted")
	}
}
