package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/govs-lb/govs/internal/sched"
)

// RunOptions are the knobs of one run.
type RunOptions struct {
	Seed     uint64
	Requests int // 0: the scenario's
}

// Result is what a run measured. Latencies are those of the requests that
// completed, from their arrival at the director (connect retries included).
type Result struct {
	Scenario   string    `json:"scenario"`
	Scheduler  string    `json:"scheduler"`
	P50        float64   `json:"p50_ms"`
	P90        float64   `json:"p90_ms"`
	P99        float64   `json:"p99_ms"`
	P999       float64   `json:"p999_ms"`
	Mean       float64   `json:"mean_ms"`
	Throughput float64   `json:"throughput"`  // completed requests per simulated second
	UtilSpread float64   `json:"util_spread"` // max - min of the servers' utilisation
	Requests   int       `json:"requests"`
	Completed  int       `json:"completed"`
	Failed     int       `json:"failed"`  // reset by a server failure, or no server could take them
	Retried    int       `json:"retried"` // connects retried on another server
	Seconds    float64   `json:"seconds"` // simulated time
	Util       []float64 `json:"util"`    // each server's busy slots / capacity
	// Timeouts are the requests counted in Failed because they were not
	// complete within the scenario's timeout; FirstTimeoutLoad is the
	// offered load (x the nominal capacity) when the first of them arrived,
	// 0 when none timed out.
	Timeouts         int     `json:"timeouts,omitempty"`
	FirstTimeoutLoad float64 `json:"first_timeout_load,omitempty"`
	// With pre-warming (prewarm.go): the p99 of the requests that arrived
	// during the scenario's window (the ramp), and when each standby
	// server was called (simulated seconds).
	WindowP99 float64   `json:"window_p99_ms,omitempty"`
	CalledAt  []float64 `json:"called_at,omitempty"`

	hist *histogram
}

// simEpoch is the wall-clock time the simulated time 0 stands for, so that
// schedulers that read a clock see a plausible one.
var simEpoch = time.Unix(1_700_000_000, 0)

// job is a request, or a health check, from arrival to completion.
type job struct {
	arrive, bind float64
	u, z         float64 // the request's size: a uniform and a normal variate
	srv          int32
	slot         int32   // index in its server's inSvc while in service
	start        float64 // service start
	tries        uint8
	health       bool
	dir          uint8 // the director that took the request
	connected    bool  // Activate was called
	abandoned    bool  // timed out: the client left, the server does not know
	tried        [8]int32
}

func (j *job) hasTried(i int) bool { return slices.Contains(j.tried[:j.tries], int32(i)) }

// server is a real server's simulated state.
type server struct {
	spec    Server
	up      bool // running
	epoch   int32
	slow    float64 // service time multiplier now, from events
	steal   float64 // share of its capacity an antagonist takes now
	started float64 // when it last started, for warm-up
	busy    int
	inSvc   []int32
	queue   ring
	svcTime float64 // EWMA of recent service times, for probe answers

	// accounting, up to last
	last, busyArea, loadArea float64
	agentAt, agentArea       float64
}

func (s *server) account(now float64) {
	dt := now - s.last
	s.busyArea += float64(s.busy) * dt
	s.loadArea += float64(s.busy+s.queue.n) * dt
	s.last = now
}

// ring is a FIFO of jobs.
type ring struct {
	buf     []int32
	head, n int
}

