package accesslog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func TestAppendJSONIsJSONAndParses(t *testing.T) {
	r := Record{Time: t0.Add(1500 * time.Microsecond), Service: "we\"b\n\x01é\xff", Client: netip.MustParseAddrPort("[2001:db8::1]:5000"),
		RealServer: netip.MustParseAddrPort("10.0.0.1:80"), ConnectMs: 0.25, DurationMs: 1503.007, BytesIn: 10, BytesOut: 20,
		Termination: Termination{'S', 'C'}}
	line := r.AppendJSON(nil)
	want := `{"time":"2026-12-03T10:00:00.001Z","service":"we\"b\n\u0001é\ufffd","client":"[2001:db8::1]:5000","real_server":"10.0.0.1:80","connect_ms":0.25,"duration_ms":1503.007,"bytes_in":10,"bytes_out":20,"termination":"SC"}` + "\n"
	if string(line) != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", line, want)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var e Entry
	if err := Parse(line, &e); err != nil {
		t.Fatal(err)
	}
	if e.Time != t0.Add(time.Millisecond).UnixNano() || string(e.Service) != "we\"b\n\x01é\uFFFD" || string(e.Client) != "[2001:db8::1]:5000" ||
		string(e.RealServer) != "10.0.0.1:80" || !e.HasConnect || e.ConnectMs != 0.25 || e.DurationMs != 1503.007 ||
		e.BytesIn != 10 || e.BytesOut != 20 || e.Termination != (Termination{'S', 'C'}) {
		t.Errorf("Parse = %+v", e)
	}
	// No connect time, no real server: keys omitted or empty.
	r2 := Record{Time: t0, Service: "x", Client: r.Client, ConnectMs: -1, Termination: Termination{'P', 'C'}}
	if err := Parse(r2.AppendJSON(nil), &e); err != nil || e.HasConnect || len(e.RealServer) != 0 {
		t.Errorf("Parse without connect: %+v %v", e, err)
	}
	if n := testing.AllocsPerRun(100, func() { line = r.AppendJSON(line[:0]) }); n != 0 {
		t.Errorf("AppendJSON allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { Parse(line, &e) }); n != 0 {
		t.Errorf("Parse allocates %v times", n)
	}
}

func TestParseForms(t *testing.T) {
	good := []string{
		// Unknown keys of every type, spaces, another key order, offset time.
		` { "x": {"a": [1, {"b": null}], "c": "}"}, "termination": "--", "bytes_out": 2, "bytes_in": 1, "duration_ms": 1e3,` +
			` "real_server": "r", "client": "c", "service": "s", "ok": true, "time": "2026-12-03T11:00:00.5+01:00" }`,
		`{"time":"2026-12-03T10:00:00Z","service":"s","client":"c","real_server":"r","duration_ms":1000,"bytes_in":1,"bytes_out":2,"termination":"--","connect_ms":null}`,
	}
	for _, s := range good {
		var e Entry
		if err := Parse([]byte(s), &e); err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if e.DurationMs != 1000 || e.BytesIn != 1 || e.BytesOut != 2 || e.Time/1e9 != t0.Unix() || e.HasConnect {
			t.Errorf("%s: %+v", s, e)
		}
	}
	bad := map[string]string{
		`not json`: "col 1: not a JSON object",
		`{"time":"2026-12-03T10:00:00Z","service":"s"}`:                  "missing key client",
		`{"time":"yesterday","service":"s"}`:                             "time",
		`{"time":"2026-02-30T10:00:00Z"}`:                                "not an RFC 3339 time",
		`{"time":"2026-12-03T10:00:00Z","bytes_in":-1}`:                  "bytes_in",
		`{"time":"2026-12-03T10:00:00Z","termination":"SCX"}`:            "two letters",
		`{"time":"2026-12-03T10:00:00Z","service":"s"} trailing`:         "text after",
		`{"time":"2026-12-03T10:00:00Z","service":"s`:                    "service",
		`{"time":"2026-12-03T10:00:00Z","x":[1,2`:                        "x:",
		`{"time":"2026-12-03T10:00:00Z","x":` + strings.Repeat("[", 100): "nested too deep",
	}
	for s, want := range bad {
		var e Entry
		err := Parse([]byte(s), &e)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one with %q", s, err, want)
		}
	}
}

