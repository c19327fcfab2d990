package accesslog

import (
	"bytes"
	"fmt"
	"sort"
	"time"
)

// Reports govs logs answers (docs/logs.md).
var Reports = []string{"servers", "terminations", "clients", "services", "time", "percentiles", "gaps"}

// Filter selects lines; zero fields select everything.
type Filter struct {
	Since, Until  int64 // Unix ns; Until is exclusive; 0: none
	Service       string
	RealServer    string
	Termination   string // two letters, or one: the first letter
	MinDurationMs float64
}

// Match reports whether e passes the filter.
func (f *Filter) Match(e *Entry) bool {
	if f.Since != 0 && e.Time < f.Since || f.Until != 0 && e.Time >= f.Until {
		return false
	}
	if f.Service != "" && string(e.Service) != f.Service {
		return false
	}
	if f.RealServer != "" && string(e.RealServer) != f.RealServer {
		return false
	}
	switch len(f.Termination) {
	case 1:
		if e.Termination[0] != f.Termination[0] {
			return false
		}
	case 2:
		if e.Termination != (Termination{f.Termination[0], f.Termination[1]}) {
			return false
		}
	}
	return e.DurationMs >= f.MinDurationMs
}

// Options size the analyser.
type Options struct {
	Reports    []string      // which to compute; all if empty
	Bucket     time.Duration // time report's bucket (1m if 0); doubled while more than MaxBuckets
	MaxBuckets int           // 10,000 if 0
	Gap        time.Duration // gaps report: silences at least this long (1s if 0)
	MaxClients int           // TopK capacity (100,000 if 0)
	ClientSort string        // clients report's order: conns (default), bytes or errors
	MaxGroups  int           // distinct services and real servers each (10,000 if 0); the rest go to "(other)"
	MaxGaps    int           // gaps kept (10,000 if 0): the longest
	Filter     Filter
}

// Group is one service's or real server's figures.
type Group struct {
	Name              string
	Conns, Errors     uint64
	BytesIn, BytesOut uint64
	Connect, Duration Sketch
	Codes             map[Termination]uint64 // error codes only
}

// BadLine is a line that could not be read.
type BadLine struct {
	Source string
	Line   int
	Err    string
}

func (b BadLine) String() string { return fmt.Sprintf("%s:%d: %s", b.Source, b.Line, b.Err) }

// MaxBadSamples is how many bad lines are kept to be shown.
const MaxBadSamples = 20

// Gap is a silence in accepted connections, [Start, End) in Unix ns.
type Gap struct{ Start, End int64 }

// Analyser takes entries and keeps the figures of the reports asked for,
// in memory bounded by its Options whatever the number of lines.
type Analyser struct {
	opt                   Options
	want                  map[string]bool
	Lines, Matched, Bad   uint64
	BadSamples            []BadLine
	First, Last           int64 // matched lines' times
	servers, services     map[string]*Group
	terms                 map[Termination]uint64
	clients               *TopK
	Connect, Duration     Sketch
	bucket                int64
	hist                  map[int64]*[2]uint64 // bucket -> conns, errors
	gaps                  []Gap
	gapsDropped           uint64
	maxSeen               int64
	wantGroups, wantSkets bool
	// The reports asked for, as fields: Add reads them for every line.
	wServers, wServices, wTerms, wTime, wGaps bool
}

// NewAnalyser returns an Analyser.
func NewAnalyser(o Options) (*Analyser, error) {
	if o.Bucket <= 0 {
		o.Bucket = time.Minute
	}
	if o.MaxBuckets <= 0 {
		o.MaxBuckets = 10000
	}
	if o.Gap <= 0 {
		o.Gap = time.Second
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 100000
	}
	if o.MaxGroups <= 0 {
		o.MaxGroups = 10000
	}
	if o.MaxGaps <= 0 {
		o.MaxGaps = 10000
	}
	a := &Analyser{opt: o, want: map[string]bool{}, servers: map[string]*Group{}, services: map[string]*Group{},
		terms: map[Termination]uint64{}, bucket: int64(o.Bucket), hist: map[int64]*[2]uint64{}}
	if len(o.Reports) == 0 {
		o.Reports = Reports
	}
	for _, r := range o.Reports {
		if !isReport(r) {
			return nil, fmt.Errorf("report %q: want one of %v", r, Reports)
		}
		a.want[r] = true
	}
	if a.want["clients"] {
		a.clients = NewTopK(o.MaxClients)
	}
	switch o.ClientSort {
	case "", "conns", "bytes", "errors":
	default:
		return nil, fmt.Errorf("client sort %q: want one of %v", o.ClientSort, ClientSorts)
	}
	a.wServers, a.wServices, a.wTerms, a.wTime, a.wGaps = a.want["servers"], a.want["services"], a.want["terminations"],
		a.want["time"], a.want["gaps"]
	a.wantGroups = a.wServers || a.wServices
	a.wantSkets = a.want["percentiles"] || a.want["servers"] || a.want["services"]
	return a, nil
}