func (r *ring) push(x int32) {
	if r.n == len(r.buf) {
		nb := make([]int32, max(2*len(r.buf), 16))
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = x
	r.n++
}

func (r *ring) pop() int32 {
	x := r.buf[r.head]
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return x
}

// director is one director's view: its own scheduler, its own Dests (its
// own connection counts and health-check verdicts) and the observer its
// signals go to.
type director struct {
	sched sched.Scheduler
	obs   sched.SignalObserver
	reply sched.SignalObserver // where probe answers go
	key   sched.Key            // the connection being scheduled
	dests []*sched.Dest
	down  []bool // taken out by this director's health checker
}

type sim struct {
	sc      *Scenario
	now     float64
	seq     uint64
	events  eventHeap
	servers []server
	dirs    []director
	jobs    []job
	gens    []uint32 // per job slot, bumped when it is freed (timeouts)
	free    []int32
	length  float64 // expected run length, seconds

	arr, svc, misc, route, antag *rand.Rand

	timeouts     int
	firstTimeout float64

	total, arrived, open  int
	completed, failed     int
	retried               int
	rate                  float64
	phase                 int
	arrEpoch              int32
	hist                  *histogram
	lastDone, firstArrive float64

	pw    *prewarmState // prewarm.go; nil: no pre-warming
	whist *histogram    // the requests of the pre-warming's window
}

func (s *sim) at(t float64, kind uint8, a, b int32) {
	s.seq++
	s.events.push(event{t: t, seq: s.seq, kind: kind, a: a, b: b})
}

func (s *sim) clock() time.Time { return simEpoch.Add(time.Duration(s.now * 1e9)) }

func (s *sim) observe(dir int, srv int32, k sched.SignalKind, latency, load float64) {
	if o := s.dirs[dir].obs; o != nil {
		o.Observe(s.dirs[dir].dests[srv], sched.Signal{Kind: k, Latency: time.Duration(latency * 1e9), Load: load, At: s.clock()})
	}
}

// dest is server i as director dir sees it.
func (s *sim) dest(dir uint8, i int32) *sched.Dest { return s.dirs[dir].dests[i] }

// stream returns a random source for one purpose; the same seed, scenario
// and purpose always give the same numbers, whatever the scheduler.
func stream(seed uint64, scenario string, purpose uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(scenario))
	return rand.New(rand.NewPCG(seed, h.Sum64()^purpose*0x9e3779b97f4a7c15))
}

// Run simulates sc under the named scheduler.
func Run(sc *Scenario, scheduler string, o RunOptions) (*Result, error) {
	n := o.Requests
	if n <= 0 {
		n = sc.Requests
	}
	s := &sim{
		sc:    sc,
		total: n,
		rate:  sc.Rate(),
		arr:   stream(o.Seed, sc.streamName(), 1),
		svc:   stream(o.Seed, sc.streamName(), 2),
		misc:  stream(o.Seed, sc.streamName(), 3),
		hist:  newHistogram(),
		whist: newHistogram(),
	}
	if err := sc.check(); err != nil {
		return nil, err
	}
	nd := max(sc.Directors, 1)
	if nd > 1 {
		s.route = stream(o.Seed, sc.streamName(), 5)
	}
	if len(sc.Antagonists) > 0 {
		s.antag = stream(o.Seed, sc.streamName(), 6)
	}
	rnd := stream(o.Seed, sc.streamName(), 4)
	s.dirs = make([]director, nd)
	s.servers = make([]server, len(sc.Servers))
	for i, spec := range sc.Servers {
		s.servers[i] = server{spec: spec, up: true, slow: spec.Slowdown, svcTime: spec.Service.Mean * spec.Slowdown}
	}
	for k := range s.dirs {
		dr := &s.dirs[k]
		// Each director draws from its own stream; the first one from the
		// stream a single director always had, so old runs repeat.
		r := rnd
		if k > 0 {
			r = stream(o.Seed, sc.streamName(), 100+uint64(k))
		}
		opts := sched.Options{Clock: s.clock, Rand: r.Uint64, Prober: prober{s, k}, Fallback: true}
		if scheduler == Oracle {
			dr.sched = &oracle{s: s}
		} else {
			sch, err := sched.New(scheduler, opts)
			if err != nil {
				return nil, err
			}
			dr.sched = sch
		}
		dr.obs, _ = dr.sched.(sched.SignalObserver)
		dr.dests = make([]*sched.Dest, len(sc.Servers))
		dr.down = make([]bool, len(sc.Servers))
		for i, spec := range sc.Servers {
			d := sched.NewDest(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80), spec.Weight)
			d.Owner = i
			dr.dests[i] = d
		}
		dr.sched.Update(slices.Clone(dr.dests))
		defer dr.sched.Update(nil)
	}
	s.start()
	if err := s.startPrewarm(s.length); err != nil {
		return nil, err
	}
	s.loop()
	return s.result(scheduler), nil
}