func TestParseTimeMatchesTimePackage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		tt := time.Unix(r.Int64N(4e9)-1e9, r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(49)-24)*1800))
		for _, layout := range []string{time.RFC3339, time.RFC3339Nano, TimeLayout} {
			s := tt.Format(layout)
			got, err := parseTime([]byte(s))
			want, _ := time.Parse(time.RFC3339Nano, s)
			if err != nil || got != want.UnixNano() {
				t.Fatalf("parseTime(%s) = %d %v, want %d", s, got, err, want.UnixNano())
			}
		}
	}
}

func TestSketchAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s Sketch
	vals := make([]float64, 100000)
	for i := range vals {
		vals[i] = math.Exp(2 + 2*r.NormFloat64())
		s.Add(vals[i])
	}
	sort.Float64s(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)-1))]
		if got := s.Quantile(q); math.Abs(got-exact)/exact > SketchAlpha+1e-9 {
			t.Errorf("p%g = %g, exact %g: relative error %g > %g", q*100, got, exact, math.Abs(got-exact)/exact, SketchAlpha)
		}
	}
	if s.Quantile(0) != vals[0] || s.Quantile(1) != vals[len(vals)-1] {
		t.Error("min and max must be exact")
	}
}

func TestTopKExactThenBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	exact := map[string]uint64{}
	tk := NewTopK(50)
	small := NewTopK(1000)
	n := 20000
	for range n {
		c := "c" + string(rune('A'+min(int(r.ExpFloat64()*8), 300)))
		exact[c]++
		tk.Add([]byte(c), false, 1, 1)
		small.Add([]byte(c), false, 1, 1)
	}
	if small.Evicted != 0 {
		t.Fatal("capacity above the distinct clients: no evictions expected")
	}
	for _, c := range small.Top(0, "") {
		if c.Conns != exact[c.Client] || c.Err != 0 {
			t.Errorf("exact mode: %s = %d, want %d", c.Client, c.Conns, exact[c.Client])
		}
	}
	bound := uint64(n / 50)
	for _, c := range tk.Top(10, "conns") {
		if c.Conns < exact[c.Client] || c.Conns-c.Err > exact[c.Client] || c.Err > bound {
			t.Errorf("bounded: %s = %d (err %d), exact %d, bound %d", c.Client, c.Conns, c.Err, exact[c.Client], bound)
		}
	}
	// Every client above N/Cap is in the table.
	in := map[string]bool{}
	for _, c := range tk.Top(0, "") {
		in[c.Client] = true
	}
	for c, k := range exact {
		if k > bound && !in[c] {
			t.Errorf("%s has %d > N/Cap = %d connections but is not in the table", c, k, bound)
		}
	}
}

// independent counts a synthetic log with encoding/json, not the parser.
type independent struct {
	lines            int
	perServer        map[string]int
	perServerErr     map[string]int
	perTerm          map[string]int
	perClient        map[string]int
	bytesIn          map[string]uint64
	durations        []float64
	gapStart, gapEnd time.Time
}

