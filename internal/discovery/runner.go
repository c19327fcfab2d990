package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/govs-lb/govs/internal/config"
	"github.com/govs-lb/govs/internal/director"
)

// Director is what the runner needs of the director: *director.Director.
type Director interface {
	SetDiscovered(key string, servers []*config.RealServer) error
	Service(key string) *director.VirtualService
}

// Runner runs the discovery block of every virtual service: one source and
// one Manager each, handing the Manager's decisions to the director.
type Runner struct {
	log *slog.Logger
	d   Director
	// newSource makes a block's source; tests may replace it.
	newSource func(dc *config.Discovery, log *slog.Logger) (Source, error)
	// idlePoll is how often draining servers are checked for connections.
	idlePoll time.Duration

	mu   sync.Mutex
	runs map[string]*run // by service key
}

type run struct {
	dc     config.Discovery
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status Status
	last   []Entry // the entries last handed to the director
}

// NewRunner returns a runner that feeds d. It runs nothing until Apply.
func NewRunner(log *slog.Logger, d Director) *Runner {
	return &Runner{log: log, d: d, newSource: NewSource, idlePoll: time.Second, runs: map[string]*run{}}
}

// Apply starts the sources of cfg's discovery blocks, stops those of
// blocks that went away and restarts those that changed. A restarted block
// starts from the set its previous source found, so a new source's first
// answer is subject to the same rules (a sudden drop is held).
func (r *Runner) Apply(cfg *config.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string]*config.VirtualServer{}
	for _, vs := range cfg.VirtualServers {
		if vs != nil && vs.Discovery != nil {
			want[vs.Key()] = vs
		}
	}
	for key, ru := range r.runs {
		vs := want[key]
		if vs != nil && reflect.DeepEqual(comparable(*vs.Discovery), comparable(ru.dc)) {
			ru.mu.Lock()
			ru.status.Service = vs.Name
			ru.mu.Unlock()
			delete(want, key)
			continue
		}
		ru.cancel()
		<-ru.done
		delete(r.runs, key)
		if vs == nil {
			// The block is gone: so are its servers.
			if err := r.d.SetDiscovered(key, nil); err != nil {
				r.log.Warn("discovery: removing discovered servers", "service", key, "err", err)
			}
			continue
		}
		r.start(vs, ru.last)
	}
	for _, vs := range want {
		r.start(vs, nil)
	}
}

// comparable is a block without its decoder positions.
func comparable(dc config.Discovery) config.Discovery {
	dc.Meta = config.Meta{}
	return dc
}

func (r *Runner) start(vs *config.VirtualServer, seed []Entry) {
	dc := *vs.Discovery
	key := vs.Key()
	log := r.log.With("service", vs.Name, "discovery", dc.Origin())
	ctx, cancel := context.WithCancel(context.Background())
	ru := &run{dc: dc, cancel: cancel, done: make(chan struct{}), status: Status{
		Service: vs.Name, Key: key, Type: dc.Type, Origin: dc.Origin(), FailPolicy: dc.FailPolicy, OK: true, Message: "starting"}}
	r.runs[key] = ru
	src, err := r.newSource(&dc, log)
	if err != nil {
		ru.status.OK, ru.status.LastError = false, err.Error()
		ru.status.Message = "cannot start: " + err.Error()
		log.Error("discovery source cannot start", "err", err)
		close(ru.done)
		return
	}
	if ks, ok := src.(*kubeSource); ok && !vs.Address.IsZero() {
		ks.family = vs.Address.Addr
	}
	go r.loop(ctx, ru, key, src, log, seed)
}

// PolicyOf returns the safety rules of a discovery block.
func PolicyOf(dc *config.Discovery) Policy {
	p := Policy{SetEmpty: dc.FailPolicy == config.FailSetEmpty, Confirm: dc.Confirm, ConfirmTime: dc.ConfirmTime.D(),
		Settle: dc.Settle.D(), Drain: dc.Drain.D(), Weight: 1}
	if dc.MaxDrop != nil {
		p.MaxDrop = float64(*dc.MaxDrop)
	}
	if dc.Weight != nil {
		p.Weight = *dc.Weight
	}
	return p
}

