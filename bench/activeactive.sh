#!/usr/bin/env bash
# bench/activeactive.sh: active-active directors behind a real FRR router
# (issue 15, docs/bgp.md "Several directors"), in network namespaces: the
# topology of test/bgp_maglev_test.go (a client, FRR with ECMP and BFD,
# three govs directors with forwarding dr, four real servers answering with
# their names).
#
#   1. RUNS runs of TestBGPActiveActiveFlows: 300 long-lived connections
#      (a line every 50 ms) plus a stream of new ones through a director
#      stopped (SIGTERM), one joining, one killed (kill -9 with its link cut:
#      only BFD can notice), real servers added and removed; rr (each
#      director schedules on its own) side by side with mh (the same Maglev
#      table on every director). Medians (and the worst run) of the share of
#      established connections that survived each event, of the detection
#      time (kill to the route gone from the router's FIB) and of the
#      convergence times (SIGTERM to withdrawn; start to announced for good).
#   2. BenchmarkBGPActiveActiveNewConns: new connections/s through 1, 2 and
#      3 directors (mh), in one lab and one run.
#
# Safety: the go tests build everything inside namespaces they create and
# delete, and stop the processes they started; bounded runs. Holds
# /tmp/govs-bench.lock while measuring.
#
# Settings: RUNS=5 BENCHTIME=5s LOCK_WAIT=900 RESULTS=bench/RESULTS.md
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

