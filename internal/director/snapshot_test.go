package director

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/desired"
)

// recordingDataplane serves snapshots in memory: serving is the last one
// committed or applied. failPrepare and failCommit make the next reload's
// step fail.
type recordingDataplane struct {
	NullDataplane
	mu          sync.Mutex
	serving     *Snapshot
	commits     []*Snapshot
	failPrepare error
	failCommit  error
}

type recordingTx struct {
	dp *recordingDataplane
	s  *Snapshot
}

func (r *recordingDataplane) Prepare(s *Snapshot) (Transaction, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failPrepare != nil {
		return nil, r.failPrepare
	}
	return &recordingTx{r, s}, nil
}

func (tx *recordingTx) Commit() error {
	tx.dp.mu.Lock()
	defer tx.dp.mu.Unlock()
	if tx.dp.failCommit != nil {
		return tx.dp.failCommit
	}
	tx.dp.serving = tx.s
	tx.dp.commits = append(tx.dp.commits, tx.s)
	return nil
}

func (*recordingTx) Abort() {}

func (r *recordingDataplane) Apply(s *Snapshot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serving = s
	return nil
}

// keys lists what the dataplane serves: "key rs,rs".
func (r *recordingDataplane) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if r.serving == nil {
		return nil
	}
	for _, e := range r.serving.Services {
		k := e.Desired.Key
		for i, rs := range e.Desired.Reals {
			if i == 0 {
				k += " "
			} else {
				k += ","
			}
			k += rs.Addr.String()
		}
		out = append(out, k)
	}
	return out
}

func mustParse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const snapOne = `virtual_servers:
  - address: 127.0.0.1:80
    scheduler: rr
    real_servers:
      - address: 127.0.0.1:8080
`

const snapTwo = `virtual_servers:
  - address: 127.0.0.1:80
    scheduler: wrr
    real_servers:
      - address: 127.0.0.1:8080
        weight: 3
      - address: 127.0.0.1:8081
  - address: 10.0.0.1:81
    forwarding: nat
    real_servers:
      - address: 10.0.1.1:9090
`

// TestApplyRollsBackOnCommitFailure: a reload whose dataplane commit
// fails is returned as Apply's error and changes nothing: the director's
// table, configuration and schedulers are the previous ones, and so is
// what the dataplane serves, also after later health decisions publish.
func TestApplyRollsBackOnCommitFailure(t *testing.T) {
	for _, step := range []string{"prepare", "commit"} {
		t.Run(step, func(t *testing.T) {
			dp := &recordingDataplane{}
			d := New(healthLog(), dp)
			t.Cleanup(func() { d.Shutdown(time.Second) })
			first := mustParse(t, snapOne)
			if err := d.Apply(first); err != nil {
				t.Fatal(err)
			}
			want := []string{"tcp/127.0.0.1:80 127.0.0.1:8080"}
			if got := dp.keys(); !equal(got, want) {
				t.Fatalf("serving %v, want %v", got, want)
			}
			vs := d.Service("tcp/127.0.0.1:80")
			sch := vs.Settings().Scheduler

			boom := errors.New("netlink: no buffer space")
			dp.mu.Lock()
			if step == "prepare" {
				dp.failPrepare = boom
			} else {
				dp.failCommit = boom
			}
			dp.mu.Unlock()
			if err := d.Apply(mustParse(t, snapTwo)); !errors.Is(err, boom) {
				t.Fatalf("Apply = %v, want the dataplane's error", err)
			}
			if d.Config() != first || len(d.Services()) != 1 || d.Service("tcp/10.0.0.1:81") != nil {
				t.Fatalf("the director changed: %d services", len(d.Services()))
			}
			if vs.Settings().Scheduler != sch || vs.Settings().SchedulerName != "rr" || len(vs.RealServers()) != 1 {
				t.Fatalf("the service changed: %s, %d real servers", vs.Settings().SchedulerName, len(vs.RealServers()))
			}
			if w := vs.Desired(); len(w.Reals) != 1 || w.Scheduler.Name != "rr" {
				t.Fatalf("the desired state changed: %+v", w)
			}
			// A health decision publishes the state in force, not the
			// failed reload's.
			_ = d.SetDrain(vs.Key, netip.MustParseAddrPort("127.0.0.1:8080"), true)
			_ = d.SetDrain(vs.Key, netip.MustParseAddrPort("127.0.0.1:8080"), false)
			waitApplied(t, dp, func(s *Snapshot) bool {
				return len(s.Services) == 1 && s.Services[0].Desired.Reals[0].Available
			})
			if got := dp.keys(); !equal(got, want) {
				t.Fatalf("serving %v after the failed reload, want %v", got, want)
			}
			// The next reload that succeeds takes effect whole.
			dp.mu.Lock()
			dp.failPrepare, dp.failCommit = nil, nil
			dp.mu.Unlock()
			if err := d.Apply(mustParse(t, snapTwo)); err != nil {
				t.Fatal(err)
			}
			want = []string{"tcp/127.0.0.1:80 127.0.0.1:8080,127.0.0.1:8081", "tcp/10.0.0.1:81 10.0.1.1:9090"}
			if got := dp.keys(); !equal(got, want) {
				t.Fatalf("serving %v, want %v", got, want)
			}
			if vs.Settings().SchedulerName != "wrr" || len(vs.RealServers()) != 2 {
				t.Fatalf("the reload did not apply")
			}
		})
	}
}

// TestSnapshotFollowsHealth: the snapshot a reload commits is the
// preview of the health machine's decision (the weights and set the
// director then applies), and a health decision publishes a new one.
func TestSnapshotFollowsHealth(t *testing.T) {
	dp := &recordingDataplane{}
	d := New(healthLog(), dp)
	t.Cleanup(func() { d.Shutdown(time.Second) })
	if err := d.Apply(mustParse(t, snapOne)); err != nil {
		t.Fatal(err)
	}
	vs := d.Service("tcp/127.0.0.1:80")
	rs := netip.MustParseAddrPort("127.0.0.1:8080")
	if err := d.SetDrain(vs.Key, rs, true); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, dp, func(s *Snapshot) bool { return !s.Services[0].Desired.Reals[0].Available })
	// A reload keeps the drain: the preview it commits says so already,
	// and a new real server takes its configured weight.
	if err := d.Apply(mustParse(t, snapTwo)); err != nil {
		t.Fatal(err)
	}
	dp.mu.Lock()
	committed := dp.commits[len(dp.commits)-1]
	dp.mu.Unlock()
	r := committed.Services[0].Desired.Reals
	if r[0].Available || r[0].Weight != 0 || r[0].LastWeight != 1 || !r[1].Available || r[1].Weight != 1 || !r[1].InSet {
		t.Fatalf("the committed preview: %+v", r)
	}
	// And the table agrees with what the dataplanes were told.
	waitApplied(t, dp, func(s *Snapshot) bool { return len(s.Services) == 2 })
	w := vs.Desired()
	for i, r := range vs.RealServers() {
		if w.Reals[i].Weight != r.Dest.Weight() || w.Reals[i].Available != r.Dest.Available() {
			t.Fatalf("real server %s: desired %+v, running weight %d", r.Addr, w.Reals[i], r.Dest.Weight())
		}
	}
	if w.Scheduler.Name != "wrr" || w.Forwarding != desired.Proxy {
		t.Fatalf("desired %+v", w)
	}
}

func waitApplied(t *testing.T, dp *recordingDataplane, ok func(*Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		dp.mu.Lock()
		s := dp.serving
		dp.mu.Unlock()
		if s != nil && ok(s) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the dataplane was not given the expected snapshot")
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
