package agent

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/health"
)

func TestParsers(t *testing.T) {
	total, idle, ncpu, err := ParseStat([]byte("cpu  100 5 20 800 50 1 2 3 7 9\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\nintr 1\n"))
	// guest (7) and guest_nice (9) are already in user and nice.
	if err != nil || total != 100+5+20+800+50+1+2+3 || idle != 850 || ncpu != 2 {
		t.Errorf("ParseStat = %d %d %d %v", total, idle, ncpu, err)
	}
	if _, _, _, err := ParseStat([]byte("intr 1\n")); err == nil {
		t.Error("ParseStat without a cpu line: no error")
	}
	if l, err := ParseLoadavg([]byte("7.91 2.46 0.92 22/199 17112\n")); err != nil || l != 7.91 {
		t.Errorf("ParseLoadavg = %v %v", l, err)
	}
	if tot, av, err := ParseMeminfo([]byte("MemTotal:       24683664 kB\nMemFree:        22864612 kB\nMemAvailable:   23850068 kB\n")); err != nil || tot != 24683664 || av != 23850068 {
		t.Errorf("ParseMeminfo = %d %d %v", tot, av, err)
	}
	if _, _, err := ParseMeminfo([]byte("MemTotal: 5 kB\n")); err == nil {
		t.Error("ParseMeminfo without MemAvailable (kernel < 3.14): no error")
	}
	if p, err := ParsePressure([]byte("some avg10=98.16 avg60=60.96 avg300=21.32 total=88492837\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")); err != nil || p != 88492837 {
		t.Errorf("ParsePressure = %d %v", p, err)
	}
	d, err := ParseDiskstats([]byte("   7       0 loop0 5 0 0 0 0 0 0 0 0 77 0 0 0 0 0\n 259 0 nvme0n1 1 2 3 4 5 6 7 8 9 10 11\n 259 0 nvme0n1 1 2 3 4 5 6 7 8 9 123 11\n 259 1 nvme0n1p1 1 2 3 4 5 6 7 8 9 50 11\n   8 0 sda 1 2 3 4 5 6 7 8 9 42 11\n   8 1 sda1 1 2 3 4 5 6 7 8 9 41 11\n 253 0 dm-0 1 2 3 4 5 6 7 8 9 40 11\n"))
	if err != nil || len(d) != 2 || d["nvme0n1"] != 123 || d["sda"] != 42 {
		t.Errorf("ParseDiskstats = %v %v", d, err)
	}
	tcp := "  sl  local_address rem_address   st tx_queue ...\n" +
		"   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n" +
		"   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2\n" +
		"   2: 0100007F:1F90 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 3\n" +
		"   3: 0100007F:1F90 0100007F:9C42 06 00000000:00000000 00:00000000 00000000     0        0 4\n" +
		"   4: 0100007F:9C43 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 5\n"
	if n, err := CountEstablished([]byte(tcp), 8080); err != nil || n != 2 {
		t.Errorf("CountEstablished = %d %v, want 2 (listener, TIME_WAIT and the outgoing connection excluded)", n, err)
	}
	tcp6 := "  sl  local_address                         remote_address  st\n" +
		"   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 0\n"
	if n, err := CountEstablished([]byte(tcp6), 8080); err != nil || n != 1 {
		t.Errorf("CountEstablished tcp6 = %d %v", n, err)
	}
}