RUNS=${RUNS:-5}
BENCHTIME=${BENCHTIME:-5s}
LOCK_WAIT=${LOCK_WAIT:-900}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
[[ $RUNS =~ ^[0-9]+$ ]] && ((RUNS >= 1 && RUNS <= 20)) || { echo "activeactive.sh: RUNS=$RUNS: want 1-20" >&2; exit 2; }
[[ $BENCHTIME =~ ^[0-9]+s$ ]] || { echo "activeactive.sh: BENCHTIME=$BENCHTIME: want whole seconds, e.g. 5s" >&2; exit 2; }
[[ $LOCK_WAIT =~ ^[0-9]+$ ]] || { echo "activeactive.sh: LOCK_WAIT=$LOCK_WAIT: want a whole number" >&2; exit 2; }
((EUID == 0)) || { echo "activeactive.sh: needs root (network namespaces)" >&2; exit 1; }
for t in go ip nft vtysh awk flock; do
	command -v "$t" >/dev/null 2>&1 || { echo "activeactive.sh: missing $t (apt-get install -y iproute2 nftables frr)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/govs-aa.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
exec 9>/tmp/govs-bench.lock
flock -w "$LOCK_WAIT" 9 || { echo "activeactive.sh: another benchmark holds /tmp/govs-bench.lock" >&2; exit 1; }

cd "$ROOT"
for i in $(seq 1 "$RUNS"); do
	echo "activeactive.sh: run $i of $RUNS" >&2
	if ! go test -count=1 -timeout 10m -run '^TestBGPActiveActiveFlows$' -v ./test/ >"$TMP/run$i.log" 2>&1; then
		echo "activeactive.sh: run $i failed (kept in the results; log tail below)" >&2
		tail -40 "$TMP/run$i.log" >&2
	fi
	grep -o 'AA: .*' "$TMP/run$i.log" >>"$TMP/aa.txt" || true
done
echo "activeactive.sh: new connections/s through 1, 2, 3 directors" >&2
go test -count=1 -timeout 10m -run XXX -bench BGPActiveActiveNewConns -benchtime "$BENCHTIME" ./test/ >"$TMP/bench.log" 2>&1 ||
	{ tail -40 "$TMP/bench.log" >&2; exit 1; }

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
mins() { sort -g | head -1; }
# ms: a Go duration (296ms, 1.2s) in milliseconds
ms() { awk '{ d = $1; if (d ~ /ms$/) { sub(/ms$/, "", d); print d + 0 } else if (d ~ /µs$/) { sub(/µs$/, "", d); print d / 1000 } else { sub(/s$/, "", d); print d * 1000 } }'; }

SEC="$TMP/section.md"
{
	echo "<!-- bench/activeactive.sh begin -->"
	echo "## Active-active directors behind FRR: flow survival, detection, new connections/s (issue 15)"
	echo
	echo "\`bench/activeactive.sh\` ($(date -u +%Y-%m-%d), RUNS=$RUNS, BENCHTIME=$BENCHTIME; $(nproc) cores shared with other work, load average"
	echo "$(cut -d' ' -f1-3 /proc/loadavg) at the end). Three govs directors (\`forwarding: dr\`) announce the VIP over BGP with BFD"
	echo "(200 ms x 3) to a real FRR 8.4 router (ECMP, \`fib_multipath_hash_policy=1\`); four real servers answer with their names;"
	echo "300 long-lived connections exchange a line every 50 ms while new connections stream in. \"Survived\" is the share"
	echo "of the connections established before the event that kept their real server with no error; median and worst"
	echo "of $RUNS runs (test/bgp_maglev_test.go, TestBGPActiveActiveFlows)."
	echo
	echo "| event | rr: survived (median, worst) | mh: survived (median, worst) |"
	echo "| --- | --- | --- |"
	for ev in "d3 stopped (SIGTERM)" "d3 joins" "d2 killed (kill -9, link cut)" "rs4 added" "rs1 removed"; do
		row="| $ev |"
		for s in rr mh; do
			vals=$(grep -F "AA: $s: $ev:" "$TMP/aa.txt" | sed -E 's/.*survived +([0-9.]+)%.*/\1/' || true)
			if [[ -z $vals ]]; then
				row+=" - |"
			else
				row+=" $(echo "$vals" | median)% ($(echo "$vals" | mins)%) |"
			fi
		done
		echo "$row"
	done
	echo
	det=$(grep -F "AA: detect:" "$TMP/aa.txt" | sed -E 's/.*FIB: ([0-9.]+(ms|s|µs)).*/\1/' | ms || true)
	stopc=$(grep -F "AA: converge: SIGTERM" "$TMP/aa.txt" | sed -E 's/.*FIB: ([0-9.]+(ms|s|µs)).*/\1/' | ms || true)
	joinc=$(grep -F "AA: converge: start" "$TMP/aa.txt" | sed -E 's/.*for good: ([0-9.]+(ms|s|µs)).*/\1/' | ms || true)
	echo "| time | median | samples (ms) |"
	echo "| --- | --- | --- |"
	echo "| kill -9 + link cut to the route gone from the router's FIB (BFD) | $(echo "$det" | median) ms | $(echo $det) |"
	echo "| SIGTERM to the route gone (withdraw) | $(echo "$stopc" | median) ms | $(echo $stopc) |"
	echo "| start to the route in the FIB for good (start, checks, announce_delay 1s, FRR's first BFD reset) | $(echo "$joinc" | median) ms | $(echo $joinc) |"
	echo
	echo "New connections/s (connect, one line, close; 8 clients) through 1, 2 and 3 directors (mh), one lab, one run:"
	echo "directors join one by one, then leave again (\"again\": the drift of the shared machine over the run)"
	echo "(\`go test -run XXX -bench BGPActiveActiveNewConns -benchtime $BENCHTIME ./test/\`); govs CPU is the directors'"
	echo "govs processes summed (the kernel's forwarding is not in it); flaps are BGP sessions lost during the measure."
	echo
	echo "| directors | conns/s | failed | govs CPU | flaps |"
	echo "| --- | --- | --- | --- | --- |"
	awk '/^BenchmarkBGPActiveActiveNewConns\/directors=/ {
		split($1, a, "="); n = a[2]; sub(/-[0-9]+$/, "", n); sub(/#[0-9]+$/, " (again)", n)
		for (i = 1; i <= NF; i++) {
			if ($i == "conns/s") c = $(i-1); if ($i == "failed") f = $(i-1)
			if ($i == "govs-cpu-%") u = $(i-1); if ($i == "flaps") x = $(i-1)
		}
		print "| " n " | " c " | " f + 0 " | " u "% | " x + 0 " |" }' "$TMP/bench.log"
	echo
	echo "Command: \`bench/activeactive.sh\` (RUNS=$RUNS BENCHTIME=$BENCHTIME)."
	echo "<!-- bench/activeactive.sh end -->"
} >"$SEC"
write_section activeactive.sh "$SEC" "$RESULTS"
cat "$SEC"