// check catches what Parse would refuse, in a scenario built in Go.
func (sc *Scenario) check() error {
	if len(sc.Servers) == 0 || sc.Rate() <= 0 || math.IsInf(sc.Rate(), 0) {
		return fmt.Errorf("scenario %s: no servers, or no load", sc.Name)
	}
	for i, s := range sc.Servers {
		if s.Capacity < 1 || !(s.Service.Mean > 0) || !(s.Slowdown > 0) {
			return fmt.Errorf("scenario %s: server %d needs a capacity, a mean service time and a slowdown above 0", sc.Name, i)
		}
	}
	if len(sc.Arrivals.States) == 0 {
		return fmt.Errorf("scenario %s: no arrival process", sc.Name)
	}
	return nil
}

// start schedules the first arrival and everything the scenario plans.
func (s *sim) start() {
	sc := s.sc
	length := float64(s.total) / (s.rate * sc.Load.meanFactor())
	s.length = length
	if len(sc.Arrivals.States) > 1 {
		// Start in a state drawn by its share of time.
		var tot float64
		for _, st := range sc.Arrivals.States {
			tot += st.Mean
		}
		r := s.arr.Float64() * tot
		for s.phase = 0; s.phase < len(sc.Arrivals.States)-1 && r >= sc.Arrivals.States[s.phase].Mean; s.phase++ {
			r -= sc.Arrivals.States[s.phase].Mean
		}
		s.at(s.arr.ExpFloat64()*sc.Arrivals.States[s.phase].Mean, evPhase, 0, 0)
	}
	s.nextArrival()
	for _, e := range sc.Events {
		at := e.At.In(length)
		end := at + e.For.In(length)
		for _, i := range e.Servers {
			if e.Fail {
				s.at(at, evFail, int32(i), 0)
				s.at(end, evRecover, int32(i), 0)
			}
			if e.Slowdown != 1 {
				s.seq++
				s.events.push(event{t: at, seq: s.seq, kind: evSlow, a: int32(i), v: e.Slowdown})
				s.seq++
				s.events.push(event{t: end, seq: s.seq, kind: evSlow, a: int32(i), v: 1 / e.Slowdown})
			}
		}
	}
	n := float64(len(s.servers))
	nd := len(s.dirs)
	for i := range s.servers {
		if sc.Health.Interval > 0 {
			for k := range nd {
				s.atc(sc.Health.Interval*(float64(i)+float64(k)/float64(nd))/n, evHealth, int32(i), 0, int32(k))
			}
		}
		if s.dirs[0].obs != nil && sc.AgentInterval > 0 {
			s.at(sc.AgentInterval*(float64(i)+0.5)/n, evAgent, int32(i), 0)
		}
	}
	s.startHard(length)
}

func (s *sim) nextArrival() {
	if s.arrived >= s.total {
		return
	}
	r := s.rate * s.sc.Arrivals.States[s.phase].Rate
	if s.sc.Load.active() {
		// The rate at the last arrival stands for the next interval: the
		// profiles change over seconds, arrivals come every fraction of a
		// millisecond.
		r *= s.sc.Load.factor(s.now, s.length)
	}
	if r <= 0 {
		return // wait for the next phase
	}
	s.at(s.now+s.arr.ExpFloat64()/r, evArrival, 0, s.arrEpoch)
}

