package sim_test

import (
	"fmt"

	"github.com/govs-lb/govs/internal/sim"
)

// Seven real servers and an eighth four times slower, all of weight 1, at
// 80% of their capacity: wlc sends the slow one its share of connections,
// prequal mostly spares it.
func Example() {
	sc, err := sim.Parse("mine.yaml", []byte(`
utilisation: 0.8
service: {distribution: lognormal, mean: 10ms, sigma: 0.5}
capacity: 4
servers:
  - count: 7
  - {count: 1, slowdown: 4}
`))
	if err != nil {
		panic(err)
	}
	for _, s := range []string{"wlc", "prequal"} {
		r, err := sim.Run(sc, s, sim.RunOptions{Seed: 1, Requests: 50000})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-8s p99 %3.0f ms, slow server busy %2.0f%%\n", s, r.P99, 100*r.Util[7])
	}
	// Output:
	// wlc      p99  47 ms, slow server busy 80%
	// prequal  p99  33 ms, slow server busy 21%
}