// sampleAt builds a Sample as Proc would read it from a fixture.
func readFixture(t *testing.T, dir string, f Fixture, at time.Time, port uint16) Sample {
	t.Helper()
	if err := f.Write(dir); err != nil {
		t.Fatal(err)
	}
	p := Proc{Root: dir, ServicePort: port}
	s, err := p.Sample(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEstimatorIdleBurnRecover(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f := Fixture{NCPU: 2, Load1: 0.1, MemTotalKB: 1000000, MemAvailKB: 800000, PSI: &[3]uint64{}}
	e := NewEstimator(10 * time.Second)
	step := func(busy float64) Figures {
		// One second on two CPUs is 200 jiffies.
		f.User += uint64(200 * busy)
		f.Idle += uint64(200 * (1 - busy))
		clock = clock.Add(time.Second)
		e.Observe(readFixture(t, dir, f, clock, 0))
		return e.Figures()
	}
	step(0.02)
	for range 5 {
		step(0.02)
	}
	if fg := e.Figures(); fg.Percent != 100 {
		t.Fatalf("idle box: %+v, want 100%%", fg)
	}
	// A step to full CPU: after Tau the smoothed busy share is 63% of the
	// way (0.02 + 0.98 × 0.632 = 0.639): headroom (1 − 0.639)/0.9 = 40%.
	var fg Figures
	for range 10 {
		fg = step(1)
	}
	if fg.Percent < 37 || fg.Percent > 43 {
		t.Errorf("after Tau at 100%% CPU: %d%%, want about 40%% (%+v)", fg.Percent, fg)
	}
	// The first second moves the weight by about 10%: no swing.
	for range 40 {
		fg = step(1)
	}
	if fg.Percent != MinPercent {
		t.Errorf("after 5 Tau at 100%% CPU: %d%%, want the floor %d%%", fg.Percent, MinPercent)
	}
	for range 40 {
		fg = step(0)
	}
	if fg.Percent != 100 {
		t.Errorf("after 4 Tau idle again: %d%%, want 100%%", fg.Percent)
	}
}

func TestWeightTerms(t *testing.T) {
	unknown := Figures{CPU: -1, Load: -1, Mem: -1, PSI: -1, IO: -1}
	cases := []struct {
		name string
		set  func(*Figures)
		want int
	}{
		{"nothing known", func(*Figures) {}, 100},
		{"cpu 55%", func(f *Figures) { f.CPU = 0.55 }, 50},
		{"load 1.5 per cpu", func(f *Figures) { f.Load = 1.5 }, 50},
		{"load 0.9 per cpu", func(f *Figures) { f.Load = 0.9 }, 100},
		{"memory 95% used", func(f *Figures) { f.Mem = 0.95 }, 50},
		{"psi 35%", func(f *Figures) { f.PSI = 0.35 }, 50},
		{"io 75%", func(f *Figures) { f.IO = 0.75 }, 50},
		{"scarcest wins", func(f *Figures) { f.CPU, f.Mem = 0.55, 0.98 }, 20},
		{"floor", func(f *Figures) { f.CPU = 1 }, 1},
	}
	for _, c := range cases {
		f := unknown
		c.set(&f)
		if got := Weight(f); got != c.want {
			t.Errorf("%s: Weight = %d, want %d", c.name, got, c.want)
		}
	}
}

// The director's parser reads every word the agent writes.
func TestReplyParsesOnDirector(t *testing.T) {
	f := Figures{CPU: 0.41, Load: 0.52, Mem: 0.634, PSI: 0.03, IO: 0, InFlight: 12, Latency: 4200 * time.Microsecond, Percent: 73}
	line := string(f.Reply(StateDrain))
	if line != "73% drain inflight:12 latency:4.2ms cpu:41 mem:63 load:0.52 psi:3 io:0" {
		t.Errorf("reply %q", line)
	}
	a := health.ParseAgent(line)
	if a.Percent != 73 || a.Admin != health.AdminDrain || a.InFlight != 12 || a.Latency != 4200*time.Microsecond ||
		a.CPU != 41 || a.Mem != 63 || a.LoadPerCPU != 0.52 || a.PSI != 3 || a.IO != 0 {
		t.Errorf("ParseAgent(%q) = %+v", line, a)
	}
	if strings.Count(line, "%") != 1 {
		t.Error("a word other than the weight has a '%': HAProxy would read it as a weight")
	}
	if a := health.ParseAgent(string(Figures{CPU: -1, Load: -1, Mem: -1, PSI: -1, IO: -1, InFlight: -1, Latency: -1, Percent: 100}.Reply(StateUp))); a.Percent != 100 ||
		a.Admin != health.AdminReady || a.CPU != -1 || a.LoadPerCPU != -1 {
		t.Errorf("bare reply parsed as %+v", a)
	}
}

func TestAllowed(t *testing.T) {
	a := netip.MustParseAddr
	if !Allowed(nil, a("127.0.0.1")) || !Allowed(nil, a("::1")) || !Allowed(nil, a("::ffff:127.0.0.2")) || Allowed(nil, a("10.0.0.1")) {
		t.Error("default must be loopback only")
	}
	allow := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	if !Allowed(allow, a("10.1.2.3")) || Allowed(allow, a("127.0.0.1")) || !Allowed(allow, a("::ffff:10.1.0.9")) {
		t.Error("--allow 10.1.0.0/16 misread")
	}
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

func TestServerStateFileAndAllow(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	f := Fixture{NCPU: 1, User: 10, Idle: 990, Load1: 0, MemTotalKB: 100, MemAvailKB: 90,
		Conns: []TCPConn{{8080, 10}, {8080, 1}, {8080, 1}, {9090, 1}}}
	if err := f.Write(proc); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Listen(ctx, Config{Listen: "127.0.0.1:0", ServicePort: 8080, ProcRoot: proc, StateFile: state, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	addr := s.Addr().String()
	if got := ask(t, addr); !strings.HasPrefix(got, "100% ready inflight:2 ") || !strings.HasSuffix(got, "\n") {
		t.Errorf("reply %q", got)
	}
	for _, st := range []State{StateDrain, StateMaint, StateUp} {
		if err := WriteStateFile(state, st); err != nil {
			t.Fatal(err)
		}
		want := map[State]string{StateDrain: " drain", StateMaint: " maint", StateUp: " ready"}[st]
		deadline := time.Now().Add(30 * time.Second) // generous: a loaded machine
		for !strings.Contains(ask(t, addr), want) {
			if time.Now().After(deadline) {
				t.Fatalf("state %s not answered: %q", st, ask(t, addr))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.WriteFile(state, []byte("sideways\n"), 0o644)
	time.Sleep(100 * time.Millisecond)
	if got := ask(t, addr); !strings.Contains(got, " ready") {
		t.Errorf("a bad state file changed the state: %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestServerRefusesStrangers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Listen(ctx, Config{Listen: "127.0.0.1:0", ProcRoot: t.TempDir(),
		Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ctx)
	// The reset may even beat the end of the client's connect.
	c, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if got, _ := bufio.NewReader(c).ReadString('\n'); got != "" {
		t.Errorf("a client outside --allow got %q", got)
	}
}