func (s *sim) loop() {
	for len(s.events) > 0 {
		e := s.events.pop()
		s.now = e.t
		switch e.kind {
		case evArrival:
			if e.b == s.arrEpoch {
				s.arrival()
			}
		case evPhase:
			st := s.sc.Arrivals.States
			s.phase = (s.phase + 1) % len(st)
			s.arrEpoch++
			s.nextArrival()
			s.at(s.now+s.arr.ExpFloat64()*st[s.phase].Mean, evPhase, 0, 0)
		case evConnect:
			s.connect(e.a, e.b)
		case evConnectFail:
			s.connectFail(e.a)
		case evDone:
			if s.servers[e.c].epoch == e.b { // else lost with its server
				s.done(e.a)
			}
		case evTimeout:
			s.timeout(e.a, uint32(e.b))
		case evAntagonist:
			s.antagonist(e)
		case evPrewarm:
			s.prewarmTick()
		case evRamp:
			s.rampTick()
		case evFail:
			s.fail(int(e.a))
		case evRecover:
			if srv := &s.servers[e.a]; !srv.up {
				srv.up, srv.started = true, s.now
			}
		case evSlow:
			s.servers[e.a].slow *= e.v
		case evHealth:
			s.health(int(e.a), uint8(e.c))
		case evHealthFail:
			s.markDown(int(e.a), uint8(e.c))
		case evAgent:
			s.agent(int(e.a))
		case evProbeAt:
			srv := &s.servers[e.a]
			if srv.up {
				rif := srv.busy + srv.queue.n
				s.seq++
				s.events.push(event{t: s.now + s.sc.ProbeDelay/2, seq: s.seq, kind: evProbeBack, a: e.a, b: e.b,
					v: float64(rif), w: srv.latencyAt(rif)})
			}
		case evProbeBack:
			if r := s.dirs[e.b].reply; r != nil {
				r.Observe(s.dirs[e.b].dests[e.a], sched.Signal{Kind: sched.Probe, Load: e.v, Latency: time.Duration(e.w * 1e9), At: s.clock()})
			}
		}
		if s.arrived == s.total && s.open == 0 {
			return
		}
	}
}

func (s *sim) newJob() int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.jobs[i] = job{}
		return i
	}
	s.jobs = append(s.jobs, job{})
	s.gens = append(s.gens, 0)
	return int32(len(s.jobs) - 1)
}

// release returns a job's slot; a timeout still pending for it then finds
// another generation and does nothing.
func (s *sim) release(ji int32) {
	s.gens[ji]++
	s.free = append(s.free, ji)
}

func (s *sim) arrival() {
	if s.arrived == 0 {
		s.firstArrive = s.now
	}
	s.arrived++
	s.nextArrival()
	ji := s.newJob()
	j := &s.jobs[ji]
	j.arrive = s.now
	j.u, j.z = s.svc.Float64(), s.svc.NormFloat64()
	if s.route != nil {
		j.dir = uint8(s.route.IntN(len(s.dirs)))
	}
	if s.sc.Timeout > 0 {
		s.at(s.now+s.sc.Timeout, evTimeout, ji, int32(s.gens[ji]))
	}
	s.open++
	s.dispatch(ji)
}

// pick asks the scheduler, then skips servers already tried as
// director.VirtualService.Schedule does.
func (s *sim) pick(j *job) int {
	id := s.arrived
	dr := &s.dirs[j.dir]
	dr.key.Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(id >> 8), byte(id)}), uint16(1024+id%60000))
	if d := dr.sched.Pick(&dr.key); d != nil {
		if i := d.Owner.(int); !j.hasTried(i) {
			return i
		}
	}
	if j.tries == 0 {
		return -1
	}
	for i, d := range dr.dests {
		if d.Available() && !j.hasTried(i) {
			return i
		}
	}
	return -1
}

func (s *sim) dispatch(ji int32) {
	j := &s.jobs[ji]
	i := s.pick(j)
	if i < 0 || !s.dest(j.dir, int32(i)).Bind() {
		s.lose(ji)
		return
	}
	srv := &s.servers[i]
	j.srv, j.bind = int32(i), s.now
	switch {
	case !srv.up:
		s.at(s.now+s.sc.ConnectTimeout, evConnectFail, ji, 0)
	case s.sc.RTT > 0:
		s.at(s.now+s.sc.RTT, evConnect, ji, srv.epoch)
	default:
		s.connect(ji, srv.epoch)
	}
}

// connect establishes a job's connection, unless its server failed since.
func (s *sim) connect(ji, epoch int32) {
	j := &s.jobs[ji]
	srv := &s.servers[j.srv]
	if j.abandoned {
		s.release(ji) // the client left before the connection was made
		return
	}
	if !srv.up || srv.epoch != epoch {
		s.at(max(s.now, j.bind+s.sc.ConnectTimeout), evConnectFail, ji, 0)
		return
	}
	j.connected = true
	s.dest(j.dir, j.srv).Activate()
	s.observe(int(j.dir), j.srv, sched.ConnectTime, s.now-j.bind, 0)
	s.enqueue(srv, ji)
}

