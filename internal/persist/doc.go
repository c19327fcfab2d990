// Package persist holds IPVS's persistence templates: the memory that sends
// a client (or a client network, by netmask) back to the real server it was
// given before, for persistence_timeout after its last connection.
//
// A Table is pure state with an injected clock: no I/O, no goroutine. The
// director looks a client up before scheduling (Lookup), records the
// scheduler's choice when there is no usable template (Bind), releases the
// template when the connection ends (Release), drops a removed real server's
// templates (Forget) and sweeps expired ones now and then (Expire).
//
// This package imports sched (for *sched.Dest) and nothing else of govs.
package persist
