// Command loggen writes a synthetic govs access log (docs/logs.md) for
// bench/logs.sh: go run ./bench/loggen -n 10000000 > access.log. The lines
// are accesslog.Synth's: 4 real servers, 5,000 clients, 5% errors, one 30 s
// gap, deterministic for a seed.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/govs-lb/govs/internal/accesslog"
)

func main() {
	n := flag.Int("n", 1000000, "lines")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	if err := accesslog.Synth(os.Stdout, *n, *seed, start); err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(1)
	}
}