func countIndependently(t *testing.T, data []byte) independent {
	ind := independent{perServer: map[string]int{}, perServerErr: map[string]int{}, perTerm: map[string]int{},
		perClient: map[string]int{}, bytesIn: map[string]uint64{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var prev time.Time
	for sc.Scan() {
		var m struct {
			Time        time.Time `json:"time"`
			Client      string    `json:"client"`
			RealServer  string    `json:"real_server"`
			DurationMs  float64   `json:"duration_ms"`
			BytesIn     uint64    `json:"bytes_in"`
			Termination string    `json:"termination"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		ind.lines++
		ind.perServer[m.RealServer]++
		if m.Termination != "--" {
			ind.perServerErr[m.RealServer]++
		}
		ind.perTerm[m.Termination]++
		host, _, _ := strings.Cut(m.Client, ":")
		ind.perClient[host]++
		ind.bytesIn[m.RealServer] += m.BytesIn
		ind.durations = append(ind.durations, m.DurationMs)
		if !prev.IsZero() && m.Time.Sub(prev) > 10*time.Second {
			ind.gapStart, ind.gapEnd = prev, m.Time
		}
		prev = m.Time
	}
	return ind
}

func analyse(t *testing.T, o Options, srcs ...*Source) *Analyser {
	t.Helper()
	a, err := NewAnalyser(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(a, srcs...); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestReportsMatchIndependentCounts(t *testing.T) {
	var buf bytes.Buffer
	if err := Synth(&buf, 50000, 7, t0); err != nil {
		t.Fatal(err)
	}
	ind := countIndependently(t, buf.Bytes())
	src, _ := NewSource("synth", bytes.NewReader(buf.Bytes()))
	a := analyse(t, Options{Gap: 10 * time.Second}, src)
	if a.Lines != uint64(ind.lines) || a.Matched != a.Lines || a.Bad != 0 {
		t.Fatalf("lines %d matched %d bad %d, want %d", a.Lines, a.Matched, a.Bad, ind.lines)
	}
	for _, g := range a.Servers() {
		if g.Conns != uint64(ind.perServer[g.Name]) || g.Errors != uint64(ind.perServerErr[g.Name]) || g.BytesIn != ind.bytesIn[g.Name] {
			t.Errorf("server %s: %d conns %d errors %d in, want %d %d %d", g.Name, g.Conns, g.Errors, g.BytesIn,
				ind.perServer[g.Name], ind.perServerErr[g.Name], ind.bytesIn[g.Name])
		}
	}
	if len(a.Servers()) != len(ind.perServer) {
		t.Errorf("%d servers, want %d", len(a.Servers()), len(ind.perServer))
	}
	for _, c := range a.Terminations() {
		if c.Count != uint64(ind.perTerm[c.Code.String()]) {
			t.Errorf("code %s: %d, want %d", c.Code, c.Count, ind.perTerm[c.Code.String()])
		}
	}
	cs, exact := a.Clients(5)
	if !exact {
		t.Error("5,000 clients under the default capacity: counts must be exact")
	}
	for _, c := range cs {
		if c.Conns != uint64(ind.perClient[c.Client]) {
			t.Errorf("client %s: %d, want %d", c.Client, c.Conns, ind.perClient[c.Client])
		}
	}
	a.opt.ClientSort = "bytes"
	byBytes, _ := a.Clients(3)
	for i := 1; i < len(byBytes); i++ {
		if byBytes[i].BytesIn+byBytes[i].BytesOut > byBytes[i-1].BytesIn+byBytes[i-1].BytesOut {
			t.Errorf("--sort bytes out of order: %+v", byBytes)
		}
	}
	sort.Float64s(ind.durations)
	for _, p := range Percentiles {
		exact := ind.durations[int(p*float64(len(ind.durations)-1))]
		if got := a.Duration.Quantile(p); math.Abs(got-exact) > SketchAlpha*exact+1e-9 {
			t.Errorf("duration p%g = %g, exact %g", p*100, got, exact)
		}
	}
	gaps := a.Gaps()
	if len(gaps) != 1 || gaps[0].Start != ind.gapStart.UnixNano() || gaps[0].End != ind.gapEnd.UnixNano() {
		t.Errorf("gaps %v, want one from %v to %v", gaps, ind.gapStart, ind.gapEnd)
	}
	bs, _ := a.Histogram()
	var sum uint64
	for _, b := range bs {
		sum += b.Conns
	}
	if sum != uint64(ind.lines) {
		t.Errorf("time histogram sums to %d, want %d", sum, ind.lines)
	}
	// Every output renders.
	for _, r := range Reports {
		tb, err := a.Table(r, 0)
		if err != nil {
			t.Fatal(err)
		}
		var w bytes.Buffer
		if err := WriteTable(&w, tb); err != nil || WriteCSV(&w, tb) != nil {
			t.Fatal(err)
		}
	}
	var w bytes.Buffer
	if err := a.WriteSVG(&w); err != nil || !strings.HasPrefix(w.String(), "<svg") {
		t.Errorf("svg: %v", err)
	}
}

func TestFilters(t *testing.T) {
	var buf bytes.Buffer
	Synth(&buf, 20000, 8, t0)
	ind := countIndependently(t, buf.Bytes())
	src, _ := NewSource("synth", bytes.NewReader(buf.Bytes()))
	a := analyse(t, Options{Reports: []string{"servers"}, Filter: Filter{RealServer: "10.0.0.1:80", Termination: "S"}}, src)
	var want uint64
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `"real_server":"10.0.0.1:80"`) && strings.Contains(line, `"termination":"S`) {
			want++
		}
	}
	if a.Matched != want || want == 0 || a.Lines != uint64(ind.lines) {
		t.Errorf("filter matched %d, want %d", a.Matched, want)
	}
	src, _ = NewSource("synth", bytes.NewReader(buf.Bytes()))
	since := t0.Add(5 * time.Second).UnixNano()
	a = analyse(t, Options{Reports: []string{"percentiles"}, Filter: Filter{Since: since, Until: since + int64(time.Second), MinDurationMs: 20}}, src)
	want = 0
	var e Entry
	for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		if Parse(line, &e) == nil && e.Time >= since && e.Time < since+int64(time.Second) && e.DurationMs >= 20 {
			want++
		}
	}
	if a.Matched != want || want == 0 {
		t.Errorf("time and duration filter matched %d, want %d", a.Matched, want)
	}
}

func TestGzipMergeAndBadLines(t *testing.T) {
	dir := t.TempDir()
	var all bytes.Buffer
	Synth(&all, 30000, 9, t0)
	lines := strings.SplitAfter(all.String(), "\n")
	lines = lines[:len(lines)-1]
	// Three files: round-robin lines (interleaved times), one gzipped, bad
	// lines in the second.
	var parts [3]bytes.Buffer
	for i, l := range lines {
		parts[i%3].WriteString(l)
		if i%3 == 1 && i/3 == 4 {
			parts[1].WriteString("{garbage\n")
		}
	}
	parts[1].WriteString(`{"time":"2026-12-03T10:00:00Z"}` + "\n")
	names := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log"), filepath.Join(dir, "c.log.1")}
	os.WriteFile(names[0], parts[0].Bytes(), 0o644)
	os.WriteFile(names[1], parts[1].Bytes(), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(parts[2].Bytes())
	zw.Close()
	os.WriteFile(names[2], gz.Bytes(), 0o644)
	var srcs []*Source
	for _, n := range names {
		s, err := Open(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srcs = append(srcs, s)
	}
	a, _ := NewAnalyser(Options{Reports: []string{"gaps", "servers"}, Gap: 10 * time.Second})
	if err := Run(a, srcs...); err != nil {
		t.Fatal(err)
	}
	if a.Matched != uint64(len(lines)) || a.Bad != 2 {
		t.Errorf("matched %d (want %d), bad %d (want 2)", a.Matched, len(lines), a.Bad)
	}
	if len(a.BadSamples) != 2 || a.BadSamples[0].String() != names[1]+":6: col 2: expected a key" ||
		!strings.HasPrefix(a.BadSamples[1].String(), names[1]+":10002: ") {
		t.Errorf("bad lines: %v", a.BadSamples)
	}
	// Merged in time order: the one 30 s silence is found whole, which
	// interleaved files read one after the other would not give.
	if g := a.Gaps(); len(g) != 1 || g[0].End-g[0].Start < int64(30*time.Second) {
		t.Errorf("gaps %v", g)
	}
}

func TestLateLinesSplitGaps(t *testing.T) {
	a, _ := NewAnalyser(Options{Reports: []string{"gaps"}, Gap: time.Second})
	for _, s := range []int64{0, 1, 10, 5, 20} {
		e := Entry{Time: s * 1e9, Termination: Normal}
		a.Add(&e)
	}
	// 1→10 split at 5 into 1→5 and 5→10; 10→20; 0→1 is just 1 s.
	g := a.Gaps()
	if len(g) != 4 || g[0] != (Gap{10e9, 20e9}) || g[1] != (Gap{5e9, 10e9}) || g[2] != (Gap{1e9, 5e9}) || g[3] != (Gap{0, 1e9}) {
		t.Errorf("gaps %v", g)
	}
}

func BenchmarkParse(b *testing.B) {
	var buf bytes.Buffer
	Synth(&buf, 10000, 1, t0)
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	lines = lines[:len(lines)-1]
	var e Entry
	b.SetBytes(int64(buf.Len() / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := Parse(lines[i%len(lines)], &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReportServers is the whole path of govs logs --report servers
// over an in-memory log: reading lines, parsing, the per-server figures.
func BenchmarkReportServers(b *testing.B) {
	var buf bytes.Buffer
	const n = 200000
	Synth(&buf, n, 1, t0)
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a, _ := NewAnalyser(Options{Reports: []string{"servers"}})
		src, _ := NewSource("bench", bytes.NewReader(buf.Bytes()))
		if err := Run(a, src); err != nil || a.Matched != n {
			b.Fatal(err, a.Matched)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

func TestSketchEdges(t *testing.T) {
	var s Sketch
	if s.Quantile(0.5) != 0 {
		t.Error("empty sketch")
	}
	for _, v := range []float64{math.NaN(), 0, 0.0001, 5, 1e12} {
		s.Add(v)
	}
	if s.Count() != 5 || s.Quantile(0.25) != 0 || s.Quantile(1) != 1e12 {
		t.Errorf("edges: count %d p25 %g max %g", s.Count(), s.Quantile(0.25), s.Quantile(1))
	}
	if q := s.Quantile(0.75); math.Abs(q-5)/5 > SketchAlpha {
		t.Errorf("p75 = %g, want 5 within 1%%", q)
	}
	var o Sketch
	o.Add(7)
	s.Merge(&o)
	if s.Count() != 6 {
		t.Error("merge")
	}
}

func TestTruncatedGzipIsNotFatal(t *testing.T) {
	var buf, z bytes.Buffer
	Synth(&buf, 5000, 12, t0)
	zw := gzip.NewWriter(&z)
	zw.Write(buf.Bytes())
	zw.Close()
	cut := z.Bytes()[:z.Len()/2]
	bad, _ := NewSource("cut.gz", bytes.NewReader(cut))
	good, _ := NewSource("good", bytes.NewReader(buf.Bytes()))
	a := analyse(t, Options{Reports: []string{"servers"}}, bad, good)
	if a.Bad != 1 || !strings.Contains(a.BadSamples[0].String(), "cut.gz:") || !strings.Contains(a.BadSamples[0].Err, "rest of the file skipped") {
		t.Errorf("bad %d: %v", a.Bad, a.BadSamples)
	}
	if a.Matched < 5000 || a.Matched >= 10000 {
		t.Errorf("matched %d: the good file whole and part of the cut one expected", a.Matched)
	}
}

// The writer's own layout takes the fast path; it must read every line
// exactly as the general parser does, and hand over anything else.
func TestParseOwnMatchesParseAny(t *testing.T) {
	var buf bytes.Buffer
	Synth(&buf, 3000, 13, t0)
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	lines = lines[:len(lines)-1]
	r := Record{Time: t0, Service: "esc\"aped\\", Client: netip.MustParseAddrPort("[::1]:1"), ConnectMs: -1, Termination: Normal}
	lines = append(lines, r.AppendJSON(nil))
	for _, l := range lines {
		var a, b Entry
		if !parseOwn(l, &a) {
			t.Fatalf("own line not on the fast path: %s", l)
		}
		if err := parseAny(l, &b); err != nil {
			t.Fatal(err)
		}
		a.scratch, b.scratch = nil, nil
		if string(a.Service) != string(b.Service) || string(a.Client) != string(b.Client) || string(a.RealServer) != string(b.RealServer) ||
			a.Time != b.Time || a.HasConnect != b.HasConnect || a.ConnectMs != b.ConnectMs || a.DurationMs != b.DurationMs ||
			a.BytesIn != b.BytesIn || a.BytesOut != b.BytesOut || a.Termination != b.Termination {
			t.Fatalf("%s: fast %+v, general %+v", l, a, b)
		}
	}
	// An extra key, a space: not the own layout, still read.
	own := string(lines[0])
	for _, l := range []string{strings.Replace(own, `}`, `,"extra":[1]}`, 1), strings.Replace(own, `,"client"`, `, "client"`, 1)} {
		var e Entry
		if parseOwn([]byte(l), &e) {
			t.Errorf("fast path took %s", l)
		}
		if err := Parse([]byte(l), &e); err != nil || e.BytesIn == 0 && e.BytesOut == 0 {
			t.Errorf("%s: %v %+v", l, err, e)
		}
	}
}
