#!/usr/bin/env bash
# bench/udp.sh: the proxy's UDP data path on loopback, event loops (govs)
# against the goroutine path (govsgo: the same binary with
# GOVS_PROXY_LOOPS=off): request-response datagrams/s and p99 with CLIENTS
# flows, the proxy's CPU per request and answer (/proc/PID/stat, which the
# machine's load barely moves), system calls per request (strace -f -c),
# and the proxy's resident memory per idle flow (VmRSS with IDLE flows held).
# Rounds alternate the targets; medians.
#
# Safety: loopback only; bounded runs; only the processes started here are
# stopped, by PID, on exit.
#
# Settings (env): ROUNDS=3 SECONDS_RUN=5 CLIENTS=16 IDLE=2000 BASE_PORT=27280
# GOVS_BIN= (default: build bench/out/govs); RESULTS=path (default
# bench/RESULTS.md).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
ROUNDS=${ROUNDS:-3}
SECONDS_RUN=${SECONDS_RUN:-5}
CLIENTS=${CLIENTS:-16}
IDLE=${IDLE:-2000}
BASE_PORT=${BASE_PORT:-27280}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
HOST=127.0.0.1
for v in ROUNDS SECONDS_RUN CLIENTS IDLE BASE_PORT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "udp.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
((ROUNDS >= 1 && ROUNDS <= 10 && SECONDS_RUN >= 1 && SECONDS_RUN <= 30 && CLIENTS >= 1 && CLIENTS <= 512 &&
	IDLE >= 1 && IDLE <= 10000 && BASE_PORT >= 1024 && BASE_PORT + 2 <= 65535)) ||
	{ echo "udp.sh: settings out of bounds" >&2; exit 2; }
for t in strace go ss; do
	command -v "$t" >/dev/null || { echo "udp.sh: missing $t (apt-get install -y strace iproute2)" >&2; exit 1; }
done

BENCH=udp.sh
bench_tmp govs-udp
wait_udp() {
	local i
	for ((i = 0; i < 100; i++)); do
		ss -Huln "( sport = :$1 )" | grep -q "$HOST:$1" && return 0
		sleep 0.1
	done
	echo "udp.sh: nothing bound to udp $1" >&2
	return 1
}

bench_govs
mkdir -p "$HERE/out"
(cd "$ROOT" && go build -o bench/out/udpload ./bench/udpload)
LOAD=$HERE/out/udpload
P_BACKEND=$BASE_PORT
declare -A PORT=([govs]=$((BASE_PORT + 1)) [govsgo]=$((BASE_PORT + 2)))
for g in govs govsgo; do
	cat >"$TMP/$g.yaml" <<CONF
logging: {level: warn}
virtual_servers:
  - {name: $g, address: $HOST:${PORT[$g]}, protocol: udp, idle_timeout: 120s, real_servers: [{address: $HOST:$P_BACKEND}]}