func (s *sim) connectFail(ji int32) {
	j := &s.jobs[ji]
	if j.abandoned {
		s.release(ji)
		return
	}
	s.observe(int(j.dir), j.srv, sched.ConnectTime, s.now-j.bind, 0)
	s.dest(j.dir, j.srv).Unbind(false)
	if s.sc.PassiveHealth {
		s.markDown(int(j.srv), j.dir)
	}
	j.tried[j.tries] = j.srv
	j.tries++
	if int(j.tries) > s.sc.Retries || int(j.tries) >= len(j.tried) {
		s.lose(ji)
		return
	}
	s.retried++
	s.dispatch(ji)
}

// lose ends a request that got no answer.
func (s *sim) lose(ji int32) {
	s.failed++
	s.open--
	s.release(ji)
}

func (s *sim) enqueue(srv *server, ji int32) {
	srv.account(s.now)
	if srv.busy < srv.spec.Capacity {
		s.serve(srv, ji)
		return
	}
	srv.queue.push(ji)
}

func (s *sim) serve(srv *server, ji int32) {
	j := &s.jobs[ji]
	srv.busy++
	j.start = s.now
	j.slot = int32(len(srv.inSvc))
	srv.inSvc = append(srv.inSvc, ji)
	d := srv.spec.Service
	var t float64
	switch d.Kind {
	case Exponential:
		t = -d.Mean * math.Log(1-j.u)
	case Lognormal:
		t = d.Mean * math.Exp(d.Sigma*j.z-d.Sigma*d.Sigma/2)
	default:
		t = d.Mean
	}
	t *= srv.slowAt(s.now)
	if j.health {
		t *= s.sc.Health.Cost
	}
	s.seq++
	s.events.push(event{t: s.now + t, seq: s.seq, kind: evDone, a: ji, b: srv.epoch, c: j.srv})
}

func (s *sim) done(ji int32) {
	j := &s.jobs[ji]
	srv := &s.servers[j.srv]
	srv.account(s.now)
	srv.busy--
	last := srv.inSvc[len(srv.inSvc)-1]
	srv.inSvc[j.slot] = last
	s.jobs[last].slot = j.slot
	srv.inSvc = srv.inSvc[:len(srv.inSvc)-1]
	switch {
	case j.health:
		s.healthDone(ji)
	case j.abandoned:
		srv.svcTime += (s.now - j.start - srv.svcTime) / 16
		s.release(ji)
	default:
		lat := s.now - j.bind
		srv.svcTime += (s.now - j.start - srv.svcTime) / 16
		dir := int(j.dir)
		s.observe(dir, j.srv, sched.FirstByte, lat, 0)
		s.dest(j.dir, j.srv).Unbind(true)
		s.observe(dir, j.srv, sched.Duration, lat, 0)
		s.hist.add(s.now - j.arrive)
		if s.pw.inWindow(j.arrive) {
			s.whist.add(s.now - j.arrive)
		}
		s.completed++
		s.open--
		s.lastDone = s.now
		s.release(ji)
	}
	if srv.queue.n > 0 && srv.busy < srv.spec.Capacity {
		s.serve(srv, srv.queue.pop())
	}
}

// fail stops server i: the connections it held are reset.
func (s *sim) fail(i int) {
	srv := &s.servers[i]
	if !srv.up {
		return
	}
	srv.account(s.now)
	srv.up = false
	srv.epoch++
	drop := func(ji int32) {
		j := &s.jobs[ji]
		if j.health {
			s.atc(max(s.now, j.bind+s.sc.Health.Timeout), evHealthFail, int32(i), 0, int32(j.dir))
			s.release(ji)
			return
		}
		if j.abandoned {
			s.release(ji)
			return
		}
		s.dest(j.dir, int32(i)).Unbind(true)
		s.lose(ji)
	}
	for _, ji := range srv.inSvc {
		drop(ji)
	}
	for srv.queue.n > 0 {
		drop(srv.queue.pop())
	}
	srv.inSvc = srv.inSvc[:0]
	srv.busy = 0
}

func (s *sim) health(i int, dir uint8) {
	srv := &s.servers[i]
	s.atc(s.now+s.sc.Health.Interval, evHealth, int32(i), 0, int32(dir))
	if !srv.up {
		s.atc(s.now+s.sc.Health.Timeout, evHealthFail, int32(i), 0, int32(dir))
		return
	}
	ji := s.newJob()
	j := &s.jobs[ji]
	j.health, j.bind, j.srv, j.dir = true, s.now, int32(i), dir
	j.u, j.z = s.misc.Float64(), s.misc.NormFloat64()
	s.enqueue(srv, ji)
}

