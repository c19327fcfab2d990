// Package sim is a discrete-event simulator of a govs director in front of
// its real servers, for comparing schedulers on latency before trusting them
// with traffic (govs sim; docs/sim.md).
//
// Each real server has a capacity (parallel slots, a FIFO queue beyond) and
// a service-time distribution; a scenario adds heterogeneity, noisy
// neighbours, failures and recoveries, bursty arrivals and a target
// utilisation. The simulator drives the real schedulers of internal/sched,
// built by name, through the same calls the proxy makes: Dest.Bind when a
// connection is scheduled, Activate when the connection to the real server
// is established, Unbind when it ends, and the signals of sched.Signal
// (connect time, first byte, duration, health-check latency, agent load,
// probe answers) for the schedulers that observe them.
//
// A run is deterministic for a seed: randomness comes from seeded PCG
// streams, time is simulated, and every output is in a fixed order. The
// arrival times and request sizes depend on the seed and scenario only, so
// every scheduler faces the same requests.
//
// This package imports sched and nothing else of govs.
package sim
