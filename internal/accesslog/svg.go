package accesslog

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// svgPercentiles are the points of the latency curve.
var svgPercentiles = []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}

// WriteSVG draws the time histogram (connections, errors in red) and the
// percentiles of connect time and duration (log scale) as one SVG. It
// needs the time and percentiles reports.
func (a *Analyser) WriteSVG(w io.Writer) error {
	if !a.want["time"] || !a.want["percentiles"] {
		return fmt.Errorf("svg: needs the time and percentiles reports")
	}
	const W, H, pad, panel = 900, 560, 60, 200
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	bs, width := a.Histogram()
	var peak uint64 = 1
	for _, x := range bs {
		peak = max(peak, x.Conns)
	}
	top := 40.0
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14">Connections per %s (errors in red): %d lines, %d matched</text>`+"\n", pad, width, a.Lines, a.Matched)
	plotW := float64(W - 2*pad)
	fmt.Fprintf(&b, `<line x1="%d" y1="%g" x2="%d" y2="%g" stroke="black"/>`+"\n", pad, top+panel, W-pad, top+panel)
	fmt.Fprintf(&b, `<text x="%d" y="%g" text-anchor="end">%d</text>`+"\n", pad-4, top+10, peak)
	fmt.Fprintf(&b, `<text x="%d" y="%g" text-anchor="end">0</text>`+"\n", pad-4, top+panel)
	if n := len(bs); n > 0 {
		bw := plotW / float64(n)
		for i, x := range bs {
			h := float64(x.Conns) / float64(peak) * panel
			e := float64(x.Errors) / float64(peak) * panel
			xx := float64(pad) + float64(i)*bw
			fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#4a78b5"/>`, xx, top+panel-h, max(bw-0.5, 0.5), h)
			if e > 0 {
				fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#d43d3d"/>`, xx, top+panel-e, max(bw-0.5, 0.5), e)
			}
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, `<text x="%d" y="%g">%s</text>`+"\n", pad, top+panel+16, fmtTime(bs[0].Start))
		fmt.Fprintf(&b, `<text x="%d" y="%g" text-anchor="end">%s</text>`+"\n", W-pad, top+panel+16,
			fmtTime(bs[len(bs)-1].Start+int64(width)))
	}
	// Latency percentiles, log scale in ms.
	top2 := top + panel + 80
	fmt.Fprintf(&b, `<text x="%d" y="%g" font-size="14">Percentiles (ms, log scale): duration (blue), connect time (green)</text>`+"\n", pad, top2-16)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range []*Sketch{&a.Duration, &a.Connect} {
		if s.Count() == 0 {
			continue
		}
		lo = min(lo, max(s.Quantile(0), SketchMin))
		hi = max(hi, s.Quantile(1))
	}
	if hi > lo {
		llo, lhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if lhi == llo {
			lhi++
		}
		y := func(v float64) float64 {
			return top2 + panel - (math.Log10(max(v, SketchMin))-llo)/(lhi-llo)*panel
		}
		x := func(i int) float64 { return float64(pad) + float64(i)/float64(len(svgPercentiles)-1)*plotW }
		for d := llo; d <= lhi; d++ {
			yy := top2 + panel - (d-llo)/(lhi-llo)*panel
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n",
				pad, yy, W-pad, yy, pad-4, yy+4, math.Pow(10, d))
		}
		for i, p := range svgPercentiles {
			fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">p%g</text>`+"\n", x(i), top2+panel+16, p*100)
		}
		for _, c := range []struct {
			s     *Sketch
			color string
		}{{&a.Duration, "#4a78b5"}, {&a.Connect, "#3a9a4a"}} {
			if c.s.Count() == 0 {
				continue
			}
			var pts []string
			for i, p := range svgPercentiles {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(c.s.Quantile(p))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c.color, strings.Join(pts, " "))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
