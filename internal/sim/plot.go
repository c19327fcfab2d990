package sim

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
)

// The latency plot: one panel per scenario, one curve per scheduler, the
// latency (log scale) against the percentile on a "nines" scale (y =
// -log10(1 - p): 90% at 1, 99% at 2, 99.9% at 3), so that the tail, where
// schedulers differ, takes most of the height.

const (
	panelW, panelH = 520, 330
	marginL        = 60
	marginR        = 130
	marginT        = 34
	marginB        = 44
	maxNines       = 4 // p99.99
)

// palette gives each scheduler of a plot its colour, in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// WriteSVG draws the latency distributions of the results, one panel per
// scenario in the order they first appear, two panels a row.
func WriteSVG(w io.Writer, rs []*Result) error {
	var scenarios []string
	by := map[string][]*Result{}
	var scheds []string
	seen := map[string]bool{}
	for _, r := range rs {
		if by[r.Scenario] == nil {
			scenarios = append(scenarios, r.Scenario)
		}
		by[r.Scenario] = append(by[r.Scenario], r)
		if !seen[r.Scheduler] {
			seen[r.Scheduler] = true
			scheds = append(scheds, r.Scheduler)
		}
	}
	color := map[string]string{}
	for i, s := range scheds {
		color[s] = palette[i%len(palette)]
	}
	cols := min(2, len(scenarios))
	rows := (len(scenarios) + cols - 1) / max(cols, 1)
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		cols*panelW, rows*panelH, cols*panelW, rows*panelH)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for k, sc := range scenarios {
		panel(bw, float64((k%cols)*panelW), float64((k/cols)*panelH), sc, by[sc], color)
	}
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

func panel(w io.Writer, ox, oy float64, name string, rs []*Result, color map[string]string) {
	// The x range: from the smallest p10 to the largest p99.99, in ms, but
	// no further than three times the median p99.99, so that a runaway
	// scheduler does not squash the others (its curve leaves at the right).
	lo := math.Inf(1)
	var tops []float64
	for _, r := range rs {
		if r.hist.n == 0 {
			continue
		}
		lo = min(lo, r.hist.quantile(0.1)*1e3)
		tops = append(tops, r.hist.quantile(1-math.Pow(10, -maxNines))*1e3)
	}
	hi := 0.0
	if len(tops) > 0 {
		slices.Sort(tops)
		hi = min(tops[len(tops)-1], 3*tops[(len(tops)-1)/2])
	} else {
		lo, hi = 1, 10
	}
	x0, x1 := math.Log10(nice(lo, false)), math.Log10(nice(hi, true))
	if x1 <= x0 {
		x1 = x0 + 1
	}
	pw, ph := float64(panelW-marginL-marginR), float64(panelH-marginT-marginB)
	px := func(ms float64) float64 {
		return ox + marginL + (math.Log10(ms)-x0)/(x1-x0)*pw
	}
	py := func(nines float64) float64 { return oy + marginT + ph - nines/maxNines*ph }
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", ox+marginL, oy+20, html.EscapeString(name))
	// Grid and axes.
	for n := 0; n <= maxNines; n++ {
		y := py(float64(n))
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px(math.Pow(10, x0)), y, px(math.Pow(10, x1)), y)
		label := [...]string{"0%", "90%", "99%", "99.9%", "99.99%"}[n]
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox+marginL-4, y+4, label)
	}
	marks := []float64{1, 2, 5}
	if x1-x0 > 3 {
		marks = marks[:1]
	}
	for e := math.Floor(x0); e <= math.Ceil(x1); e++ {
		for _, m := range marks {
			v := m * math.Pow(10, e)
			if lv := math.Log10(v); lv < x0-1e-9 || lv > x1+1e-9 {
				continue
			}
			x := px(v)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, py(0), x, py(maxNines), stroke)
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, py(0)+14, trimFloat(v))
		}
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">latency, ms (log scale)</text>`+"\n", ox+marginL+pw/2, py(0)+32)
	fmt.Fprintf(w, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">percentile</text>`+"\n", ox+14, oy+marginT+ph/2)
	// Curves: the cumulative share at each bucket's upper edge.
	for k, r := range rs {
		h := r.hist
		if h.n == 0 {
			continue
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="`, color[r.Scheduler])
		var c uint64
		lastX := -1.0
		for b, cnt := range h.counts {
			if cnt == 0 {
				continue
			}
			c += cnt
			p := float64(c) / float64(h.n)
			nines := float64(maxNines)
			if p < 1 {
				nines = min(-math.Log10(1-p), maxNines)
			}
			ms := histMin * math.Pow(histStep, float64(b+1)) * 1e3
			x := px(min(max(ms, math.Pow(10, x0)), math.Pow(10, x1)))
			if x-lastX < 0.5 && nines < maxNines && c < h.n {
				continue // thin the points to about one a pixel
			}
			lastX = x
			fmt.Fprintf(w, "%.1f,%.1f ", x, py(nines))
			if nines >= maxNines {
				break
			}
		}
		fmt.Fprintln(w, `"/>`)
		ly := oy + marginT + 8 + float64(k)*16
		lx := ox + float64(panelW-marginR) + 10
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly, lx+18, ly, color[r.Scheduler])
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+22, ly+4, html.EscapeString(r.Scheduler))
	}
}

// nice rounds v to a 1, 2 or 5 times a power of ten, up or down.
func nice(v float64, up bool) float64 {
	e := math.Floor(math.Log10(v))
	p := math.Pow(10, e)
	if up {
		for _, m := range []float64{1, 2, 5, 10} {
			if m*p >= v*(1-1e-9) {
				return m * p
			}
		}
	}
	for _, m := range []float64{5, 2, 1} {
		if m*p <= v*(1+1e-9) {
			return m * p
		}
	}
	return p
}

func trimFloat(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}
