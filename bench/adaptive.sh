#!/usr/bin/env bash
# bench/adaptive.sh: the adaptive schedulers (pewma, prequal, adaptive-weights, predict)
# against wlc, lc and twos, live on loopback: one govs proxy with one virtual
# service per scheduler, in front of real servers of different speeds, one of
# them freezing periodically (STALL: a GC pause), or slowed for seconds at a
# time by a hidden antagonist (ANTAGONIST: a co-located batch job). Each service gets the same
# open-loop Poisson load of new connections (one request per connection, so
# every request is a scheduling decision; bench/adaptive is the real servers
# and the generator). The table shows medians over rounds of p50/p90/p99/p99.9
# per scheduler, with p99 as a multiple of wlc's and lc's; then a closed-loop
# wrk run for comparison, and `govs sim` (its built-in scenarios, and this
# setup as a scenario). See bench/adaptive/main.go for the servers and the
# generator.
#
# MODE=parallel (default): every scheduler has its own identical set of real
# servers and all run at the same time, with the same arrival times, so that
# the hiccups of a shared machine hit them alike (paired rounds).
# MODE=multi: as parallel, but each scheduler runs in DIRECTORS govs
# processes (default 3, each its own director with its own view) in front of
# the scheduler's one set of real servers; each request of the generator goes
# to one of the directors, drawn at random. The last server carries the
# hidden trouble: its freezes (STALL), or an antagonist that takes most of
# its CPU for seconds at a time (ANTAGONIST). No wrk runs; SIM=1 runs only
# this setup's twin in govs sim, with the oracle.
# MODE=interleaved: one set of real servers, the schedulers one after the
# other, order rotated each round (bench/run.sh's style); on a busy 2-core
# machine its noise (lc and wlc, the same rule here, 30% apart at p99) is
# larger than the differences measured.
#
# Safety: all traffic goes to 127.0.0.1; every load run is bounded in time
# and count (the generator's -duration, -timeout, -max-inflight; timeout);
# the real servers exit by themselves after a bounded lifetime; only the
# processes started here are stopped, by PID, on exit (trap). Measurements
# run under flock /tmp/govs-bench.lock, shared with the other benchmarks.
#
# Settings (environment):
#   QUICK=1          smoke run (<1 min): 1 round of 4 s, 2 s warm-up, wrk 4 s, no sim
#   MODE=parallel    or interleaved, or multi (above); the defaults below are parallel's (and multi's), interleaved's in ()
#   DIRECTORS_N=3    MODE=multi: govs processes (directors) per set of real servers
#   AGENTS=0 (multi: 1)  each real server runs an HAProxy agent (BASE+400+i) answering "up inflight:N latency:D",
#                    its requests in flight from every director and its estimate of a new request's
#                    latency (recent service time x the queue, as a Prequal server reports); govs's
#                    prober passes them to prequal and predict (predict uses the count only)
#                    (needs HEALTH=1: the agent is asked after each http check)
#   ROUNDS=8 (5)     rounds (medians over them)
#   DURATION=20 (6)  seconds of each load run (best a multiple of the stall period)
#   WARMUP=6 (4)     seconds of load before the rounds (discarded)
#   RATE=180 (550)   requests (new connections) per second per scheduler, Poisson arrivals
#   SERVICE=12ms,12ms,36ms,12ms (4ms,4ms,12ms,4ms)   mean service time of each real server
#   STALL=200ms/2s   the last real server freezes this long every period ("" for none;
#                    default "" when ANTAGONIST is set): a GC pause, a frozen VM
#   ANTAGONIST=""    FACTORx/ON/OFF, e.g. 8x/4s/6s: a hidden batch job on the last real
#                    server's host, present ON and absent OFF on average (each length
#                    uniform in [0.5, 1.5] x the mean, the same seeded schedule in every
#                    set), taking all but 1/FACTOR of its CPU while present: the work of
#                    every request there runs FACTOR times slower (bench/adaptive/main.go)
#   SLOTS=1          workers per real server (a FIFO queue in front of them)
#   SIGMA=0.5        lognormal sigma of service times (0: constant)
#   SCHEDULERS="wlc lc twos pewma prequal adaptive-weights"
#   HEALTH=1         http health checks (GET /health, every 1s) on every service
#   SIM=1            also run govs sim (built-in scenarios and this setup)
#   WRK=1            also closed-loop wrk runs (wrk -t1 -cWRK_CONNS -H 'Connection: close'), for
#                    comparison: WRK_ROUNDS rounds of WRK_DURATION s, arranged as the open-loop ones
#   WRK_CONNS=3 WRK_ROUNDS=3 WRK_DURATION=10
#   LAG_MAX=20       interleaved: a run whose generator lagged more than this (ms, p99: the
#                    machine was busy) is run again, once; the table uses the second
#   BASE_PORT=28180  real servers BASE.. (one set of n, or one per scheduler), services BASE+200..
#   GOVS_BIN=path    use this govs binary instead of building bench/out/govs
#   RESULTS=path     default bench/RESULTS.md;  KEEP_TMP=1 keep the temp dir
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
ORIG_ARGS="$*"

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	: "${ROUNDS:=1}" "${DURATION:=4}" "${WARMUP:=2}" "${SIM:=0}"
fi
MODE=${MODE:-parallel}
PAR=0
[[ $MODE == parallel || $MODE == multi ]] && PAR=1
DIRECTORS=1
if [[ $MODE == multi ]]; then
	DIRECTORS=${DIRECTORS_N:-3}
	: "${WRK:=0}" "${SIM:=0}" "${AGENTS:=1}"
fi
AGENTS=${AGENTS:-0}
if ((PAR == 1)); then
	: "${ROUNDS:=8}" "${DURATION:=20}" "${WARMUP:=6}" "${RATE:=180}" "${SERVICE:=12ms,12ms,36ms,12ms}"
