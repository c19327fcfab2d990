package agent

import (
	"math"
	"strconv"
	"time"
)

// The weight formula (docs/agent.md shows it with examples). Each resource
// gives a headroom h in [0, 1], 1 meaning "no reason to send less"; the
// weight is the scarcest resource's headroom, as a percentage:
//
//	weight% = round(100 × min(h_cpu, h_load, h_mem, h_psi, h_io)), within [MinPercent, 100]
//
// with u the smoothed utilisation of each resource:
//
//	h_cpu  = (1 − u_cpu) / (1 − CPUIdleBusy)          u_cpu: share of CPU time not idle nor iowait
//	h_load = (LoadMax − l) / (LoadMax − LoadFull)    l: 1-minute load average per CPU
//	h_mem  = a / MemLow                              a: MemAvailable / MemTotal
//	h_psi  = (PSIMax − p) / (PSIMax − PSIIdle)       p: highest "some" stall share of cpu, memory, io
//	h_io   = (1 − u_io) / (1 − IOIdleBusy)           u_io: busiest disk's share of time doing IO
//
// each clamped to [0, 1]. The dead zones (CPUIdleBusy...) make an idle or
// lightly used server answer exactly 100%; the floor MinPercent keeps a
// saturated server in the scheduler's set with a trickle of connections
// (0% would drain it, which is the operator's word to say, not a
// measurement's) so the director sees it recover.
const (
	CPUIdleBusy = 0.10 // CPU busy below 10%: full headroom
	LoadFull    = 1.0  // load per CPU up to 1: full headroom
	LoadMax     = 2.0  // load per CPU 2 and above: none
	MemLow      = 0.10 // available memory above 10%: full headroom
	PSIIdle     = 0.10 // stalls under 10% of the time: full headroom
	PSIMax      = 0.60 // stalls 60% of the time: none
	IOIdleBusy  = 0.50 // a disk busy under half the time: full headroom
	MinPercent  = 1
)

// Smoothing. A one-second CPU sample swings with every burst (the lesson of
// LVS's feedbackd: weights that follow it make traffic oscillate); rates
// between samples are averaged by an exponentially weighted moving average
// with time constant Tau, so that after a step change the smoothed figure
// has moved 63% of the way in Tau and 95% in 3×Tau. The weight of a sample
// taken dt after the previous one is 1 − exp(−dt/Tau): irregular sampling
// (a stalled process) weighs as much as the time it covers.
const DefaultTau = 10 * time.Second

// State is the operator's word, from the state file or `govs agent state`.
type State uint8

// States.
const (
	StateUp State = iota
	StateDrain
	StateMaint
)

func (s State) String() string {
	switch s {
	case StateDrain:
		return "drain"
	case StateMaint:
		return "maint"
	}
	return "up"
}

// ParseState reads a state word.
func ParseState(s string) (State, bool) {
	switch s {
	case "up", "ready":
		return StateUp, true
	case "drain":
		return StateDrain, true
	case "maint":
		return StateMaint, true
	}
	return StateUp, false
}

// Figures are the smoothed measurements; a figure is negative when unknown
// (the kernel lacks the file, or fewer than two samples were seen).
type Figures struct {
	CPU      float64 // busy share, 0..1
	Load     float64 // 1-minute load average per CPU (already smoothed by the kernel)
	Mem      float64 // used share: 1 − MemAvailable/MemTotal
	PSI      float64 // highest "some" stall share of cpu, memory, io, 0..1
	IO       float64 // busiest disk's busy share, 0..1
	InFlight int     // established connections to the service port, -1 unknown
	Latency  time.Duration
	Percent  int // the weight percentage
}

// Estimator smooths samples into Figures. It is not safe for concurrent
// use: the sampler owns it and publishes reply lines.
type Estimator struct {
	Tau time.Duration

	prev    Sample
	hasPrev bool
	cpu     ewma
	psi     [3]ewma
	io      ewma
	lat     ewma
	load    float64
	mem     float64
	flight  int
	probeOK bool
}

type ewma struct {
	v  float64
	ok bool
}

func (e *ewma) add(x, alpha float64) {
	if !e.ok {
		e.v, e.ok = x, true
		return
	}
	e.v += alpha * (x - e.v)
}

func (e ewma) get() float64 {
	if !e.ok {
		return -1
	}
	return e.v
}

// NewEstimator returns an Estimator smoothing over tau (DefaultTau if 0).
func NewEstimator(tau time.Duration) *Estimator {
	if tau <= 0 {
		tau = DefaultTau
	}
	return &Estimator{Tau: tau, load: -1, mem: -1, flight: -1}
}

