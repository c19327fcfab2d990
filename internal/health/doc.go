// Package health checks real servers and decides, from what the checks
// see, whether each one is up, down or draining and what weight it takes.
//
// It has three layers, kept apart so the logic is tested without sleeps:
//
//   - Checkers (tcp.go, http.go, dns.go, script.go, agent.go, smtp.go,
//     udp.go, ping.go, file.go) do the I/O of one check and return a Result.
//     Each is registered by its configuration type name (Register, New).
//   - The pure core: Tracker is the rise/fall state machine of one real
//     server, with keepalived's alpha and inhibit_on_failure, HAProxy's agent
//     states, an operator's drain, passive suspicion and a linear slow start;
//     Quorum is a virtual service's quorum with hysteresis; ServiceMachine
//     (machine.go) is a virtual service's whole health policy over them:
//     quorum, sorry server, slow-start deadline, drain, passive suspicion,
//     alpha/omega, handing back a Decision (weights, the scheduler's set,
//     effects to log, record and run). All take the time as an argument and
//     do no I/O.
//   - Runner schedules the checks of many real servers: one timer for all
//     of them, spread by jitter, retried as keepalived's retry and
//     delay_before_retry say, with a bound on the checks in flight. Its
//     workers are a Pool. AgentProbes (prober.go), prequal's probes of the
//     real servers' agents, runs on a Pool too: one bounded pool design for
//     both, the director keeping only a thin sched.Prober adapter.
//
// The director (internal/director/health*.go) is the adapter: it feeds
// each service's ServiceMachine and applies its decisions to the
// schedulers and dataplanes. This package must not import the director or
// a dataplane; of the schedulers it knows only internal/sched's Dest and
// Signal, which its agent probes answer prequal with.
package health