func isReport(r string) bool {
	for _, x := range Reports {
		if x == r {
			return true
		}
	}
	return false
}

// BadLine counts a line that could not be read.
func (a *Analyser) BadLine(src string, line int, err error) {
	a.Lines++
	a.Bad++
	if len(a.BadSamples) < MaxBadSamples {
		a.BadSamples = append(a.BadSamples, BadLine{src, line, err.Error()})
	}
}

// Add takes one parsed line.
func (a *Analyser) Add(e *Entry) {
	a.Lines++
	if !a.opt.Filter.Match(e) {
		return
	}
	a.Matched++
	if a.Matched == 1 || e.Time < a.First {
		a.First = e.Time
	}
	if e.Time > a.Last {
		a.Last = e.Time
	}
	isErr := e.Termination.Error()
	if a.wantSkets || a.wantGroups {
		di, ci := sketchIndex(e.DurationMs), -2
		if e.HasConnect {
			ci = sketchIndex(e.ConnectMs)
		}
		if a.wantSkets {
			a.Duration.addAt(di, e.DurationMs)
			if ci != -2 {
				a.Connect.addAt(ci, e.ConnectMs)
			}
		}
		if a.wServers {
			a.group(a.servers, e.RealServer).add(e, isErr, di, ci)
		}
		if a.wServices {
			a.group(a.services, e.Service).add(e, isErr, di, ci)
		}
	}
	if a.wTerms {
		a.terms[e.Termination]++
	}
	if a.clients != nil {
		a.clients.Add(clientHost(e.Client), isErr, e.BytesIn, e.BytesOut)
	}
	if a.wTime {
		a.addTime(e.Time, isErr)
	}
	if a.wGaps {
		a.addGap(e.Time)
	}
}

func (g *Group) add(e *Entry, isErr bool, di, ci int) {
	g.Conns++
	g.BytesIn += e.BytesIn
	g.BytesOut += e.BytesOut
	if isErr {
		g.Errors++
		if g.Codes == nil {
			g.Codes = map[Termination]uint64{}
		}
		g.Codes[e.Termination]++
	}
	g.Duration.addAt(di, e.DurationMs)
	if ci != -2 {
		g.Connect.addAt(ci, e.ConnectMs)
	}
}

// group finds or makes name's group; past MaxGroups names, "(other)".
func (a *Analyser) group(m map[string]*Group, name []byte) *Group {
	if g, ok := m[string(name)]; ok {
		return g
	}
	n := string(name)
	if n == "" {
		n = "(none)"
		if g, ok := m[n]; ok {
			return g
		}
	}
	if len(m) >= a.opt.MaxGroups {
		n = "(other)"
		if g, ok := m[n]; ok {
			return g
		}
	}
	g := &Group{Name: n}
	m[n] = g
	return g
}

// clientHost is the client's address without its port: 192.0.2.1:5000
// and [2001:db8::1]:5000 give 192.0.2.1 and 2001:db8::1.
func clientHost(c []byte) []byte {
	if len(c) > 0 && c[0] == '[' {
		if i := bytes.IndexByte(c, ']'); i > 0 {
			return c[1:i]
		}
		return c
	}
	if i := bytes.IndexByte(c, ':'); i >= 0 && bytes.IndexByte(c[i+1:], ':') < 0 {
		return c[:i]
	}
	return c
}

func (a *Analyser) addTime(t int64, isErr bool) {
	k := floorDiv(t, a.bucket)
	b := a.hist[k]
	if b == nil {
		if len(a.hist) >= a.opt.MaxBuckets {
			a.coarsen()
			a.addTime(t, isErr)
			return
		}
		b = new([2]uint64)
		a.hist[k] = b
	}
	b[0]++
	if isErr {
		b[1]++
	}
}

