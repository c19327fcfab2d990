//go:build race

package sim

// raceEnabled makes the tests simulate fewer requests: the race detector
// slows the simulator tenfold, and it looks for races, not statistics.
const raceEnabled = true
