package sim

import (
	"math"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/govs-lb/govs/internal/sched"
)

// This file holds the hard cases: load that changes with time, antagonists
// the directors cannot see, servers that warm up, and clients that give up.
// Several directors are in engine.go (director).

// LoadProfile is how the offered load changes with time, as a factor of the
// scenario's utilisation: the product of a ramp, a daily cycle with a weekly
// pattern, and flash crowds. The zero LoadProfile is constant.
type LoadProfile struct {
	// Ramp goes linearly from From to To over the expected run.
	Ramp      bool
	From, To  float64
	Day       float64   // the length of a simulated day, seconds; 0: no cycle
	Amplitude float64   // the daily cycle: 1 - Amplitude at the start of each day, 1 + Amplitude at noon
	Week      []float64 // each day's factor, in turn (a weekly pattern)
	Flash     []Flash
}

// Flash is a flash crowd: the load multiplied by Factor for a while,
// again every Every seconds when Every is set (a daily peak hour).
type Flash struct {
	At, For When
	Factor  float64
	Every   float64
}

func (l *LoadProfile) active() bool { return l.Ramp || l.Day > 0 || len(l.Flash) > 0 }

// meanFactor is the average of the profile over a run, which sets the run's
// expected length (requests / (rate x meanFactor)). Flash crowds are
// ignored: they are short.
func (l *LoadProfile) meanFactor() float64 {
	f := 1.0
	if l.Ramp {
		f *= (l.From + l.To) / 2
	}
	if len(l.Week) > 0 {
		var sum float64
		for _, w := range l.Week {
			sum += w
		}
		f *= sum / float64(len(l.Week))
	}
	return f
}

// factor is the load factor at time t of a run of the given expected length.
func (l *LoadProfile) factor(t, length float64) float64 {
	f := 1.0
	if l.Ramp {
		f *= l.From + (l.To-l.From)*min(t/length, 1)
	}
	if l.Day > 0 {
		f *= 1 - l.Amplitude*math.Cos(2*math.Pi*t/l.Day)
		if len(l.Week) > 0 {
			f *= l.Week[int(t/l.Day)%len(l.Week)]
		}
	}
	for _, fl := range l.Flash {
		at := fl.At.In(length)
		if fl.Every > 0 && t >= at {
			at += math.Floor((t-at)/fl.Every) * fl.Every
		}
		if t >= at && t < at+fl.For.In(length) {
			f *= fl.Factor
		}
	}
	return f
}

// Antagonist is a hidden tenant on some real servers: it comes and goes
// (exponential times of mean On and Off, starting off; uniform in [0.5, 1.5]
// times the mean with Uniform, as bench/adaptive's live antagonist) and, while there,
// takes a share of the server's capacity drawn uniformly in [Min, Max] for
// each episode, which stretches every service time that starts then by 1 /
// (1 - share). Nothing tells the directors: they see only what the
// latencies, probes and agents show.
type Antagonist struct {
	Servers  []int
	Min, Max float64
	On, Off  float64
	Uniform  bool
}

// length draws an episode's length (on or off) of the given mean.
func (a *Antagonist) length(s *sim, mean float64) float64 {
	if a.Uniform {
		return mean * (0.5 + s.antag.Float64())
	}
	return s.antag.ExpFloat64() * mean
}

// slowAt is the server's service time multiplier at now: events, the
// antagonist's share and warm-up.
func (srv *server) slowAt(now float64) float64 {
	m := srv.slow
	if srv.steal > 0 {
		m /= 1 - srv.steal
	}
	if w := srv.spec.Warmup; w > 0 {
		if age := now - srv.started; age < w {
			m *= 1 + (srv.spec.WarmupSlowdown-1)*(1-age/w)
		}
	}
	return m
}

// startHard schedules the antagonists' first arrivals.
func (s *sim) startHard(length float64) {
	for k, a := range s.sc.Antagonists {
		for _, i := range a.Servers {
			s.seq++
			s.events.push(event{t: a.length(s, a.Off), seq: s.seq, kind: evAntagonist, a: int32(i), b: int32(k),
				v: a.Min + (a.Max-a.Min)*s.antag.Float64()})
		}
	}
}

// antagonist applies an antagonist's coming (v > 0) or going, and schedules
// the next change.
func (s *sim) antagonist(e event) {
	a := s.sc.Antagonists[e.b]
	s.servers[e.a].steal = e.v
	next := event{seq: s.seq + 1, kind: evAntagonist, a: e.a, b: e.b}
	if e.v > 0 {
		next.t = s.now + a.length(s, a.On)
	} else {
		next.t = s.now + a.length(s, a.Off)
		next.v = a.Min + (a.Max-a.Min)*s.antag.Float64()
	}
	s.seq++
	s.events.push(next)
}