// coarsen doubles the bucket width, merging pairs: memory stays bounded
// however long the log's span.
func (a *Analyser) coarsen() {
	a.bucket *= 2
	old := a.hist
	a.hist = make(map[int64]*[2]uint64, len(old)/2+1)
	for k, v := range old {
		nk := floorDiv(k, 2)
		if b := a.hist[nk]; b != nil {
			b[0] += v[0]
			b[1] += v[1]
		} else {
			a.hist[nk] = v
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// addGap follows the running maximum of accept times: a line later than it
// by at least Gap opens a gap. Lines are written when connections end, so
// a long connection's line comes after later ones: a line earlier than the
// maximum splits the gaps it falls into.
func (a *Analyser) addGap(t int64) {
	gap := int64(a.opt.Gap)
	if a.Matched == 1 {
		a.maxSeen = t
		return
	}
	if t > a.maxSeen {
		if t-a.maxSeen >= gap {
			a.pushGap(Gap{a.maxSeen, t})
		}
		a.maxSeen = t
		return
	}
	// Gaps are in order of End: only the last few can contain t.
	for i := len(a.gaps) - 1; i >= 0 && a.gaps[i].End > t; i-- {
		g := a.gaps[i]
		if g.Start < t {
			left, right := Gap{g.Start, t}, Gap{t, g.End}
			var repl []Gap
			if left.End-left.Start >= gap {
				repl = append(repl, left)
			}
			if right.End-right.Start >= gap {
				repl = append(repl, right)
			}
			a.gaps = append(a.gaps[:i], append(repl, a.gaps[i+1:]...)...)
			break
		}
	}
}

func (a *Analyser) pushGap(g Gap) {
	if len(a.gaps) >= a.opt.MaxGaps {
		a.gapsDropped++
		return
	}
	a.gaps = append(a.gaps, g)
}

// Gaps returns the gaps found, longest first (ties: earliest first).
func (a *Analyser) Gaps() []Gap {
	g := append([]Gap(nil), a.gaps...)
	sort.SliceStable(g, func(i, j int) bool {
		li, lj := g[i].End-g[i].Start, g[j].End-g[j].Start
		if li != lj {
			return li > lj
		}
		return g[i].Start < g[j].Start
	})
	return g
}

// Servers returns the real servers' groups, most connections first.
func (a *Analyser) Servers() []*Group { return sortGroups(a.servers) }

// Services returns the services' groups, most connections first.
func (a *Analyser) Services() []*Group { return sortGroups(a.services) }

func sortGroups(m map[string]*Group) []*Group {
	out := make([]*Group, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Conns != out[j].Conns {
			return out[i].Conns > out[j].Conns
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// TermCount is a termination code's count.
type TermCount struct {
	Code  Termination
	Count uint64
}

// Terminations returns the codes seen, most frequent first.
func (a *Analyser) Terminations() []TermCount {
	return sortCodes(a.terms)
}

func sortCodes(m map[Termination]uint64) []TermCount {
	out := make([]TermCount, 0, len(m))
	for c, n := range m {
		out = append(out, TermCount{c, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Code.String() < out[j].Code.String()
	})
	return out
}

// Bucket is one bucket of the time histogram.
type Bucket struct {
	Start         int64 // Unix ns
	Conns, Errors uint64
}

// Histogram returns the time histogram, in time order, empty buckets
// between the first and the last included, and the bucket width.
func (a *Analyser) Histogram() ([]Bucket, time.Duration) {
	if len(a.hist) == 0 {
		return nil, time.Duration(a.bucket)
	}
	lo, hi := int64(1<<62), int64(-1<<62)
	for k := range a.hist {
		lo, hi = min(lo, k), max(hi, k)
	}
	out := make([]Bucket, 0, hi-lo+1)
	for k := lo; k <= hi; k++ {
		b := Bucket{Start: k * a.bucket}
		if v := a.hist[k]; v != nil {
			b.Conns, b.Errors = v[0], v[1]
		}
		out = append(out, b)
	}
	return out, time.Duration(a.bucket)
}

// Clients returns the top n clients by Options.ClientSort and whether the
// counts are exact.
func (a *Analyser) Clients(n int) ([]ClientCount, bool) {
	if a.clients == nil {
		return nil, true
	}
	return a.clients.Top(n, a.opt.ClientSort), a.clients.Evicted == 0
}
