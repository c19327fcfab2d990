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
//     Quorum is a virtual service's quorum with hysteresis. Both take the
//     time as an argument and do no I/O.
//   - Runner schedules the checks of many real servers: one timer for all
//     of them, spread by jitter, retried as keepalived's retry and
//     delay_before_retry say, with a bound on the checks in flight.
//
// The director (internal/director/health*.go) ties them together: it feeds
// results to Trackers and applies the weights they compute to the
// schedulers. This package must not import the director or a dataplane.
package health