func (r *Runner) loop(ctx context.Context, ru *run, key string, src Source, log *slog.Logger, seed []Entry) {
	defer close(ru.done)
	updates := make(chan Update, 16)
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		src.Run(ctx, func(u Update) {
			select {
			case updates <- u:
			case <-ctx.Done():
			}
		})
	}()
	defer func() { <-srcDone }()
	m := NewManager(PolicyOf(&ru.dc), log)
	if len(seed) > 0 {
		m.Seed(time.Now(), seed)
	}
	origin := ru.dc.Origin()
	idle := func(a netip.AddrPort) bool {
		vs := r.d.Service(key)
		if vs == nil {
			return true
		}
		for _, rs := range vs.RealServers() {
			if rs.Addr == a {
				return rs.Dest.ActiveConns() == 0 && rs.Dest.InactiveConns() == 0
			}
		}
		return true
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	poll := time.NewTicker(r.idlePoll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			m.Observe(time.Now(), u)
		case <-timer.C:
		case <-poll.C:
		}
		now := time.Now()
		entries, apply := m.Tick(now, idle)
		var applyErr error
		if apply {
			applyErr = r.d.SetDiscovered(key, toConfig(entries, origin))
			m.Applied(now, applyErr)
			if applyErr != nil {
				log.Error("discovery: the director refused the discovered set", "err", applyErr)
			} else {
				log.Info("discovery: real servers updated", "servers", len(entries)-countDraining(entries), "draining", countDraining(entries))
			}
		}
		st := m.Status()
		ru.mu.Lock()
		st.Service, st.Key, st.Type, st.Origin, st.FailPolicy = ru.status.Service, ru.status.Key, ru.status.Type, ru.status.Origin, ru.status.FailPolicy
		ru.status = st
		if apply && applyErr == nil {
			ru.last = entries
		}
		ru.mu.Unlock()
		timer.Stop()
		if next := m.Next(); !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		} else {
			timer.Reset(time.Hour)
		}
	}
}

func countDraining(es []Entry) int {
	n := 0
	for _, e := range es {
		if e.Draining {
			n++
		}
	}
	return n
}

// toConfig turns entries into the director's real servers. The source's
// name goes to source_name, not name: name is the operator's label, unique
// in a service, and sources repeat names (a DNS host name's addresses, a
// file's entries) or reuse a written one's.
func toConfig(es []Entry, origin string) []*config.RealServer {
	out := make([]*config.RealServer, 0, len(es))
	for _, e := range es {
		w := e.Weight
		out = append(out, &config.RealServer{
			Address: config.Endpoint{Addr: e.Addr.Addr(), Port: e.Addr.Port(), HasPort: true},
			Weight:  &w, Origin: origin, SourceName: label(e.Name), Node: label(e.Node),
		})
	}
	return out
}

// maxLabel bounds a source's name as the API and the dashboard show it:
// Kubernetes names are at most 253 bytes, and a file or an etcd value may
// say anything.
const maxLabel = 253

// label is a source's name fit for the API, a log line or a terminal: no
// control characters (a name from a file or etcd value is anyone's text),
// at most maxLabel bytes, cut at a character.
func label(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) > maxLabel {
		cut := maxLabel
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// Status returns the state of every discovery block, by service key.
func (r *Runner) Status() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.runs))
	for _, ru := range r.runs {
		ru.mu.Lock()
		out = append(out, ru.status)
		ru.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Stop stops every source. Discovered servers stay in the director.
func (r *Runner) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, ru := range r.runs {
		ru.cancel()
		<-ru.done
		delete(r.runs, key)
	}
}

// NewSource makes the source of a validated discovery block.
func NewSource(dc *config.Discovery, log *slog.Logger) (Source, error) {
	switch dc.Type {
	case "file":
		return newFileSource(dc, log), nil
	case "dns":
		return newDNSSource(dc, log)
	case "etcd":
		return newEtcdSource(dc, log)
	case "docker":
		return newDockerSource(dc, log)
	case "kubernetes":
		return newKubeSource(dc, log)
	}
	return nil, fmt.Errorf("unknown discovery type %q", dc.Type)
}
