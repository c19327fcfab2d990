package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/govs-lb/govs/internal/sched"
)

// DefaultSchedulers are the schedulers govs sim compares by default: the
// IPVS baselines and the adaptive ones.
var DefaultSchedulers = []string{"rr", "wlc", "lc", "twos", "pewma", "prequal", "adaptive-weights", "predict"}

// Suite is a set of runs: every scenario under every scheduler.
type Suite struct {
	Scenarios  []*Scenario
	Schedulers []string
	Seed       uint64
	Requests   int // 0: each scenario's own
	Parallel   int // runs at once; 0: GOMAXPROCS
}

// Run runs the suite and returns the results scenario by scenario, each in
// the order of Schedulers, whatever the parallelism.
func (su *Suite) Run() ([]*Result, error) {
	for _, name := range su.Schedulers {
		if !sched.Known(name) && name != Oracle {
			return nil, fmt.Errorf("unknown scheduler %q (known: %v)", name, sched.Names())
		}
	}
	results := make([]*Result, len(su.Scenarios)*len(su.Schedulers))
	errs := make([]error, len(results))
	tasks := make(chan int)
	par := su.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for range min(par, len(results)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range tasks {
				sc := su.Scenarios[k/len(su.Schedulers)]
				results[k], errs[k] = Run(sc, su.Schedulers[k%len(su.Schedulers)], RunOptions{Seed: su.Seed, Requests: su.Requests})
			}
		}()
	}
	for k := range results {
		tasks <- k
	}
	close(tasks)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// CSVHeader is the header line of WriteCSV.
var CSVHeader = []string{"scenario", "scheduler", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "throughput", "util_spread"}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// WriteCSV writes one line per result under CSVHeader.
func WriteCSV(w io.Writer, rs []*Result) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	for _, r := range rs {
		cw.Write([]string{r.Scenario, r.Scheduler, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.P999),
			strconv.FormatFloat(r.Throughput, 'f', 1, 64), strconv.FormatFloat(r.UtilSpread, 'f', 3, 64)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the results as a JSON array, with per-server utilisation
// and counts besides the CSV's columns.
func WriteJSON(w io.Writer, rs []*Result) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	if rs == nil {
		rs = []*Result{}
	}
	return e.Encode(rs)
}

// WriteTable writes the results as an aligned table. When wlc is among the
// schedulers, a column gives each p99 as a multiple of wlc's in the same
// scenario.
func WriteTable(w io.Writer, rs []*Result) error {
	base := map[string]float64{}
	for _, r := range rs {
		if r.Scheduler == "wlc" {
			base[r.Scenario] = r.P99
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tscheduler\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tp99/wlc\treq/s\tutil spread\tfailed\t")
	prev := ""
	for _, r := range rs {
		name := r.Scenario
		if name == prev {
			name = ""
		}
		prev = r.Scenario
		rel := "-"
		if b := base[r.Scenario]; b > 0 {
			rel = strconv.FormatFloat(r.P99/b, 'f', 2, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%.0f\t%.3f\t%d\t\n",
			name, r.Scheduler, r.P50, r.P90, r.P99, r.P999, rel, r.Throughput, r.UtilSpread, r.Failed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Timeouts, for the scenarios with a client timeout, after the table so
	// that the table keeps its columns.
	for _, r := range rs {
		if r.Timeouts > 0 {
			fmt.Fprintf(w, "%s/%s: %d timed out; the first at %.2fx the capacity\n", r.Scenario, r.Scheduler, r.Timeouts, r.FirstTimeoutLoad)
		}
	}
	for _, r := range rs {
		if r.WindowP99 > 0 || len(r.CalledAt) > 0 {
			called := make([]string, len(r.CalledAt))
			for i, at := range r.CalledAt {
				called[i] = strconv.FormatFloat(at, 'f', 1, 64) + "s"
			}
			fmt.Fprintf(w, "%s/%s: p99 %.2f ms in the window; standby servers called at [%s]\n", r.Scenario, r.Scheduler,
				r.WindowP99, strings.Join(called, " "))
		}
	}
	return nil
}