else
	: "${ROUNDS:=5}" "${DURATION:=6}" "${WARMUP:=4}" "${RATE:=550}" "${SERVICE:=4ms,4ms,12ms,4ms}"
fi
ANTAGONIST=${ANTAGONIST:-}
if [[ -n $ANTAGONIST ]]; then STALL=${STALL:-}; else STALL=${STALL-200ms/2s}; fi
SLOTS=${SLOTS:-1}
SIGMA=${SIGMA:-0.5}
SCHEDULERS=${SCHEDULERS:-wlc lc twos pewma prequal adaptive-weights}
HEALTH=${HEALTH:-1}
SIM=${SIM:-1}
WRK=${WRK:-1}
WRK_CONNS=${WRK_CONNS:-3}
WRK_ROUNDS=${WRK_ROUNDS:-3}
WRK_DURATION=${WRK_DURATION:-10}
[[ $QUICK == 1 ]] && WRK_ROUNDS=1 WRK_DURATION=4
LAG_MAX=${LAG_MAX:-20}
BASE_PORT=${BASE_PORT:-28180}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
KEEP_TMP=${KEEP_TMP:-0}
LOCK=/tmp/govs-bench.lock
HOST=127.0.0.1 # never anything else: loopback only

for v in ROUNDS DURATION WARMUP RATE SLOTS BASE_PORT WRK_CONNS WRK_ROUNDS WRK_DURATION LAG_MAX DIRECTORS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "adaptive.sh: $v=${!v}: want a whole number" >&2; exit 2; }
done
[[ $SIGMA =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "adaptive.sh: SIGMA=$SIGMA: want a number" >&2; exit 2; }
# Bounds so that a typo cannot turn this into a long or heavy run.
((ROUNDS >= 1 && ROUNDS <= 10 && DURATION >= 1 && DURATION <= 60 && WARMUP <= 30)) ||
	{ echo "adaptive.sh: want 1 <= ROUNDS <= 10, 1 <= DURATION <= 60, WARMUP <= 30" >&2; exit 2; }
((RATE >= 1 && RATE <= 5000 && SLOTS >= 1 && SLOTS <= 64 && WRK_CONNS >= 1 && WRK_CONNS <= 200)) ||
	{ echo "adaptive.sh: want 1 <= RATE <= 5000, 1 <= SLOTS <= 64, 1 <= WRK_CONNS <= 200" >&2; exit 2; }
((WRK_ROUNDS >= 1 && WRK_ROUNDS <= 10 && WRK_DURATION >= 1 && WRK_DURATION <= 60)) ||
	{ echo "adaptive.sh: want 1 <= WRK_ROUNDS <= 10, 1 <= WRK_DURATION <= 60" >&2; exit 2; }
IFS=, read -r -a SVC <<<"$SERVICE"
NSRV=${#SVC[@]}
((NSRV >= 2 && NSRV <= 16)) || { echo "adaptive.sh: SERVICE: want 2 to 16 servers" >&2; exit 2; }
for s in "${SVC[@]}"; do
	[[ $s =~ ^[0-9.]+(us|ms|s)$ ]] || { echo "adaptive.sh: SERVICE: $s: want a duration such as 2ms" >&2; exit 2; }
done
[[ -z $ANTAGONIST || $ANTAGONIST =~ ^[0-9.]+x/[0-9.]+(ms|s)/[0-9.]+(ms|s)$ ]] || { echo "adaptive.sh: ANTAGONIST=$ANTAGONIST: want FACTORx/ON/OFF such as 8x/4s/6s" >&2; exit 2; }
[[ -z $ANTAGONIST || -z $STALL ]] || { echo "adaptive.sh: STALL and ANTAGONIST both on the last server: choose one (STALL=\"\")" >&2; exit 2; }
[[ -z $STALL || $STALL =~ ^[0-9.]+(ms|s)/[0-9.]+(ms|s)$ ]] || { echo "adaptive.sh: STALL=$STALL: want LEN/PERIOD such as 200ms/2s" >&2; exit 2; }
read -r -a SCHEDS <<<"$SCHEDULERS"
((${#SCHEDS[@]} >= 1 && ${#SCHEDS[@]} <= 12)) || { echo "adaptive.sh: SCHEDULERS: 1 to 12 names" >&2; exit 2; }
((BASE_PORT >= 1024 && BASE_PORT + 200 + ${#SCHEDS[@]} <= 65535)) || { echo "adaptive.sh: BASE_PORT out of range" >&2; exit 2; }
[[ $MODE == parallel || $MODE == interleaved || $MODE == multi ]] || { echo "adaptive.sh: MODE=$MODE: want parallel, interleaved or multi" >&2; exit 2; }
((DIRECTORS >= 1 && DIRECTORS <= 8)) || { echo "adaptive.sh: DIRECTORS_N: 1 to 8" >&2; exit 2; }
[[ $MODE != multi || $WRK == 0 ]] || { echo "adaptive.sh: MODE=multi has no wrk runs (WRK=0)" >&2; exit 2; }
[[ $AGENTS == 0 || ($AGENTS == 1 && $HEALTH == 1) ]] || { echo "adaptive.sh: AGENTS=1 needs HEALTH=1" >&2; exit 2; }

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

missing=()
for t in go curl ss awk timeout flock; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
((WRK == 1)) && { command -v wrk >/dev/null 2>&1 || missing+=(wrk); }
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (apt-get install -y curl iproute2 util-linux wrk)"

# ---- ports -----------------------------------------------------------------------
# Real servers: one set (interleaved) or one set per scheduler (parallel, multi),
# set k on BASE+k*n..; the services on BASE+200+k, on director d (multi) at
# BASE+200+20d+k.
declare -A VPORT=() SETOF=()
NSETS=1
((PAR == 1)) && NSETS=${#SCHEDS[@]}
SRV_PORTS=() AGENT_PORTS=()
for ((i = 0; i < NSETS * NSRV; i++)); do SRV_PORTS+=($((BASE_PORT + i))); done
((AGENTS == 1)) && for ((i = 0; i < NSETS * NSRV; i++)); do AGENT_PORTS+=($((BASE_PORT + 400 + i))); done
for ((k = 0; k < ${#SCHEDS[@]}; k++)); do
	VPORT[${SCHEDS[$k]}]=$((BASE_PORT + 200 + k))
	SETOF[${SCHEDS[$k]}]=0
	((PAR == 1)) && SETOF[${SCHEDS[$k]}]=$k
done
dport() { echo $((${VPORT[$1]} + 20 * $2)); } # SCHED DIRECTOR
DPORTS=()
for s in "${SCHEDS[@]}"; do for ((d = 0; d < DIRECTORS; d++)); do DPORTS+=("$(dport "$s" "$d")"); done; done
listening() { ss -Htln "( sport = :$1 )" 2>/dev/null | grep -q "$HOST:$1"; }
for p in "${SRV_PORTS[@]}" "${DPORTS[@]}" "${AGENT_PORTS[@]}"; do
	listening "$p" && die "port $p is already in use on $HOST; set BASE_PORT to another range"
done

# ---- temp dir, processes, cleanup ----------------------------------------------------
TMP=$(mktemp -d /tmp/govs-adaptive.XXXXXX)
RES=$TMP/res
mkdir -p "$RES" "$TMP/logs" "$TMP/runs"
PIDS=()
stop_pid() { # PID: TERM, up to 5 s, then KILL; only our own children
	local pid=$1 i
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [[ $KEEP_TMP == 1 ]]; then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
LAST_PID=""
start_bg() { # LOG CMD...
	local logf=$1
	shift
	"$@" >"$logf" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
wait_listen() { # PORT PID LOG: up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || { log "process $2 exited; log:"; tail -n 20 "$3" >&2; return 1; }
		sleep 0.1
	done
	log "port $1 not listening after 10 s"
	return 1
}

ANOM=$TMP/anomalies.txt
: >"$ANOM"
anomaly() { echo "$*" >>"$ANOM"; log "ANOMALY: $*"; }

# ---- build ---------------------------------------------------------------------------
mkdir -p "$HERE/out"
GIT_REV=$(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $GIT_REV != unknown ]] && [[ -n $(cd "$ROOT" && GIT_OPTIONAL_LOCKS=0 git status --porcelain -uno 2>/dev/null) ]]; then
	GIT_REV="$GIT_REV-dirty"
fi
if [[ -n ${GOVS_BIN:-} ]]; then
	[[ -x $GOVS_BIN ]] || die "GOVS_BIN=$GOVS_BIN is not executable"
else
	log "building govs ($GIT_REV)"
	(cd "$ROOT" && go build -ldflags "-X main.version=$GIT_REV" -o bench/out/govs ./cmd/govs) || die "govs build failed"
	GOVS_BIN=$HERE/out/govs
fi
(cd "$ROOT" && go build -o bench/out/adaptive ./bench/adaptive) || die "bench/adaptive build failed"
ADAPTIVE=$HERE/out/adaptive

# ---- configuration -------------------------------------------------------------------
SRV_ARGS=()
SRV_DESC=()
for ((k = 0; k < NSETS; k++)); do
	for ((i = 0; i < NSRV; i++)); do
		spec="s$i=$HOST:${SRV_PORTS[$((k * NSRV + i))]},${SVC[$i]}"
		desc="s$i ${SVC[$i]}"
		if [[ -n $STALL ]] && ((i == NSRV - 1)); then
			spec+=",stall=$STALL"
			desc+=" + stall ${STALL%/*} every ${STALL#*/}"
		fi
		if [[ -n $ANTAGONIST ]] && ((i == NSRV - 1)); then
			IFS=/ read -r af aon aoff <<<"$ANTAGONIST"
			spec+=",antagonist=$ANTAGONIST"
			desc+=" + antagonist (${af%x}x slower while present: $aon present, $aoff absent on average)"
		fi
		((AGENTS == 1)) && spec+=",agent=$HOST:${AGENT_PORTS[$((k * NSRV + i))]}"
		SRV_ARGS+=(-server "$spec")
		((k == 0)) && SRV_DESC+=("$desc")
	done
done
for ((d = 0; d < DIRECTORS; d++)); do
{
	echo "grace_period: 1s"
	echo "logging:"
	echo "  level: info"
	echo "virtual_servers:"
	for s in "${SCHEDS[@]}"; do
		echo "  - name: $s"
		echo "    address: $HOST:$(dport "$s" "$d")"
		echo "    protocol: tcp"
		echo "    scheduler: $s"
		if [[ $HEALTH == 1 ]]; then
			echo "    health_check: {type: http, path: /health, interval: 1s, timeout: 1s, rise: 2, fall: 3}"
		fi
		echo "    real_servers:"
		for ((i = 0; i < NSRV; i++)); do
			echo "      - address: $HOST:${SRV_PORTS[$((${SETOF[$s]} * NSRV + i))]}"
			((AGENTS == 1)) && echo "        health_check: {agent_port: ${AGENT_PORTS[$((${SETOF[$s]} * NSRV + i))]}}"
		done
	done
} >"$TMP/govs.$d.yaml"
"$GOVS_BIN" check -c "$TMP/govs.$d.yaml" >/dev/null || die "govs config rejected"
done

rotated() { # ROUND ARRAY...
	local r=$1 n i
	shift
	local a=("$@")
	n=${#a[@]}
	for ((i = 0; i < n; i++)); do echo "${a[$(((i + r) % n))]}"; done
}

# load_start SCHED SECONDS SEED OUT: one open-loop run in the background
# (LAST_PID); load_record SCHED TAG OUT [final]: check its report, and record
# it in $RES (unless TAG=warmup, or a busy run that is not final: status 1).
load_start() {
	local s=$1 secs=$2 seed=$3 out=$4 d addrs=""
	for ((d = 0; d < DIRECTORS; d++)); do addrs+="${addrs:+,}$HOST:$(dport "$s" "$d")"; done
	timeout $((secs + 20)) "$ADAPTIVE" load -addr "$addrs" -rate "$RATE" -duration "${secs}s" \
		-seed "$seed" -timeout 5s -max-inflight 2000 >"$out" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
RETRIED=0
load_record() {
	local s=$1 tag=$2 out=$3 final=${4:-final} line kv ferr row
	line=$(grep '^sent=' "$out" || true)
	if [[ -z $line ]]; then
		anomaly "$s ($tag): no report: $(tail -n 2 "$out" | tr '\n' ' ')"
		return 0
	fi
	ferr=$(sed -n 's/.* first_err=//p' <<<"$line")
	line=${line% first_err=*}
	declare -A F=()
	for kv in $line; do F[${kv%%=*}]=${kv#*=}; done
	if [[ ${F[err]} != 0 || ${F[dropped]} != 0 ]]; then
		anomaly "$s ($tag): ${F[err]} failed, ${F[dropped]} dropped of ${F[sent]}, first error $ferr"
	fi
	[[ $tag == warmup ]] && return 0
	row="| $s | ${F[ok]} | ${F[p50_ms]} | ${F[p90_ms]} | ${F[p99_ms]} | ${F[p999_ms]} | ${F[max_ms]} | ${F[over100ms]} | ${F[share]//\// } | ${F[lag_p99_ms]} |"
	if [[ $final != final ]] && awk -v l="${F[lag_p99_ms]}" -v m="$LAG_MAX" 'BEGIN{exit !(l > m)}'; then
		anomaly "$s ($tag): generator lag p99 ${F[lag_p99_ms]} ms (machine busy; p99 ${F[p99_ms]} ms): run again"
		echo "| $tag (busy, discarded) $row" >>"$RES/detail"
		RETRIED=$((RETRIED + 1))
		return 1
	fi
	for kv in p50_ms p90_ms p99_ms p999_ms over100ms rps; do echo "${F[$kv]}" >>"$RES/$kv.$s"; done
	echo "$tag ${F[p99_ms]}" >>"$RES/p99round.$s"
	echo "${F[share]}" >>"$RES/share.$s"
	echo "| $tag $row" >>"$RES/detail"
	return 0
}
# run_load SCHED SECONDS SEED TAG: one run alone (interleaved mode); a run
# during which the generator itself lagged (the machine was busy) is run
# again, once.
run_load() {
	local s=$1 secs=$2 seed=$3 tag=$4 out
	out=$TMP/runs/$s.$tag.1.txt
	load_start "$s" "$secs" "$seed" "$out"
	wait_pid "$LAST_PID" "$out"
	load_record "$s" "$tag" "$out" first && return 0
	sleep 1
	out=$TMP/runs/$s.$tag.2.txt
	load_start "$s" "$secs" "$seed" "$out"
	wait_pid "$LAST_PID" "$out"
	load_record "$s" "$tag" "$out" final
}
# run_parallel SECONDS SEED TAG: every scheduler at once, each on its own
# real servers (parallel mode): the machine's hiccups hit them all alike.
run_parallel() {
	local secs=$1 seed=$2 tag=$3 s
	local -A pid=()
	for s in "${SCHEDS[@]}"; do # the same arrival times for all
		load_start "$s" "$secs" "$seed" "$TMP/runs/$s.$tag.txt"
		pid[$s]=$LAST_PID
	done
	for s in "${SCHEDS[@]}"; do wait_pid "${pid[$s]}" "$TMP/runs/$s.$tag.txt"; done
	for s in "${SCHEDS[@]}"; do load_record "$s" "$tag" "$TMP/runs/$s.$tag.txt" final; done
}
wait_pid() { # PID OUT: wait for a child, note a failure in OUT, forget it
	local keep=() p rc=0
	wait "$1" 2>/dev/null || rc=$?
	((rc == 0)) || echo "exit status $rc" >>"$2"
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

to_ms() { # wrk duration -> ms
	awk -v v="$1" 'BEGIN{n=v; sub(/[a-z]+$/,"",n); u=v; sub(/^[0-9.]+/,"",u);
		f=(u=="us")?0.001:(u=="ms")?1:(u=="s")?1000:(u=="m")?60000:-1;
		if (f<0 || n=="") print "nan"; else printf "%.3f\n", n*f}'
}
wrk_start() { # SCHED SECONDS OUT: in the background (LAST_PID)
	timeout $(($2 + 20)) wrk -t1 -c"$WRK_CONNS" -d"${2}s" --latency -H 'Connection: close' \
		"http://$HOST:${VPORT[$1]}/" >"$3" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
wrk_record() { # SCHED TAG OUT
	local s=$1 tag=$2 out=$3 v p
	grep -qE 'Socket errors|Non-2xx|exit status' "$out" && anomaly "$s wrk ($tag): $(grep -E 'Socket errors|Non-2xx|exit status' "$out" | tr '\n' ';')"
	[[ $tag == warmup ]] && return 0
	for v in 50 90 99; do
		p=$(awk -v q="$v%" '$1==q{print $2}' "$out")
		[[ -n $p ]] && to_ms "$p" >>"$RES/wrk$v.$s"
	done
	awk '/^Requests\/sec:/{print $2}' "$out" >>"$RES/wrkrps.$s"
	return 0
}
run_wrk_round() { # SECONDS TAG ROUND: all at once (parallel) or one after the other
	local secs=$1 tag=$2 r=$3 s out
	local -A pid=()
	if ((PAR == 1)); then
		for s in "${SCHEDS[@]}"; do wrk_start "$s" "$secs" "$TMP/runs/$s.wrk.$tag.txt"; pid[$s]=$LAST_PID; done
		for s in "${SCHEDS[@]}"; do wait_pid "${pid[$s]}" "$TMP/runs/$s.wrk.$tag.txt"; done
		for s in "${SCHEDS[@]}"; do wrk_record "$s" "$tag" "$TMP/runs/$s.wrk.$tag.txt"; done
	else
		for s in $(rotated "$r" "${SCHEDS[@]}"); do
			out=$TMP/runs/$s.wrk.$tag.txt
			wrk_start "$s" "$secs" "$out"
			wait_pid "$LAST_PID" "$out"
			wrk_record "$s" "$tag" "$out"
			sleep 0.5
		done
	fi
}

# ---- measure (under the shared bench lock) ----------------------------------------------
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
exec 9>"$LOCK"
log "waiting for $LOCK"
flock -w 900 9 || die "could not take $LOCK within 15 minutes"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
LIFETIME=$((60 + ${#SCHEDS[@]} * (WARMUP + 2 + ROUNDS * (DURATION + 2) + WRK * (3 + WRK_ROUNDS * (WRK_DURATION + 2))) * 2))

start_bg "$TMP/logs/backends.log" "$ADAPTIVE" backends "${SRV_ARGS[@]}" -slots "$SLOTS" -sigma "$SIGMA" -lifetime "${LIFETIME}s"
BACK_PID=$LAST_PID
for p in "${SRV_PORTS[@]}"; do wait_listen "$p" "$BACK_PID" "$TMP/logs/backends.log" || die "real servers did not start"; done
GOVS_PIDS=()
for ((d = 0; d < DIRECTORS; d++)); do
	start_bg "$TMP/logs/govs.$d.log" "$GOVS_BIN" --socket "$TMP/govs.$d.sock" run -c "$TMP/govs.$d.yaml"
	GOVS_PIDS+=("$LAST_PID")
	for s in "${SCHEDS[@]}"; do wait_listen "$(dport "$s" "$d")" "$LAST_PID" "$TMP/logs/govs.$d.log" || die "govs did not start"; done
done
# sanity: one request through each service of each director
for s in "${SCHEDS[@]}"; do
	for ((d = 0; d < DIRECTORS; d++)); do
		body=$(curl -sS --max-time 5 "http://$HOST:$(dport "$s" "$d")/" 2>&1 || true)
		[[ $body =~ ^s[0-9]+$ ]] || die "$s: sanity request failed: $body"
	done
done
((HEALTH == 1)) && sleep 2 # let the first checks run

if ((PAR == 1)); then
	log "warm-up: ${WARMUP}s, every scheduler at once, $RATE/s each"
	((WARMUP > 0)) && run_parallel "$WARMUP" 999 warmup
	for ((r = 0; r < ROUNDS; r++)); do
		log "round $((r + 1))/$ROUNDS: every scheduler at once"
		run_parallel "$DURATION" "$((r + 1))" "r$((r + 1))"
		sleep 0.5
	done
else
	log "warm-up: ${WARMUP}s per scheduler at $RATE/s"
	if ((WARMUP > 0)); then
		for s in "${SCHEDS[@]}"; do run_load "$s" "$WARMUP" 999 warmup; sleep 0.5; done
	fi
	for ((r = 0; r < ROUNDS; r++)); do
		order=($(rotated "$r" "${SCHEDS[@]}"))
		log "round $((r + 1))/$ROUNDS, order: ${order[*]}"
		for s in "${order[@]}"; do run_load "$s" "$DURATION" "$((r + 1))" "r$((r + 1))"; sleep 0.5; done
	done
fi
if ((WRK == 1)); then
	log "wrk (closed loop): $WRK_ROUNDS round(s) of ${WRK_DURATION}s"
	run_wrk_round 2 warmup 0
	for ((r = 0; r < WRK_ROUNDS; r++)); do run_wrk_round "$WRK_DURATION" "r$((r + 1))" "$r"; done
fi
for pid in "${GOVS_PIDS[@]}"; do
	kill -0 "$pid" 2>/dev/null || anomaly "a govs director exited during the run (see its log)"
done
kill -0 "$BACK_PID" 2>/dev/null || anomaly "the real servers exited during the run"
for pid in "${GOVS_PIDS[@]}"; do stop_pid "$pid"; done
stop_pid "$BACK_PID"
ELAPSED=$((SECONDS - T0))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
n=$(cat "$TMP"/logs/govs.*.log | grep -cE 'level=(WARN|ERROR)' || true)
((${n:-0} > 0)) && anomaly "govs log: $n WARN/ERROR lines, first: $(cat "$TMP"/logs/govs.*.log | grep -m1 -E 'level=(WARN|ERROR)')"
SERVED=$(awk '$1=="served"{c[$2]+=$3} END{for (k in c) print k, c[k]}' "$TMP/logs/backends.log" | sort | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')

# ---- simulator ---------------------------------------------------------------------------
SIM_OUT=""
SIM_OWN=""
if [[ $SIM == 1 ]]; then
	if [[ $MODE == multi ]]; then
		log "govs sim (this setup as a scenario, with the oracle)"
	else
		log "govs sim (built-in scenarios, then this setup as a scenario)"
		SIM_OUT=$("$GOVS_BIN" sim --format table --seed 1 2>&1) || anomaly "govs sim failed: $(echo "$SIM_OUT" | tail -n 1)"
	fi
	# This setup as a scenario: a stall is a 100x-ish slowdown of what starts in it.
	cap=$(awk -v list="$SERVICE" -v slots="$SLOTS" 'function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; return v*1000 }
		BEGIN{n=split(list,a,","); for(i=1;i<=n;i++) c+=slots*1000/ms(a[i]); printf "%.6f", c}')
	util=$(awk -v r="$RATE" -v c="$cap" 'BEGIN{printf "%.4f", r/c}')
	simreq=$((RATE * 120))
	SIM_SCHEDS=$(echo "${SCHEDS[*]}" | tr ' ' ',')
	if [[ $MODE == multi ]]; then
		SIM_SCHEDS+=",oracle"
		# About an hour of the live setup's time: hundreds of antagonist
		# episodes. (A stall is a list of events, written for 120 s only.)
		[[ -n $ANTAGONIST ]] && simreq=1000000
	fi
	{
		echo "name: live-setup"
		echo "description: bench/adaptive.sh's real servers at $RATE/s"
		echo "utilisation: $util"
		((DIRECTORS > 1)) && echo "directors: $DIRECTORS"
		echo "service: {distribution: lognormal, mean: ${SVC[0]}, sigma: $SIGMA}"
		echo "capacity: $SLOTS"
		echo "servers:"
		for ((i = 0; i < NSRV; i++)); do
			echo "  - {count: 1, service: {distribution: lognormal, mean: ${SVC[$i]}, sigma: $SIGMA}}"
		done
		if [[ -n $STALL ]]; then
			awk -v st="$STALL" -v mean="${SVC[NSRV - 1]}" -v srv=$((NSRV - 1)) 'function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; return v*1000 }
				BEGIN{split(st,a,"/"); len=ms(a[1]); per=ms(a[2]); slow=len/ms(mean); if (slow>1000) slow=1000;
					print "events:"; for (t=per/2; t < 120000; t+=per) printf "  - {at: %.0fms, for: %.0fms, server: %d, slowdown: %.1f}\n", t, len, srv, slow}'
		fi
		if [[ -n $ANTAGONIST ]]; then
			# The same antagonist: share 1 - 1/FACTOR of the capacity, uniform lengths.
			awk -v a="$ANTAGONIST" -v srv=$((NSRV - 1)) 'BEGIN{split(a,f,"/"); sub(/x$/,"",f[1]); sh=1-1/f[1]; if (sh>0.95) sh=0.95;
				print "antagonists:"; printf "  - {server: %d, share: %.4f, on: %s, off: %s, lengths: uniform}\n", srv, sh, f[2], f[3]}'
		fi
	} >"$TMP/live-setup.yaml"
	SIM_OWN=$("$GOVS_BIN" sim --scenario "$TMP/live-setup.yaml" --schedulers "$SIM_SCHEDS" --format table --seed 1 --requests "$simreq" 2>&1) ||
		anomaly "govs sim (live setup) failed: $(echo "$SIM_OWN" | tail -n 1)"
fi
flock -u 9

# ---- report ----------------------------------------------------------------------------------
median() {
	[[ -s $1 ]] || { echo n/a; return; }
	sort -g "$1" | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}
fmt() { [[ $1 == n/a ]] && { echo n/a; return; }; awk -v v="$1" -v d="$2" 'BEGIN{printf "%.*f\n", d, v}'; }
ratio() { [[ $1 == n/a || $2 == n/a ]] && { echo n/a; return; }; awk -v a="$1" -v b="$2" 'BEGIN{if (b==0) print "n/a"; else printf "%.2f\n", a/b}'; }
share() { # SCHED -> per-server % of the requests, all rounds
	[[ -s $RES/share.$1 ]] || { echo n/a; return; }
	tr '/' '\n' <"$RES/share.$1" | awk -F: -v n="$NSRV" '{c[$1]+=$2; t+=$2} END{for(i=0;i<n;i++){k="s" i; printf "%s%.1f", (i?" / ":""), 100*c[k]/t}}'
}
rounds_won() { # SCHED -> rounds where its p99 is below both wlc's and lc's
	local s=$1
	[[ $s == wlc || $s == lc ]] && { echo "–"; return; }
	[[ -s $RES/p99round.$s && -s $RES/p99round.wlc && -s $RES/p99round.lc ]] || { echo n/a; return; }
	awk 'FILENAME==ARGV[1]{w[$1]=$2; next} FILENAME==ARGV[2]{l[$1]=$2; next} {n++; if ($2 < w[$1] && $2 < l[$1]) k++} END{printf "%d/%d", k, n}' \
		"$RES/p99round.wlc" "$RES/p99round.lc" "$RES/p99round.$s"
}
rounds_below() { # SCHED FACTOR -> rounds where its p99 is below FACTOR x wlc's in the same round
	local s=$1
	[[ $s == wlc ]] && { echo "–"; return; }
	[[ -s $RES/p99round.$s && -s $RES/p99round.wlc ]] || { echo n/a; return; }
	awk -v f="$2" 'FILENAME==ARGV[1]{w[$1]=$2; next} {n++; if ($2 < f * w[$1]) k++} END{printf "%d/%d", k, n}' \
		"$RES/p99round.wlc" "$RES/p99round.$s"
}
W99=$(median "$RES/p99_ms.wlc")
L99=$(median "$RES/p99_ms.lc")
table() {
	local s m99
	local below="" belowh="" belowa=""
	if [[ $MODE == multi ]]; then belowh=" p99 below 0.6x wlc's (rounds) |" belowa=" ---: |"; fi
	echo "| scheduler | p50 ms | p90 ms | p99 ms | p99.9 ms | p99/wlc | p99/lc | p99 below wlc and lc (rounds) |$belowh requests > 100 ms | share s0 / s1 / ... (%) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |$belowa ---: | --- |"
	for s in "${SCHEDS[@]}"; do
		m99=$(median "$RES/p99_ms.$s")
		[[ $MODE == multi ]] && below=" $(rounds_below "$s" 0.6) |"
		echo "| $s | $(fmt "$(median "$RES/p50_ms.$s")" 2) | $(fmt "$(median "$RES/p90_ms.$s")" 2) | $(fmt "$m99" 2) | $(fmt "$(median "$RES/p999_ms.$s")" 1) | $(ratio "$m99" "$W99") | $(ratio "$m99" "$L99") | $(rounds_won "$s") |$below $(fmt "$(median "$RES/over100ms.$s")" 0) | $(share "$s") |"
	done
}
wrk_table() {
	local s w
	w=$(median "$RES/wrk99.wlc")
	echo "| scheduler | req/s | p50 ms | p90 ms | p99 ms | p99/wlc |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	for s in "${SCHEDS[@]}"; do
		echo "| $s | $(fmt "$(median "$RES/wrkrps.$s")" 0) | $(fmt "$(median "$RES/wrk50.$s")" 2) | $(fmt "$(median "$RES/wrk90.$s")" 2) | $(fmt "$(median "$RES/wrk99.$s")" 2) | $(ratio "$(median "$RES/wrk99.$s")" "$w") |"
	done
}

ver_govs=$("$GOVS_BIN" version 2>/dev/null | awk '{print $2}')
cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
# Built step by step: under set -e, an assignment whose last command
# substitution fails (such as $( ((AGENTS == 1)) && echo ...) with AGENTS=0)
# ends the script, silently, after the measurements.
env_cmd="MODE=$MODE"
((DIRECTORS > 1)) && env_cmd+=" DIRECTORS_N=$DIRECTORS"
((AGENTS == 1)) && env_cmd+=" AGENTS=1"
env_cmd+=" ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP RATE=$RATE SERVICE=$SERVICE STALL=$STALL"
[[ -n $ANTAGONIST ]] && env_cmd+=" ANTAGONIST=$ANTAGONIST"
env_cmd+=" SLOTS=$SLOTS SIGMA=$SIGMA HEALTH=$HEALTH WRK=$WRK"
((WRK == 1)) && env_cmd+=" WRK_CONNS=$WRK_CONNS WRK_ROUNDS=$WRK_ROUNDS WRK_DURATION=$WRK_DURATION"
[[ $SCHEDULERS != "wlc lc twos pewma prequal adaptive-weights" ]] && env_cmd+=" SCHEDULERS=\"$SCHEDULERS\""
nominal=$(awk -v list="$SERVICE" -v slots="$SLOTS" 'function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; return v*1000 }
	BEGIN{n=split(list,a,","); for(i=1;i<=n;i++) c+=slots*1000/ms(a[i]); printf "%.0f", c}')

SECTION=$TMP/section.md
MARK=adaptive.sh TITLE="Adaptive schedulers, live on loopback"
if [[ $MODE == multi ]]; then
	MARK="adaptive.sh multi" TITLE="Adaptive schedulers, $DIRECTORS directors sharing real servers, live on loopback"
	if [[ -n $ANTAGONIST ]]; then
		MARK+=" antagonist" TITLE="Adaptive schedulers, $DIRECTORS directors, a hidden antagonist, live on loopback"
		((AGENTS == 0)) && MARK+=" no agents" TITLE+=", no agents"
	fi
fi
{
	echo "<!-- bench/$MARK begin -->"
	echo "## $TITLE"
	echo
	echo "Written by \`bench/adaptive.sh\`; do not edit between the markers (the next run replaces it)."
	echo
	echo "- Command: \`$env_cmd bench/adaptive.sh${ORIG_ARGS:+ $ORIG_ARGS}\` (measuring time ${ELAPSED}s)"
	echo "- Date: $START_DATE; govs $ver_govs"
	echo "- Machine: nproc $(nproc), CPU \"$cpu_model\", kernel $(uname -r); load average at start $LOAD_START, at end $LOAD_END (shared machine: figures are noisy)"
	if [[ $MODE == multi ]]; then
		setdesc="$NSETS identical sets of real servers, one per scheduler, started together (so their stalls fall at the same moments); the stalling server is the hidden antagonist, which no director is told of"
		[[ -n $ANTAGONIST ]] && setdesc="$NSETS identical sets of real servers, one per scheduler, started together, their antagonists on the same schedule (seed 1), which no director is told of"
		svcdesc="$DIRECTORS govs processes (directors), each with one virtual service per scheduler in front of that scheduler's set, so each set is shared by $DIRECTORS directors that each see only their own connections"
		method="every scheduler runs at the same time, each with its own generator and the same arrival times (seed = round), each request sent to one of the $DIRECTORS directors drawn at random, for ${DURATION}s per round, after a ${WARMUP}s warm-up. The table shows medians over $ROUNDS rounds; the ratios are of medians; \"rounds\" counts the rounds in which the scheduler's p99 was below both wlc's and lc's in the same round."
	elif [[ $MODE == parallel ]]; then
		setdesc="$NSETS identical sets of real servers, one per scheduler, started together (so their stalls fall at the same moments)"
		svcdesc="one virtual service per scheduler, each in front of its own set"
		method="every scheduler runs at the same time, each with its own generator and the same arrival times (seed = round), for ${DURATION}s per round, after a ${WARMUP}s warm-up: a hiccup of this shared machine hits all schedulers alike, which running them one after the other (\`MODE=interleaved\`) cannot ensure (in a trial on this machine, lc and wlc differed there by 30% at p99). The table shows medians over $ROUNDS rounds; the ratios are of medians; \"rounds\" counts the rounds in which the scheduler's p99 was below both wlc's and lc's in the same round."
	else
		setdesc="one set of real servers"
		svcdesc="one virtual service per scheduler, all in front of the same real servers"
		method="each round runs every scheduler alone for ${DURATION}s with the same arrival times (seed = round), order rotated each round, after a ${WARMUP}s warm-up each; a run during which the generator itself lagged over $LAG_MAX ms at p99 (the machine was busy) is run again once. The table shows medians over $ROUNDS rounds; the ratios are of medians."
	fi
	echo "- Real servers (\`bench/adaptive backends\`, one process, $setdesc): $(IFS=';'; echo "${SRV_DESC[*]}" | sed 's/;/, /g'); $SLOTS worker(s) each behind a FIFO queue (the kernel accepts every connection; a request waits for a worker), lognormal service times (sigma $SIGMA); $([[ -n $STALL ]] && echo "a stall freezes the server (requests in service or arriving wait until it ends)")$([[ -n $ANTAGONIST ]] && echo "the antagonist models a co-located batch job taking all but 1/${af%x} of the host's CPU: the work of every request in service there runs ${af%x} times slower while it is present (health checks are answered as usual: it is hidden)$(awk -F'[ =]' '$1=="antagonist"{printf "; it was present %.0f%% of the time (%d episode(s) while the servers ran)", 100*$6, $4; exit}' "$TMP/logs/backends.log")"). Nominal capacity $nominal req/s per set without the $([[ -n $ANTAGONIST ]] && echo "antagonist, $(awk -v n="$nominal" -v s1="${SVC[NSRV - 1]}" -v sl="$SLOTS" -v f="${af%x}" 'function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; return v*1000 } BEGIN{c=sl*1000/ms(s1); printf "%.0f", n-c+c/f}') req/s while it is present" || echo "stalls"). Listed in this order in every service (ties go to the first). Requests served: $SERVED."
	echo "- govs: $( ((DIRECTORS == 1)) && echo "one proxy, ")$svcdesc, equal weights$( ((HEALTH == 1)) && echo ", http health check GET /health every 1 s")$( ((AGENTS == 1)) && echo "; each real server's HAProxy agent reports its requests in flight from every director and its estimate of a new request's latency, its recent service time stretched by the queue, as a Prequal server does (up inflight:N latency:D), which the directors' probes pass to prequal and predict (predict uses the count only)" || echo " (no agents on these real servers: prequal's probes are all passive)")."
	echo "- Load (\`bench/adaptive load\`): open loop, Poisson arrivals at $RATE req/s per scheduler ($(awk -v r="$RATE" -v c="$nominal" 'BEGIN{printf "%.0f", 100*r/c}')% of nominal), one new TCP connection per request (\`Connection: close\`: every request is a scheduling decision); latency from the scheduled arrival to the end of the response, so a stall is not hidden by a client that waits (a closed loop such as wrk sends fewer requests while a stall holds its connections)."
	echo "- Method: $method lc and wlc follow the same rule with equal weights: their difference is the noise of the run."
	echo
	table
	echo
	if ((WRK == 1)); then
		echo "Closed loop, for comparison: \`wrk -t1 -c$WRK_CONNS -d${WRK_DURATION}s --latency -H 'Connection: close'\` per service$([[ $MODE == parallel ]] && echo ", all services at once"), medians over $WRK_ROUNDS round(s). A closed loop offers less load while a stall holds its connections, so it shows less of the tail than the open loop above; and each scheduler gets the rate its latency allows, so the latencies are not at equal load:"
		echo
		wrk_table
		echo
	fi
	echo "<details><summary>Per-run values (run order)</summary>"
	echo
	echo "| round | scheduler | requests | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | > 100 ms | share | generator lag p99 ms |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
	cat "$RES/detail" 2>/dev/null || true
	echo
	echo "</details>"
	echo
	if [[ -s $ANOM ]]; then
		echo "Anomalies:"
		echo
		sed 's/^/- /' "$ANOM"
	else
		if ((PAR == 1)); then
			echo "Anomalies: none (no failed or dropped requests, no WARN/ERROR in the govs log; the generator's lag, which hits every scheduler of a round alike here, is in the per-run table)."
		else
			echo "Anomalies: none (no failed or dropped requests, no generator lag over $LAG_MAX ms at p99, no WARN/ERROR in the govs log)."
		fi
	fi
	if [[ -n $SIM_OUT ]]; then
		echo
		echo "### The simulator's view"
		echo
		echo "\`go run ./cmd/govs sim --format table --seed 1\` (the built-in scenarios of [docs/sim.md](../docs/sim.md), 200000 requests each). The simulator gives prequal a Prober whose answers include the server's queue; these real servers run no agent for the director's Prober to ask, so live prequal runs on its passive probes (its own connection counts and a FirstByte average) and does worse than simulated:"
		echo
		echo '```'
		echo "$SIM_OUT"
		echo '```'
	fi
	if [[ -n $SIM_OWN ]]; then
		echo
		echo "This setup as a simulator scenario (same servers, rate$( ((DIRECTORS > 1)) && echo " and $DIRECTORS directors"); $([[ -n $ANTAGONIST ]] && echo "the antagonist as a share 1 - 1/${af%x} of the capacity taken from the requests that start while it is there" || echo "a stall approximated as a slowdown of the requests that start in it"); no connection or proxy overhead; probes see every director's requests, as the agents do; \`oracle\` knows each server's true queue and speed): \`govs sim --scenario live-setup.yaml --schedulers $SIM_SCHEDS --format table --seed 1 --requests $simreq\`, with live-setup.yaml:"
		echo
		echo '```yaml'
		head -n 20 "$TMP/live-setup.yaml"
		(($(wc -l <"$TMP/live-setup.yaml") > 20)) && echo "  # ... and so on, to 120 s"
		echo '```'
		echo
		echo '```'
		echo "$SIM_OWN"
		echo '```'
	fi
	echo "<!-- bench/$MARK end -->"
} >"$SECTION"

cat "$SECTION"

if [[ $MODE == multi ]]; then
	write_section "$MARK" "$SECTION" "$RESULTS" adaptive.sh
else
	write_section "$MARK" "$SECTION" "$RESULTS"
fi
log "written: $RESULTS"
