// Package nft is govs's kernel dataplane: LVS-NAT ("nat") and FULLNAT
// ("fullnat") forwarding done by the kernel's netfilter, programmed through
// nftables, with conntrack doing the reverse translation of replies and the
// bookkeeping of flows. It is what IPVS would do, on kernels that have
// nftables but no IPVS.
//
// # The table
//
// govs owns one table, "inet govs" (Options.Table), and nothing else of the
// ruleset. At start the table is replaced (delete and re-create inside one
// batch: a table left by a crashed run goes), and Close removes it. Every
// later change is one netlink transaction too, so packets see either the
// old or the new rules, never a mix, but it keeps the table and its three
// base chains: it flushes their rules, deletes the previous generation's
// service chains and maps, adds the new generation's under new names (the
// generation is in the name: "s0g7", "s0g7_slots") and adds the base
// chains' rules again. Deleting a base chain would unregister its hook,
// and the kernel drops the packets queued to govs through NFQUEUE when
// their hook goes: their clients would retransmit their SYN a second
// later. A change that fails leaves the old rules in force, and the next
// one replaces the table again. Established flows are not disturbed by a
// change: their translation lives in conntrack.
//
//	chain queue  (filter, prerouting, priority mangle + 1, -149)
//	    first packet of a flow to a queue-scheduled service -> NFQUEUE
//	chain dnat   (nat, prerouting, priority dstnat -100)
//	    VIP:port -> jump to the service's chain
//	chain sNgG   one per service (N) and generation (G): choose the real
//	    server and DNAT to it, by maps sNgG_slots (and sNgG_marks)
//	chain snat   (nat, postrouting, priority srcnat 100)
//	    fullnat services: SNAT to local_addresses (or masquerade; sNgG_snat)
//	chain hold_conntrack   (no hook, nothing jumps to it)
//	    one rule reading ct state: keeps conntrack on while the table exists
//
// Firewall-mark services match by mark instead of VIP:port, ahead of the
// others, in these same chains: see fwmark.go.
//
// Established flows keep their translation through a stop and through
// every reload, the one removing the last service included (drain.go):
// conntrack runs only while some rule needs it, and hold_conntrack is
// that rule when draining or an empty service list leaves no other. A
// service a reload removes is retired: a stop waits for its flows within
// its grace period, and with no service left the table goes only when
// those flows have ended or that grace period is over.
//
// # Scheduling
//
// Schedulers the kernel can run without live state are run by the kernel:
// rr and wrr by "numgen inc mod N" over a map (wrr: IPVS's interleaved
// sequence for one period, weight/gcd entries per server), random by
// "numgen random mod N", sh by "jhash ip saddr mod 256" over IPVS's 256
// buckets (the hash function is jhash, not IPVS's, so the mapping of
// clients to servers differs from IPVS's while keeping its properties).
// Servers with weight 0 or overloaded take no slot: a weight change rebuilds
// the maps, so new flows go elsewhere at once while established ones finish
// through conntrack.
//
// mh, with its flags, is run by the kernel too: "jhash ip saddr mod 4093"
// (". th sport" with mh-port) over a map holding the Maglev table that
// sched.MaglevTable builds, the mh scheduler's own algorithm, from the
// servers the scheduler holds, each taking turns by its last weight.
// MaglevTableSize is IPVS's default, 4093 (a prime), not the 65537 of govs's
// mh scheduler: each change rebuilds the map (4093 elements, about 160 KB of
// netlink and 10 to 15 ms per mh service), so a small table keeps the
// transactions cheap, and it is still 100 times the servers for up to 40
// servers. The kernel hashes with jhash, not IPVS's hsiphash, so which
// client lands on which server is not IPVS's, but the Maglev properties
// hold: a client keeps its server while the set stays, and a change moves
// the clients of the changed servers and few others. A server at weight 0
// keeps its positions (IPVS's rule); the kernel cannot skip it at lookup, so
// its positions are set at each change: empty without mh-fallback (its
// clients' new flows are dropped, as IPVS fails the pick), the servers of a
// table of the available servers with mh-fallback (its clients go elsewhere,
// nobody else moves). See mhSlots.
//
// Every other scheduler (lc, wlc, sed, nq, dh, lblc, ...), and any service
// with persistence or connection limits, or with scheduler flags other than
// mh's, is run by govs itself: the first packet of each new flow goes to
// userspace through NFQUEUE (the xtables target through nft_compat: this
// kernel has no nft queue statement), govs picks with
// VirtualService.Schedule and answers with a verdict carrying the packet
// mark of the chosen real server; the service chain copies it to the
// conntrack mark and DNATs by a map on it. Verdicts are batched (one sendmsg
// per received batch) and the flows are spread over several queues by CPU
// fanout.
//
// Fail-open choice: the NFQUEUE rule has the bypass flag and the queues are
// configured fail-open, so when govs is not listening (crashed, restarting)
// or a queue is full, new flows are not dropped: they arrive unmarked and
// are spread round-robin by the kernel over the available servers, the
// fallback rule of every queue-scheduled service. A service without any
// available server drops new flows, as IPVS does, unless it has a sorry
// server.
//
// # Sorry server
//
// While a service's quorum is lost (by default: no real server up) the
// director's scheduler holds the sorry server alone, and the service's
// chain sends every new flow to it, whatever the scheduler ("numgen inc
// mod 1" over a map of one: no NFQUEUE); fullnat's SNAT applies to it as
// to the real servers. When the quorum is back the maps hold the real
// servers again: new flows go to them, while the sorry server's
// established flows finish through conntrack, or end at once with
// expire_nodest_conn (keepalived removes the sorry server from IPVS then).
// A queue-scheduled service gives the sorry server a mark of its own, so a
// verdict naming it in the moment before the rules follow is served too.
//
// Each change is one transaction, one sendmsg of every message of the
// table: the nftables socket's buffers are raised (SO_SNDBUFFORCE,
// SO_RCVBUFFORCE) past the kernel's defaults, which a few Maglev maps
// exceed, and map elements go in messages of at most 512.
//
// # Statistics
//
// A conntrack dump every Options.StatsInterval gives each real server its
// IPVS counts (TCP ESTABLISHED = active, anything else and UDP = inactive),
// written into its sched.Dest so lc/wlc/... see the kernel's truth, and
// bytes and packets (with nf_conntrack_acct on; New turns it on when it can)
// into director.Stats. Flows that start and end between two dumps are
// missed by the connection counter of kernel-scheduled services.
//
// # Snapshots
//
// What to serve comes from the director's snapshots (director.Snapshot,
// internal/desired): Prepare checks and plans one (planService, a pure
// function of the snapshot, pinned by the rule goldens in testdata/rules),
// Commit sends the plan as one transaction and publishes the view the
// queue readers and the statistics read; Apply does both after a health
// decision. There is no polling for changes: a snapshot that changes no
// rule programs nothing.
//
// It must not import cmd, internal/config or other dataplanes.
package nft