// timeout ends a request whose client gave up: it counts as failed, the
// director releases its connection (reporting the time waited as its
// duration), and the server, which cannot know, still serves it.
func (s *sim) timeout(ji int32, gen uint32) {
	if s.gens[ji] != gen {
		return // done, or lost, already
	}
	j := &s.jobs[ji]
	if j.abandoned || j.health {
		return
	}
	j.abandoned = true
	if s.timeouts == 0 {
		s.firstTimeout = s.sc.Utilisation * s.sc.Load.factor(j.arrive, s.length)
	}
	s.timeouts++
	s.failed++
	s.open--
	s.dest(j.dir, j.srv).Unbind(j.connected)
	s.observe(int(j.dir), j.srv, sched.Duration, s.now-j.bind, 0)
}

func (p *parser) load(n *yaml.Node) LoadProfile {
	f := p.fields(n, "load", "ramp", "day", "amplitude", "week", "flash")
	var l LoadProfile
	if v := f["ramp"]; v != nil {
		rf := p.fields(v, "ramp", "from", "to")
		l.Ramp, l.From, l.To = true, 1, 1
		if x := rf["from"]; x != nil {
			l.From = p.number(x, "from", 0.01, 100)
		}
		if x := rf["to"]; x != nil {
			l.To = p.number(x, "to", 0.01, 100)
		}
	}
	if v := f["day"]; v != nil {
		l.Day = p.duration(v, "day", time.Millisecond)
	}
	if v := f["amplitude"]; v != nil {
		l.Amplitude = p.number(v, "amplitude", 0, 0.99)
		if l.Day == 0 {
			p.errorf(v, "amplitude needs day (the length of a simulated day)")
		}
	}
	if v := f["week"]; v != nil {
		if l.Day == 0 {
			p.errorf(v, "week needs day (the length of a simulated day)")
		}
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.errorf(v, "week must be a list of daily factors")
		} else {
			for _, d := range v.Content {
				l.Week = append(l.Week, p.number(d, "a day of the week", 0.01, 100))
			}
		}
	}
	if v := f["flash"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, "flash must be a list of {at, for, factor}")
			return l
		}
		for _, fn := range v.Content {
			ff := p.fields(fn, "a flash crowd", "at", "for", "factor", "every")
			fl := Flash{Factor: 2}
			if x := ff["at"]; x != nil {
				fl.At = p.when(x, "at")
			} else {
				p.errorf(fn, "a flash crowd needs at")
			}
			if x := ff["for"]; x != nil {
				fl.For = p.when(x, "for")
			} else {
				p.errorf(fn, "a flash crowd needs for (how long it lasts)")
			}
			if x := ff["factor"]; x != nil {
				fl.Factor = p.number(x, "factor", 0.01, 100)
			}
			if x := ff["every"]; x != nil {
				fl.Every = p.duration(x, "every", time.Millisecond)
			}
			l.Flash = append(l.Flash, fl)
		}
	}
	return l
}

func (p *parser) antagonists(n *yaml.Node, servers int) []Antagonist {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "antagonists must be a list")
		return nil
	}
	var out []Antagonist
	for _, an := range n.Content {
		f := p.fields(an, "an antagonist", "server", "servers", "share", "on", "off", "lengths")
		a := Antagonist{Min: 0.5, Max: 0.5, On: 5, Off: 5}
		if v := f["server"]; v != nil {
			a.Servers = append(a.Servers, p.integer(v, "server", 0, servers-1))
		}
		if v := f["servers"]; v != nil {
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "servers must be a list of server indexes")
			} else {
				for _, s := range v.Content {
					a.Servers = append(a.Servers, p.integer(s, "server", 0, servers-1))
				}
			}
		}
		if len(a.Servers) == 0 {
			p.errorf(an, "an antagonist needs server or servers (indexes from 0)")
		}
		if v := f["share"]; v != nil {
			switch {
			case v.Kind == yaml.SequenceNode && len(v.Content) == 2:
				a.Min = p.number(v.Content[0], "share", 0, 0.95)
				a.Max = p.number(v.Content[1], "share", 0, 0.95)
				if a.Max < a.Min {
					p.errorf(v, "share: [min, max] with min at most max")
				}
			default:
				a.Min = p.number(v, "share", 0, 0.95)
				a.Max = a.Min
			}
		}
		if v := f["on"]; v != nil {
			a.On = p.duration(v, "on", time.Millisecond)
		}
		if v := f["off"]; v != nil {
			a.Off = p.duration(v, "off", time.Millisecond)
		}
		if v := f["lengths"]; v != nil {
			switch v.Value {
			case "exponential":
			case "uniform":
				a.Uniform = true
			default:
				p.errorf(v, "lengths %q: want exponential or uniform", v.Value)
			}
		}
		out = append(out, a)
	}
	return out
}