func (s *sim) healthDone(ji int32) {
	j := &s.jobs[ji]
	i := int(j.srv)
	lat := s.now - j.bind
	s.release(ji)
	dir := j.dir
	if lat > s.sc.Health.Timeout {
		s.markDown(i, dir)
		return
	}
	s.observe(int(dir), int32(i), sched.HealthLatency, lat, 0)
	if dr := &s.dirs[dir]; dr.down[i] {
		dr.down[i] = false
		dr.dests[i].SetWeight(s.weightNow(i))
		dr.sched.Update(slices.Clone(dr.dests))
	}
}

func (s *sim) markDown(i int, dir uint8) {
	if dr := &s.dirs[dir]; !dr.down[i] {
		dr.down[i] = true
		dr.dests[i].SetWeight(0)
		dr.sched.Update(slices.Clone(dr.dests))
	}
}

func (s *sim) agent(i int) {
	srv := &s.servers[i]
	s.at(s.now+s.sc.AgentInterval, evAgent, int32(i), 0)
	srv.account(s.now)
	area, since := srv.loadArea-srv.agentArea, s.now-srv.agentAt
	srv.agentArea, srv.agentAt = srv.loadArea, s.now
	if srv.up && since > 0 {
		// Every director polls the agent; it reports the server's total.
		for k := range s.dirs {
			s.observe(k, int32(i), sched.AgentLoad, 0, area/since/float64(srv.spec.Capacity))
		}
	}
}

// latencyAt is the server's estimate of the latency of a request that finds
// rif requests in flight, the latency a Prequal server puts in its probe
// answers: its recent service time (an EWMA of 1/16 over its requests),
// stretched by the queue the request would wait in: x (1 + (rif + 1 -
// capacity) / capacity) when all slots are taken.
func (s *server) latencyAt(rif int) float64 {
	c := s.spec.Capacity
	return s.svcTime * (1 + float64(max(rif+1-c, 0))/float64(c))
}

// prober is prequal's Prober in the simulator: a probe takes ProbeDelay/2
// to reach its server, which answers with its requests in flight (in
// service and queued) and latencyAt them; the answer takes ProbeDelay/2
// back. A failed server does not answer.
type prober struct {
	s   *sim
	dir int
}

func (p prober) Probe(d *sched.Dest, reply sched.SignalObserver) {
	s := p.s
	s.dirs[p.dir].reply = reply
	s.at(s.now+s.sc.ProbeDelay/2, evProbeAt, int32(d.Owner.(int)), int32(p.dir))
}

func (s *sim) result(scheduler string) *Result {
	end := s.lastDone
	r := &Result{
		Scenario:  s.sc.Name,
		Scheduler: scheduler,
		P50:       s.hist.quantile(0.5) * 1e3,
		P90:       s.hist.quantile(0.9) * 1e3,
		P99:       s.hist.quantile(0.99) * 1e3,
		P999:      s.hist.quantile(0.999) * 1e3,
		Mean:      s.hist.mean() * 1e3,
		Requests:  s.total,
		Completed: s.completed,
		Failed:    s.failed,
		Retried:   s.retried,
		Seconds:   end,
		Util:      make([]float64, len(s.servers)),
		hist:      s.hist,
		Timeouts:  s.timeouts,
	}
	if s.timeouts > 0 {
		r.FirstTimeoutLoad = s.firstTimeout
	}
	if s.pw != nil {
		r.WindowP99 = s.whist.quantile(0.99) * 1e3
		r.CalledAt = s.pw.calledAt
	}
	if span := end - s.firstArrive; span > 0 {
		r.Throughput = float64(s.completed) / span
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range s.servers {
		srv := &s.servers[i]
		srv.account(end)
		if end > 0 {
			r.Util[i] = srv.busyArea / (float64(srv.spec.Capacity) * end)
		}
		lo, hi = min(lo, r.Util[i]), max(hi, r.Util[i])
	}
	r.UtilSpread = hi - lo
	return r
}
