package accesslog

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Table is a report: named columns, rows of cells (string, uint64, int64
// or float64), and notes (exactness, bad lines) shown under a terminal
// table and kept out of CSV.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]any
	Notes   []string
}

// Percentiles the reports show.
var Percentiles = []float64{0.50, 0.75, 0.90, 0.95, 0.99, 0.999}

// Table builds the named report; top limits the rows of the clients and
// gaps reports (and of the others when positive).
func (a *Analyser) Table(name string, top int) (*Table, error) {
	if !a.want[name] {
		return nil, fmt.Errorf("report %q was not computed", name)
	}
	t := &Table{Title: name}
	switch name {
	case "servers", "services":
		key := "real_server"
		groups := a.Servers()
		if name == "services" {
			key, groups = "service", a.Services()
		}
		t.Columns = []string{key, "conns", "errors", "error_pct", "top_errors", "connect_p50_ms", "connect_p95_ms",
			"connect_p99_ms", "duration_p50_ms", "duration_p95_ms", "duration_p99_ms", "bytes_in", "bytes_out"}
		for i, g := range groups {
			if top > 0 && i >= top {
				break
			}
			t.Rows = append(t.Rows, []any{g.Name, g.Conns, g.Errors, pct(g.Errors, g.Conns), topCodes(g.Codes, 3),
				q(&g.Connect, 0.5), q(&g.Connect, 0.95), q(&g.Connect, 0.99),
				q(&g.Duration, 0.5), q(&g.Duration, 0.95), q(&g.Duration, 0.99), g.BytesIn, g.BytesOut})
		}
		t.Notes = append(t.Notes, fmt.Sprintf("percentiles within %g%% (log-bucket sketch); errors: termination other than --", SketchAlpha*100))
	case "terminations":
		t.Columns = []string{"termination", "conns", "pct"}
		for i, c := range a.Terminations() {
			if top > 0 && i >= top {
				break
			}
			t.Rows = append(t.Rows, []any{c.Code.String(), c.Count, pct(c.Count, a.Matched)})
		}
	case "clients":
		if top <= 0 {
			top = 10
		}
		cs, exact := a.Clients(top)
		t.Columns = []string{"client", "conns", "conns_overcount_max", "errors", "bytes_in", "bytes_out"}
		for _, c := range cs {
			t.Rows = append(t.Rows, []any{c.Client, c.Conns, c.Err, c.Errors, c.BytesIn, c.BytesOut})
		}
		if !exact {
			t.Notes = append(t.Notes, fmt.Sprintf("more clients than --max-clients %d: counts are upper bounds, over by at most conns_overcount_max; "+
				"errors and bytes are lower bounds", a.opt.MaxClients))
		}
	case "time":
		bs, width := a.Histogram()
		t.Columns = []string{"time", "conns", "errors"}
		for _, b := range bs {
			t.Rows = append(t.Rows, []any{fmtTime(b.Start), b.Conns, b.Errors})
		}
		t.Notes = append(t.Notes, "bucket "+width.String())
	case "percentiles":
		t.Columns = []string{"percentile", "connect_ms", "duration_ms"}
		for _, p := range Percentiles {
			t.Rows = append(t.Rows, []any{strconv.FormatFloat(p*100, 'f', -1, 64), q(&a.Connect, p), q(&a.Duration, p)})
		}
		t.Rows = append(t.Rows, []any{"max", q(&a.Connect, 1), q(&a.Duration, 1)})
		t.Notes = append(t.Notes, fmt.Sprintf("%d durations, %d connect times; within %g%% (log-bucket sketch), max exact",
			a.Duration.Count(), a.Connect.Count(), SketchAlpha*100))
	case "gaps":
		if top <= 0 {
			top = 10
		}
		t.Columns = []string{"start", "end", "seconds"}
		for i, g := range a.Gaps() {
			if i >= top {
				break
			}
			t.Rows = append(t.Rows, []any{fmtTime(g.Start), fmtTime(g.End), float64(g.End-g.Start) / 1e9})
		}
		t.Notes = append(t.Notes, fmt.Sprintf("%d gaps of at least %s in accepted connections", len(a.gaps), a.opt.Gap))
		if a.gapsDropped > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%d more gaps not kept (--max-gaps)", a.gapsDropped))
		}
	}
	return t, nil
}

func pct(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return float64(int64(float64(n)/float64(of)*10000+0.5)) / 100
}

// q is a quantile rounded to microseconds; nil (empty) when no value.
func q(s *Sketch, p float64) any {
	if s.Count() == 0 {
		return nil
	}
	return float64(int64(s.Quantile(p)*1000+0.5)) / 1000
}

func topCodes(m map[Termination]uint64, n int) string {
	cs := sortCodes(m)
	var b strings.Builder
	for i, c := range cs {
		if i >= n {
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", c.Code, c.Count)
	}
	return b.String()
}

func fmtTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(TimeLayout)
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case uint64:
		return strconv.FormatUint(x, 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// WriteTable writes t as aligned columns, numbers to the right.
func WriteTable(w io.Writer, t *Table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(t.Columns, "\t")+"\t")
	for _, r := range t.Rows {
		cs := make([]string, len(r))
		for i, v := range r {
			cs[i] = cell(v)
		}
		fmt.Fprintln(tw, strings.Join(cs, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range t.Notes {
		fmt.Fprintln(w, "#", n)
	}
	return nil
}

// WriteCSV writes t with a header line; empty cells for unknown values.
func WriteCSV(w io.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	cw.Write(t.Columns)
	for _, r := range t.Rows {
		cs := make([]string, len(r))
		for i, v := range r {
			if v != nil {
				cs[i] = cell(v)
			}
		}
		cw.Write(cs)
	}
	cw.Flush()
	return cw.Error()
}

// JSONReport is the JSON document of govs logs --format json.
type JSONReport struct {
	Lines    uint64                      `json:"lines"`
	Matched  uint64                      `json:"matched"`
	Bad      uint64                      `json:"bad_lines"`
	BadLines []string                    `json:"bad_line_samples,omitempty"`
	Reports  map[string][]map[string]any `json:"reports"`
	Notes    map[string][]string         `json:"notes,omitempty"`
}

// WriteJSON writes the tables as one JSON document: each report a list of
// objects keyed by column, null for unknown values.
func (a *Analyser) WriteJSON(w io.Writer, ts []*Table) error {
	r := JSONReport{Lines: a.Lines, Matched: a.Matched, Bad: a.Bad, Reports: map[string][]map[string]any{}, Notes: map[string][]string{}}
	for _, b := range a.BadSamples {
		r.BadLines = append(r.BadLines, b.String())
	}
	for _, t := range ts {
		rows := make([]map[string]any, 0, len(t.Rows))
		for _, row := range t.Rows {
			o := make(map[string]any, len(row))
			for i, v := range row {
				o[t.Columns[i]] = v
			}
			rows = append(rows, o)
		}
		r.Reports[t.Title] = rows
		if len(t.Notes) > 0 {
			r.Notes[t.Title] = t.Notes
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