// Observe takes a sample. Rates need two samples; a sample not after the
// previous one (a clock step) restarts the rates without smoothing in
// nonsense.
func (e *Estimator) Observe(s Sample) {
	if s.HasLoad && s.NCPU > 0 {
		e.load = s.Load1 / float64(s.NCPU)
	} else if s.HasLoad {
		e.load = s.Load1
	}
	if s.HasMem {
		e.mem = 1 - float64(s.MemAvail)/float64(s.MemTotal)
	}
	e.flight = -1
	if s.HasFlight {
		e.flight = s.InFlight
	}
	e.probeOK = s.HasProbe && s.ProbeErr == ""
	if !e.hasPrev || !s.At.After(e.prev.At) {
		e.prev, e.hasPrev = s, true
		if e.probeOK {
			e.lat.add(float64(s.Probe), 1)
		}
		return
	}
	dt := s.At.Sub(e.prev.At)
	alpha := 1 - math.Exp(-float64(dt)/float64(e.Tau))
	p := e.prev
	if s.HasCPU && p.HasCPU && s.CPUTotal > p.CPUTotal && s.CPUIdle >= p.CPUIdle {
		dTotal := float64(s.CPUTotal - p.CPUTotal)
		busy := 1 - float64(s.CPUIdle-p.CPUIdle)/dTotal
		e.cpu.add(clamp01(busy), alpha)
	}
	for i := range s.PSI {
		if s.HasPSI[i] && p.HasPSI[i] && s.PSI[i] >= p.PSI[i] {
			share := float64(s.PSI[i]-p.PSI[i]) / float64(dt.Microseconds())
			e.psi[i].add(clamp01(share), alpha)
		}
	}
	if s.HasDisk && p.HasDisk {
		busiest := 0.0
		for name, ms := range s.DiskBusy {
			if was, ok := p.DiskBusy[name]; ok && ms >= was {
				busiest = max(busiest, float64(ms-was)/float64(dt.Milliseconds()))
			}
		}
		e.io.add(clamp01(busiest), alpha)
	}
	if e.probeOK {
		e.lat.add(float64(s.Probe), alpha)
	}
	e.prev = s
}

// Figures returns the smoothed figures and the weight computed from them.
func (e *Estimator) Figures() Figures {
	f := Figures{CPU: e.cpu.get(), Load: e.load, Mem: e.mem, IO: e.io.get(), InFlight: e.flight, Latency: -1, PSI: -1}
	for _, p := range e.psi {
		if p.ok {
			f.PSI = max(f.PSI, p.v)
		}
	}
	if e.lat.ok && e.probeOK {
		f.Latency = time.Duration(e.lat.v)
	}
	f.Percent = Weight(f)
	return f
}

// Weight is the formula above; unknown figures (negative) do not count.
func Weight(f Figures) int {
	h := 1.0
	if f.CPU >= 0 {
		h = min(h, (1-f.CPU)/(1-CPUIdleBusy))
	}
	if f.Load >= 0 {
		h = min(h, (LoadMax-f.Load)/(LoadMax-LoadFull))
	}
	if f.Mem >= 0 {
		h = min(h, (1-f.Mem)/MemLow)
	}
	if f.PSI >= 0 {
		h = min(h, (PSIMax-f.PSI)/(PSIMax-PSIIdle))
	}
	if f.IO >= 0 {
		h = min(h, (1-f.IO)/(1-IOIdleBusy))
	}
	return max(MinPercent, int(math.Round(100*clamp01(h))))
}

func clamp01(x float64) float64 {
	return min(max(x, 0), 1)
}

// Reply is the line the agent sends, without its newline: the weight
// percentage, the operator's state word, and govs's extra words, which
// HAProxy ignores (internal/health/agent.go parses them; docs/agent.md
// lists them all):
//
//	73% ready inflight:12 latency:4.2ms cpu:41 mem:63 load:0.52 psi:3 io:0
//
// "ready" (not "up") is the word for the operator's up: it cancels an
// earlier drain or maint, as HAProxy's agent words go. No word contains a
// '%' other than the weight: HAProxy takes any word with one as a weight.
func (f Figures) Reply(st State) []byte {
	return f.AppendReply(make([]byte, 0, 128), st)
}

// AppendReply appends Reply to b.
func (f Figures) AppendReply(b []byte, st State) []byte {
	b = strconv.AppendInt(b, int64(f.Percent), 10)
	b = append(b, "% "...)
	switch st {
	case StateDrain:
		b = append(b, "drain"...)
	case StateMaint:
		b = append(b, "maint"...)
	default:
		b = append(b, "ready"...)
	}
	if f.InFlight >= 0 {
		b = append(b, " inflight:"...)
		b = strconv.AppendInt(b, int64(f.InFlight), 10)
	}
	if f.Latency >= 0 {
		b = append(b, " latency:"...)
		b = append(b, f.Latency.Round(time.Microsecond).String()...)
	}
	pct := func(name string, v float64) {
		if v >= 0 {
			b = append(b, ' ')
			b = append(b, name...)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(math.Round(100*v)), 10)
		}
	}
	pct("cpu", f.CPU)
	pct("mem", f.Mem)
	if f.Load >= 0 {
		b = append(b, " load:"...)
		b = strconv.AppendFloat(b, f.Load, 'f', 2, 64)
	}
	pct("psi", f.PSI)
	pct("io", f.IO)
	return b
}