CONF
done
start_bg "$TMP/backend.log" "$LOAD" -echo "$HOST:$P_BACKEND" -hold 1h
wait_udp "$P_BACKEND"
declare -A PID=()
start_bg "$TMP/govs.log" "$GOVS_BIN" run --socket "$TMP/govs.sock" -c "$TMP/govs.yaml"
PID[govs]=$LAST_PID
start_bg "$TMP/govsgo.log" env GOVS_PROXY_LOOPS=off "$GOVS_BIN" run --socket "$TMP/govsgo.sock" -c "$TMP/govsgo.yaml"
PID[govsgo]=$LAST_PID
for t in govs govsgo; do wait_udp "${PORT[$t]}"; done
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{v[NR]=$1} END { if (NR == 0) { print "n/a"; exit } print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

declare -A RATE=() P99=() CPU=() LOST=()
LOADS=""
for ((r = 1; r <= ROUNDS; r++)); do
	for t in govs govsgo; do
		c0=$(ticks "${PID[$t]}")
		out=$(timeout $((SECONDS_RUN + 30)) "$LOAD" -addr "$HOST:${PORT[$t]}" -clients "$CLIENTS" -duration "${SECONDS_RUN}s")
		c1=$(ticks "${PID[$t]}")
		n=$(field requests "$out")
		RATE[$t]+="$(field rate "$out") "
		P99[$t]+="$(field p99_ms "$out") "
		LOST[$t]+="$(field lost "$out") "
		CPU[$t]+="$(awk -v c=$((c1 - c0)) -v n="$n" -v k="$TCK" 'BEGIN { printf "%.2f", n ? c * 1e6 / k / n : 0 }') "
		echo "round $r $t: $out" >&2
	done
	LOADS+="$(cut -d' ' -f1 /proc/loadavg) "
done

# calls TARGET: strace -c during one load run; calls per request and the main ones
calls() {
	local t=$1 out n
	timeout $((SECONDS_RUN + 30)) strace -f -c -o "$TMP/strace.$t" -p "${PID[$t]}" &
	local sp=$!
	sleep 1
	out=$(timeout $((SECONDS_RUN + 30)) "$LOAD" -addr "$HOST:${PORT[$t]}" -clients "$CLIENTS" -duration "${SECONDS_RUN}s")
	kill -INT "$sp" 2>/dev/null || true
	wait "$sp" 2>/dev/null || true
	n=$(field requests "$out")
	awk -v n="${n:-0}" '
		$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { c[$NF]=$4 }
		$NF=="total" { total=$(NF-2) }
		END {
			if (n == 0) { print "n/a | "; exit }
			out=""; for (k in c) if (c[k]/n >= 0.05) out=out sprintf("%s %.2f, ", k, c[k]/n)
			printf "%.2f | %s\n", total/n, out
		}' "$TMP/strace.$t"
}

# idle TARGET: the proxy's VmRSS growth per flow with IDLE flows held
idle() {
	local t=$1 before after i
	before=$(rss_kib "${PID[$t]}")
	start_bg "$TMP/idle.$t" "$LOAD" -addr "$HOST:${PORT[$t]}" -idle "$IDLE" -hold 120s
	local lp=$LAST_PID
	for ((i = 0; i < 600; i++)); do
		grep -q '^ready' "$TMP/idle.$t" && break
		sleep 0.1
	done
	sleep 1
	after=$(rss_kib "${PID[$t]}")
	kill -TERM "$lp" 2>/dev/null || true
	wait "$lp" 2>/dev/null || true
	awk -v a="$after" -v b="$before" -v n="$IDLE" -v r="$(cat "$TMP/idle.$t")" 'BEGIN { printf "%.2f (%s)", (a - b) / n, r }'
}

SECTION=$TMP/section.md
{
	echo "<!-- bench/udp.sh begin -->"
	echo "## UDP proxy: event loops against goroutines (issue 19)"
	echo
	echo "Written by \`bench/udp.sh\`; do not edit between the markers."
	echo
	echo "- Command: \`ROUNDS=$ROUNDS SECONDS_RUN=$SECONDS_RUN CLIENTS=$CLIENTS IDLE=$IDLE bench/udp.sh\`; $(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end of each round: $LOADS"
	echo "- Method: \`bench/udpload\` runs $CLIENTS clients (one socket, so one flow, each) in 64-byte request-response loops for ${SECONDS_RUN}s through each target, rounds alternating targets; the echo real server is udpload too. CPU is the proxy process's (user + system, /proc/PID/stat) per request and answer. System calls: \`strace -f -c\` attached during one more run (strace slows the proxy, not what it calls per request). Idle: the proxy's VmRSS growth with $IDLE flows opened (one exchange each) and held. govs: event loops (GOMAXPROCS loops); govsgo: \`GOVS_PROXY_LOOPS=off\`."
	echo
	echo "| target | requests/s (median) | p99 ms | lost | proxy CPU µs per request | system calls per request | by call (>= 0.05 per request) | RSS KiB per idle flow |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
	for t in govs govsgo; do
		echo "| $t | $(tr ' ' '\n' <<<"${RATE[$t]}" | grep . | median) | $(tr ' ' '\n' <<<"${P99[$t]}" | grep . | median) | $(tr ' ' '\n' <<<"${LOST[$t]}" | grep . | awk '{s+=$1} END {print s+0}') | $(tr ' ' '\n' <<<"${CPU[$t]}" | grep . | median) | $(calls "$t") | $(idle "$t") |"
	done
	echo
	echo "Rounds: govs $(tr -s ' ' <<<"${RATE[govs]}")req/s, govsgo $(tr -s ' ' <<<"${RATE[govsgo]}")req/s; CPU µs govs ${CPU[govs]}, govsgo ${CPU[govsgo]}"
	echo "<!-- bench/udp.sh end -->"
} >"$SECTION"
cat "$SECTION"
write_section udp.sh "$SECTION" "$RESULTS"
